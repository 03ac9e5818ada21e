package io.jtap.formats.qcow2;

import java.io.IOException;
import java.util.concurrent.CountDownLatch;

/**
 * A guest cluster whose new host cluster is reserved (refcount 1) but not yet linked into its L2 table
 * (QEMU: {@code QCowL2Meta}). Requests writing into the same guest cluster meanwhile join it instead of
 * allocating again. Fields other than the latch are guarded by the image's metadata lock.
 */
final class PendingCluster {
    final long guestCluster;
    final long hostOffset;
    /** The L2 entry being replaced: the copy-on-write source, and what to free once linked. */
    final long oldEntry;
    /** True when the old entry's own host cluster (a preallocated zero cluster) is reused: nothing to free. */
    final boolean reusesOldCluster;
    int participants = 1;
    boolean linked;
    private final CountDownLatch cowDone = new CountDownLatch(1);
    private volatile IOException cowFailure;

    PendingCluster(long guestCluster, long hostOffset, long oldEntry, boolean reusesOldCluster) {
        this.guestCluster = guestCluster;
        this.hostOffset = hostOffset;
        this.oldEntry = oldEntry;
        this.reusesOldCluster = reusesOldCluster;
    }

    /** Called once by the allocating request when its copy-on-write has finished, well or not. */
    void cowFinished(IOException failure) {
        cowFailure = failure;
        cowDone.countDown();
    }

    /** Waits for the allocating request's copy-on-write (plugin IO only, never a caller's data IO). */
    void awaitCow() throws IOException {
        try {
            cowDone.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new java.io.InterruptedIOException("interrupted waiting for copy-on-write: guestCluster="
                    + guestCluster);
        }
        if (cowFailure != null) {
            throw new IOException("copy-on-write of a shared new cluster failed: guestCluster=" + guestCluster,
                    cowFailure);
        }
    }
}
