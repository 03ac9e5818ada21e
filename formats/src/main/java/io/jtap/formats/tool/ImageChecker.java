package io.jtap.formats.tool;

import io.jtap.formats.ImageFormat;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Optional;

/**
 * The seam for {@code check}: consistency checks and repairs live in the format layer (qcow2's refcount and
 * metadata checker is being built there); jtap-img only runs them and reports as {@code qemu-img check} does.
 * {@link #installed()} is what the format layer provides today.
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
     * The checkers the format layer provides. None yet: the qcow2 checker is not on main, so every format reports
     * "does not support checks".
     */
    static ImageChecker installed() {
        return (path, format, repair) -> Optional.empty();
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
     */
    record CheckReport(long corruptions, long leaks, long checkErrors, long corruptionsFixed, long leaksFixed,
                       long imageEndOffset, long totalClusters, long allocatedClusters, long fragmentedClusters,
                       long compressedClusters) {
    }
}
