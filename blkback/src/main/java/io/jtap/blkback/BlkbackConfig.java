package io.jtap.blkback;

import java.time.Duration;

/**
 * Tunables of the block backend, per device (the daemon uses one for all). Immutable.
 *
 * @param grantMode             how data pages are reached; see {@link GrantMode}
 * @param maxPersistentGrants   pages kept mapped persistently per ring; see {@link #DEFAULT_MAX_PERSISTENT_GRANTS}
 * @param maxPersistentGrantsTotal pages kept mapped persistently by all rings of all devices that share a budget
 *                              (one {@link BlkbackService}: the daemon's); see
 *                              {@link #DEFAULT_MAX_PERSISTENT_GRANTS_TOTAL}
 * @param persistentIdle        a persistent grant unused this long is unmapped (Linux: 60 s)
 * @param maxIndirectSegments   advertised {@code feature-max-indirect-segments}; at least 256, at most
 *                              8 pages x 512 = 4096
 * @param maxRingPageOrder      advertised {@code max-ring-page-order}, 0..4
 * @param maxQueues             advertised {@code multi-queue-max-queues}, at least 1
 * @param discard               advertise {@code feature-discard} on writable devices
 * @param discardGranularity    advertised {@code discard-granularity} in bytes
 * @param physicalSectorSize    advertised {@code physical-sector-size} in bytes
 * @param ioEngine              how plain reads reach the image's DATA extents: {@value #IO_ENGINE_IO_URING} (submitted
 *                              by the ring thread, see {@code io.jtap.aio.LinuxIoUring}), or {@value #IO_ENGINE_POOL}
 *                              (everything on the worker pool); the engine is never chosen silently
 * @param offloadReadBytes      io_uring reads of at least this many bytes run on io_uring's kernel workers instead
 *                              of inside the ring thread's submit (see {@link #DEFAULT_OFFLOAD_READ_BYTES}); 0 never
 */
public record BlkbackConfig(GrantMode grantMode, int maxPersistentGrants, int maxPersistentGrantsTotal,
                            Duration persistentIdle, int maxIndirectSegments, int maxRingPageOrder, int maxQueues,
                            boolean discard, int discardGranularity, int physicalSectorSize, String ioEngine,
                            int offloadReadBytes) {
    /** Reads through io_uring, submitted and reaped by the ring thread. */
    public static final String IO_ENGINE_IO_URING = "io_uring";
    /** All IO on the bounded worker pool. */
    public static final String IO_ENGINE_POOL = "pool";
    /**
     * Pages a ring keeps mapped persistently: 8448 = 256 requests x 33 pages, Linux blkfront's default request (its
     * {@code max_indirect_segments} = 32 data pages, 128 KiB, plus 1 indirect page) 256 times over: fio
     * {@code bs=1M iodepth=32} (8 requests per 1 MiB). blkfront takes its grants from a last-in first-out free list,
     * so the grants it reuses are about those it has had in flight at once. Linux blkback's
     * {@code xen_blkif_max_pgrants} = 1056 = 32 x 33 is all a single-page ring (32 slots) can have in flight; with
     * the order-4 ring jtap offers (512 slots) blkfront can have 512 x 33 = 16896, and {@code bs=1M iodepth=8}
     * alone keeps 64 x 33 = 2112 in flight, twice 1056. A persistent page costs jtap no memory of its own (the page is
     * the guest's; about 100 bytes of bookkeeping) but a share of a VMA and a Xen maptrack entry, which
     * {@link #DEFAULT_MAX_PERSISTENT_GRANTS_TOTAL} bounds across rings.
     */
    public static final int DEFAULT_MAX_PERSISTENT_GRANTS = 256 * 33;
    /**
     * Pages all rings of one service keep mapped persistently: 32768, half of Linux's default
     * {@code vm.max_map_count} (65530), which bounds the VMAs of the whole process. A persistent mapping is one VMA
     * for one request's new grants (33 pages for a 128 KiB request, 1 for 4 KiB), so the pages are an upper bound on
     * the VMAs; the other half stays for the JVM (a few thousand), the rings, the mappings of requests whose grants
     * are not persistent (one per request in flight) and netback. 32768 pages are four rings at the full
     * {@link #DEFAULT_MAX_PERSISTENT_GRANTS}, or fifteen at {@code bs=1M iodepth=8}; beyond that, rings map new
     * grants per request (one map call per request) until idle or purged grants give pages back.
     */
    public static final int DEFAULT_MAX_PERSISTENT_GRANTS_TOTAL = 32768;
    /**
     * Reads of 256 KiB and more (a quarter of a 1 MiB indirect request) are copied by io_uring's kernel workers: a
     * page-cache hit is otherwise copied inside the ring thread's {@code io_uring_enter}, so one ring copies one
     * request at a time. Offloaded, the copies of several large requests run on other cores while the ring thread
     * takes the next requests; below this size the hand-off costs more than the copy. Measured in
     * {@code bench/README.md} (1 MiB sequential reads).
     */
    public static final int DEFAULT_OFFLOAD_READ_BYTES = 256 << 10;
    /** Linux {@code MAX_INDIRECT_SEGMENTS} default advertised by blkback. */
    public static final int DEFAULT_MAX_INDIRECT_SEGMENTS = 256;

    public BlkbackConfig {
        if (maxIndirectSegments < 0 || maxIndirectSegments > 4096) {
            throw new IllegalArgumentException("maxIndirectSegments out of range: maxIndirectSegments="
                    + maxIndirectSegments);
        }
        if (maxRingPageOrder < 0 || maxRingPageOrder > 4) {
            throw new IllegalArgumentException("maxRingPageOrder out of range: maxRingPageOrder=" + maxRingPageOrder);
        }
        if (offloadReadBytes < 0) {
            throw new IllegalArgumentException("offloadReadBytes out of range: offloadReadBytes=" + offloadReadBytes);
        }
        if (maxQueues < 1 || maxPersistentGrants < 0 || maxPersistentGrantsTotal < 0) {
            throw new IllegalArgumentException("bad config: maxQueues=" + maxQueues + ", maxPersistentGrants="
                    + maxPersistentGrants + ", maxPersistentGrantsTotal=" + maxPersistentGrantsTotal);
        }
        if (Integer.bitCount(discardGranularity) != 1 || Integer.bitCount(physicalSectorSize) != 1
                || physicalSectorSize < 512) {
            throw new IllegalArgumentException("sizes must be powers of two: discardGranularity="
                    + discardGranularity + ", physicalSectorSize=" + physicalSectorSize);
        }
    }

    /** Persistent grants, 256 indirect segments, order-4 rings, 4 queues, discard at 4 KiB, io_uring reads. */
    public static BlkbackConfig defaults() {
        return new BlkbackConfig(GrantMode.PERSISTENT, DEFAULT_MAX_PERSISTENT_GRANTS,
                DEFAULT_MAX_PERSISTENT_GRANTS_TOTAL, Duration.ofSeconds(60), DEFAULT_MAX_INDIRECT_SEGMENTS, 4, 4, true,
                4096, 512, IO_ENGINE_IO_URING, DEFAULT_OFFLOAD_READ_BYTES);
    }

    public BlkbackConfig withGrantMode(GrantMode value) {
        return new BlkbackConfig(value, maxPersistentGrants, maxPersistentGrantsTotal, persistentIdle,
                maxIndirectSegments, maxRingPageOrder, maxQueues, discard, discardGranularity, physicalSectorSize,
                ioEngine, offloadReadBytes);
    }

    public BlkbackConfig withMaxPersistentGrants(int value) {
        return new BlkbackConfig(grantMode, value, maxPersistentGrantsTotal, persistentIdle, maxIndirectSegments,
                maxRingPageOrder, maxQueues, discard, discardGranularity, physicalSectorSize,
                ioEngine, offloadReadBytes);
    }

    public BlkbackConfig withMaxPersistentGrantsTotal(int value) {
        return new BlkbackConfig(grantMode, maxPersistentGrants, value, persistentIdle, maxIndirectSegments,
                maxRingPageOrder, maxQueues, discard, discardGranularity, physicalSectorSize,
                ioEngine, offloadReadBytes);
    }

    public BlkbackConfig withPersistentIdle(Duration value) {
        return new BlkbackConfig(grantMode, maxPersistentGrants, maxPersistentGrantsTotal, value, maxIndirectSegments,
                maxRingPageOrder, maxQueues, discard, discardGranularity, physicalSectorSize,
                ioEngine, offloadReadBytes);
    }

    public BlkbackConfig withMaxIndirectSegments(int value) {
        return new BlkbackConfig(grantMode, maxPersistentGrants, maxPersistentGrantsTotal, persistentIdle, value,
                maxRingPageOrder, maxQueues, discard, discardGranularity, physicalSectorSize,
                ioEngine, offloadReadBytes);
    }

    public BlkbackConfig withMaxRingPageOrder(int value) {
        return new BlkbackConfig(grantMode, maxPersistentGrants, maxPersistentGrantsTotal, persistentIdle,
                maxIndirectSegments, value, maxQueues, discard, discardGranularity, physicalSectorSize,
                ioEngine, offloadReadBytes);
    }

    public BlkbackConfig withMaxQueues(int value) {
        return new BlkbackConfig(grantMode, maxPersistentGrants, maxPersistentGrantsTotal, persistentIdle,
                maxIndirectSegments, maxRingPageOrder, value, discard, discardGranularity, physicalSectorSize,
                ioEngine, offloadReadBytes);
    }

    public BlkbackConfig withDiscard(boolean value) {
        return new BlkbackConfig(grantMode, maxPersistentGrants, maxPersistentGrantsTotal, persistentIdle,
                maxIndirectSegments, maxRingPageOrder, maxQueues, value, discardGranularity, physicalSectorSize,
                ioEngine, offloadReadBytes);
    }

    public BlkbackConfig withOffloadReadBytes(int value) {
        return new BlkbackConfig(grantMode, maxPersistentGrants, maxPersistentGrantsTotal, persistentIdle,
                maxIndirectSegments, maxRingPageOrder, maxQueues, discard, discardGranularity, physicalSectorSize,
                ioEngine, value);
    }

    public BlkbackConfig withIoEngine(String value) {
        return new BlkbackConfig(grantMode, maxPersistentGrants, maxPersistentGrantsTotal, persistentIdle,
                maxIndirectSegments, maxRingPageOrder, maxQueues, discard, discardGranularity, physicalSectorSize,
                value, offloadReadBytes);
    }
}
