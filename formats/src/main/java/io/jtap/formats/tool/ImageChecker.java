package io.jtap.formats.tool;

import io.jtap.formats.Checkable;
import io.jtap.formats.Image;
import io.jtap.formats.ImageCheck;
import io.jtap.formats.ImageFormat;
import io.jtap.formats.OpenOptions;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/**
 * The seam for {@code check}: consistency checks and repairs live in the format layer ({@link Checkable}); jtap-img
 * only runs them and reports as {@code qemu-img check} does. Tests put a fake behind it to drive every exit code.
 */
public interface ImageChecker {

    /** qemu-img check's {@code -r}. */
    enum Repair { NONE, LEAKS, ALL }

    /**
     * Checks (and with {@code repair}, repairs) the image at {@code path}. Empty when this checker does not support
     * the format (qemu-img check's exit code 63).
     */
    Optional<CheckReport> check(Path path, ImageFormat format, Repair repair) throws IOException;

    /**
     * The format layer's checker: opens the image as QEMU's {@code BDRV_O_CHECK} does
     * ({@link OpenOptions#withCheck(boolean) withCheck(true)}, so that a dirty or corrupt-marked image still opens),
     * read-only unless repairing, without its backing chain (the check reads this layer's metadata only), and runs
     * {@link Checkable#check} when the image is {@link Checkable}.
     */
    static ImageChecker installed() {
        return (path, format, repair) -> {
            OpenOptions options = OpenOptions.defaults().withCheck(true).withOpenBacking(false)
                    .withReadOnly(repair == Repair.NONE);
            try (Image image = format.open(path, options)) {
                if (!(image instanceof Checkable checkable)) {
                    return Optional.empty();
                }
                ImageCheck r = checkable.check(repair != Repair.NONE, repair == Repair.ALL);
                return Optional.of(new CheckReport(r.corruptions(), r.leaks(), r.checkErrors(), r.corruptionsFixed(),
                        r.leaksFixed(), r.imageEndOffset(), r.totalClusters(), r.allocatedClusters(),
                        r.fragmentedClusters(), r.compressedClusters(), r.messages()));
            }
        };
    }

    /**
     * What a check found, in qemu-img's terms ({@code ImageCheck} in QEMU's QAPI).
     *
     * @param corruptions        errors that make the image unusable or data wrong (after repair: the remaining)
     * @param leaks              clusters allocated but unreferenced (after repair: the remaining)
     * @param checkErrors        errors that kept the check from completing (IO errors, unreadable metadata)
     * @param corruptionsFixed   corruptions repaired
     * @param leaksFixed         leaks repaired
     * @param imageEndOffset     the end of the used part of the file, -1 if unknown
     * @param totalClusters      guest clusters, -1 if unknown
     * @param allocatedClusters  allocated guest clusters, -1 if unknown
     * @param fragmentedClusters allocated clusters not contiguous with their predecessor, -1 if unknown
     * @param compressedClusters compressed clusters, -1 if unknown
     * @param messages           one line per finding ("Leaked cluster 7 refcount=1 reference=0"), printed to
     *                           stderr as the format drivers of qemu-img do
     */
    record CheckReport(long corruptions, long leaks, long checkErrors, long corruptionsFixed, long leaksFixed,
                       long imageEndOffset, long totalClusters, long allocatedClusters, long fragmentedClusters,
                       long compressedClusters, List<String> messages) {

        public CheckReport {
            messages = List.copyOf(messages);
        }

        /** A report without finding messages. */
        public CheckReport(long corruptions, long leaks, long checkErrors, long corruptionsFixed, long leaksFixed,
                           long imageEndOffset, long totalClusters, long allocatedClusters, long fragmentedClusters,
                           long compressedClusters) {
            this(corruptions, leaks, checkErrors, corruptionsFixed, leaksFixed, imageEndOffset, totalClusters,
                    allocatedClusters, fragmentedClusters, compressedClusters, List.of());
        }
    }
}
