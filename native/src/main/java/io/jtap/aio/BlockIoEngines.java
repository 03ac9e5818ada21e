package io.jtap.aio;

import java.io.IOException;
import java.util.List;

/**
 * Opens a {@link BlockIoEngine} by name. There is no automatic choice: the configuration names the engine, and when
 * it cannot be opened the exception says why (io_uring disabled, kernel without it, ...). Whoever wants the thread
 * pool on a host without io_uring asks for {@link #THREADS}.
 */
public final class BlockIoEngines {
    /** {@link LinuxIoUring}. */
    public static final String IO_URING = "io_uring";
    /** {@link ThreadPoolIoEngine}. */
    public static final String THREADS = "threads";
    public static final List<String> KINDS = List.of(IO_URING, THREADS);

    /** Operations in flight per engine: a blkif ring has 32 slots per page; four pages of requests. */
    public static final int DEFAULT_QUEUE_DEPTH = 128;
    /** Segments per operation: Linux blkfront's largest indirect request (max_indirect_segments = 256). */
    public static final int DEFAULT_MAX_SEGMENTS = 256;

    private BlockIoEngines() {
    }

    /** Opens {@code kind} with {@link #DEFAULT_QUEUE_DEPTH} and {@link #DEFAULT_MAX_SEGMENTS}. */
    public static BlockIoEngine open(String kind) throws IOException {
        return open(kind, DEFAULT_QUEUE_DEPTH, DEFAULT_MAX_SEGMENTS);
    }

    /**
     * Opens the engine named {@code kind} ({@link #IO_URING} or {@link #THREADS}; the thread pool gets
     * {@link #defaultThreads()} workers).
     *
     * @throws IllegalArgumentException for an unknown kind
     * @throws IOException              naming the kind and the cause when the engine is unavailable or fails to open
     */
    public static BlockIoEngine open(String kind, int queueDepth, int maxSegments) throws IOException {
        try {
            switch (kind) {
                case IO_URING:
                    return LinuxIoUring.open(queueDepth, maxSegments);
                case THREADS:
                    return ThreadPoolIoEngine.open(queueDepth, maxSegments, defaultThreads());
                default:
                    throw new IllegalArgumentException("unknown block IO engine: kind=" + kind + ", known=" + KINDS);
            }
        } catch (UnsatisfiedLinkError | IOException e) {
            throw new IOException("cannot open block IO engine: kind=" + kind + ", cause=" + e.getMessage(), e);
        }
    }

    /** Worker threads for the thread pool: the number of CPUs, at least 2. */
    public static int defaultThreads() {
        return Math.max(2, Runtime.getRuntime().availableProcessors());
    }
}
