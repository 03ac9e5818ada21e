package io.jtap.blkback;

import java.time.Duration;

/**
 * Tunables of the block backend, per device (the daemon uses one for all). Immutable.
 *
 * @param grantMode             how data pages are reached; see {@link GrantMode}
 * @param maxPersistentGrants   persistent grants kept mapped per ring; Linux blkback's default is
 *                              {@code xen_blkif_max_pgrants} = 1056 (= 32 requests x 33 segments)
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
 */
public record BlkbackConfig(GrantMode grantMode, int maxPersistentGrants, Duration persistentIdle,
                            int maxIndirectSegments, int maxRingPageOrder, int maxQueues, boolean discard,
                            int discardGranularity, int physicalSectorSize, String ioEngine) {
    /** Reads through io_uring, submitted and reaped by the ring thread. */
    public static final String IO_ENGINE_IO_URING = "io_uring";
    /** All IO on the bounded worker pool. */
    public static final String IO_ENGINE_POOL = "pool";
    /** Linux {@code xen_blkif_max_pgrants}. */
    public static final int DEFAULT_MAX_PERSISTENT_GRANTS = 1056;
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
        if (maxQueues < 1 || maxPersistentGrants < 0) {
            throw new IllegalArgumentException("bad config: maxQueues=" + maxQueues + ", maxPersistentGrants="
                    + maxPersistentGrants);
        }
        if (Integer.bitCount(discardGranularity) != 1 || Integer.bitCount(physicalSectorSize) != 1
                || physicalSectorSize < 512) {
            throw new IllegalArgumentException("sizes must be powers of two: discardGranularity="
                    + discardGranularity + ", physicalSectorSize=" + physicalSectorSize);
        }
    }

    /** Persistent grants, 256 indirect segments, order-4 rings, 4 queues, discard at 4 KiB, io_uring reads. */
    public static BlkbackConfig defaults() {
        return new BlkbackConfig(GrantMode.PERSISTENT, DEFAULT_MAX_PERSISTENT_GRANTS, Duration.ofSeconds(60),
                DEFAULT_MAX_INDIRECT_SEGMENTS, 4, 4, true, 4096, 512, IO_ENGINE_IO_URING);
    }

    public BlkbackConfig withGrantMode(GrantMode value) {
        return new BlkbackConfig(value, maxPersistentGrants, persistentIdle, maxIndirectSegments, maxRingPageOrder,
                maxQueues, discard, discardGranularity, physicalSectorSize, ioEngine);
    }

    public BlkbackConfig withMaxPersistentGrants(int value) {
        return new BlkbackConfig(grantMode, value, persistentIdle, maxIndirectSegments, maxRingPageOrder,
                maxQueues, discard, discardGranularity, physicalSectorSize, ioEngine);
    }

    public BlkbackConfig withPersistentIdle(Duration value) {
        return new BlkbackConfig(grantMode, maxPersistentGrants, value, maxIndirectSegments, maxRingPageOrder,
                maxQueues, discard, discardGranularity, physicalSectorSize, ioEngine);
    }

    public BlkbackConfig withMaxIndirectSegments(int value) {
        return new BlkbackConfig(grantMode, maxPersistentGrants, persistentIdle, value, maxRingPageOrder,
                maxQueues, discard, discardGranularity, physicalSectorSize, ioEngine);
    }

    public BlkbackConfig withMaxRingPageOrder(int value) {
        return new BlkbackConfig(grantMode, maxPersistentGrants, persistentIdle, maxIndirectSegments, value,
                maxQueues, discard, discardGranularity, physicalSectorSize, ioEngine);
    }

    public BlkbackConfig withMaxQueues(int value) {
        return new BlkbackConfig(grantMode, maxPersistentGrants, persistentIdle, maxIndirectSegments,
                maxRingPageOrder, value, discard, discardGranularity, physicalSectorSize, ioEngine);
    }

    public BlkbackConfig withDiscard(boolean value) {
        return new BlkbackConfig(grantMode, maxPersistentGrants, persistentIdle, maxIndirectSegments,
                maxRingPageOrder, maxQueues, value, discardGranularity, physicalSectorSize, ioEngine);
    }

    public BlkbackConfig withIoEngine(String value) {
        return new BlkbackConfig(grantMode, maxPersistentGrants, persistentIdle, maxIndirectSegments,
                maxRingPageOrder, maxQueues, discard, discardGranularity, physicalSectorSize, value);
    }
}
