package io.jtap.blkback;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * The pages that the rings of many devices may keep mapped persistently together. Each persistent mapping is a VMA
 * of this process (and each page a Xen maptrack entry), and a process has at most {@code vm.max_map_count} VMAs
 * (65530 by default) for everything it maps: the per-ring limit alone would let a few busy devices exhaust it. A
 * {@link BlkbackService} holds one for all its devices; a device made on its own holds its own.
 *
 * <p>Counted in pages, an upper bound on the VMAs (a chunk of several pages is one VMA). When the budget is spent, a
 * ring maps its new grants for the request only, as when its own limit is reached. Thread-safe: every ring thread
 * takes and returns pages.
 */
final class PersistentGrantBudget {
    private final int limit;
    private final AtomicInteger used = new AtomicInteger();

    PersistentGrantBudget(int limit) {
        if (limit < 0) {
            throw new IllegalArgumentException("negative persistent grant budget: limit=" + limit);
        }
        this.limit = limit;
    }

    /** Takes {@code pages} if that stays within the limit; false, taking nothing, otherwise. */
    boolean tryAcquire(int pages) {
        while (true) {
            int now = used.get();
            if (pages > limit - now) {
                return false;
            }
            if (used.compareAndSet(now, now + pages)) {
                return true;
            }
        }
    }

    /** Returns pages taken by {@link #tryAcquire}. */
    void release(int pages) {
        used.addAndGet(-pages);
    }

    /** Pages taken now. */
    int used() {
        return used.get();
    }

    int limit() {
        return limit;
    }
}
