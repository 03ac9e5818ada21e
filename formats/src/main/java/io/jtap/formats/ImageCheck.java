package io.jtap.formats;

import java.util.List;

/**
 * The result of a consistency check ({@link Checkable#check}), with the numbers {@code qemu-img check} reports
 * (QEMU: {@code BdrvCheckResult} plus {@code BlockFragInfo}).
 *
 * <p>After a repair the counts describe the image <em>after</em> the repair (a second, read-only pass, as
 * {@code qemu-img check -r} does), and {@link #leaksFixed}/{@link #corruptionsFixed} say what the repair changed.
 *
 * @param leaks              host clusters whose refcount is higher than the references to them (wasted space)
 * @param corruptions        inconsistencies that can lose data: refcounts lower than the references (including
 *                           clusters referenced twice, i.e. overlapping metadata or data), out-of-range or
 *                           unaligned offsets, entries with reserved bits set, bad COPIED flags
 * @param checkErrors        parts of the metadata the check could not examine (IO errors, unreadable refcount
 *                           blocks, a refcount structure that needs {@code -r all}); the check is incomplete
 * @param leaksFixed         leaks the repair freed
 * @param corruptionsFixed   corruptions the repair fixed
 * @param imageEndOffset     end of the last host cluster in use, in bytes
 * @param totalClusters      guest clusters of the virtual disk
 * @param allocatedClusters  guest clusters with host clusters in this layer (data, preallocated zero, compressed)
 * @param fragmentedClusters allocated guest clusters not host-contiguous with the previous one (compressed ones
 *                           always count, as in QEMU)
 * @param compressedClusters compressed guest clusters
 * @param messages           one line per finding, in {@code qemu-img check}'s words ("Leaked cluster 7
 *                           refcount=1 reference=0", "ERROR ..."); capped, the last line then says how many more
 */
public record ImageCheck(long leaks, long corruptions, long checkErrors, long leaksFixed, long corruptionsFixed,
                         long imageEndOffset, long totalClusters, long allocatedClusters, long fragmentedClusters,
                         long compressedClusters, List<String> messages) {

    public ImageCheck {
        messages = List.copyOf(messages);
    }

    /** No leaks, no corruptions, and the check was complete. */
    public boolean isClean() {
        return leaks == 0 && corruptions == 0 && checkErrors == 0;
    }

    /**
     * {@code qemu-img check}'s exit code for this result: 1 when the check was incomplete, 2 when the image is
     * corrupt, 3 when it only leaks, 0 when clean. (63, "format cannot check", is the caller's: the image is not
     * {@link Checkable}.)
     */
    public int qemuExitCode() {
        if (checkErrors > 0) {
            return 1;
        }
        if (corruptions > 0) {
            return 2;
        }
        return leaks > 0 ? 3 : 0;
    }
}
