package io.jtap.aio;

import io.jtap.xen.linux.LibC;
import java.io.IOException;

/**
 * Asynchronous positional block IO for the block backend: vectored reads and writes at a host offset, flushes and
 * fallocate, many in flight, completions reaped in batches by the ring thread.
 *
 * <p>Why this shape: a blkif request is up to 11 (indirect: 256 and more) segments of at most 4 KiB, each in its own
 * guest page, so one request is one vectored IO at one host offset. The ring thread polls the event-channel fd and
 * {@link #completionFd()} together, so completions are signalled on an fd, not by a callback thread. The engine owns
 * {@link #capacity()} slots; an operation holds a slot from {@link #vector()} (or its prepare call) until its
 * completion is reaped, which is the backpressure: the engine never has more operations in flight than it can post
 * completions for, so the io_uring completion queue can never overflow. Each slot owns a native iovec array
 * ({@link IoVector}), reused for every operation in that slot, so the data path allocates nothing.
 *
 * <p>Lifecycle of an operation: prepare ({@link #readv}, {@link #writev}, {@link #fsync}, {@link #fallocate}) →
 * {@link #submit()} → the kernel or a worker runs it → {@link #completionFd()} becomes readable → {@link #reap}
 * calls the handler once with the caller's {@code userData} and the result, and frees the slot.
 *
 * <p>Short transfers: a read or write that transfers less than asked is continued from where it stopped (the
 * remaining iovecs at the advanced offset) until it is complete, fails, or makes no progress; the handler sees only
 * the final outcome. A read that reaches end of file completes with {@link #SHORT_READ_AT_EOF}: the backend checks
 * its bounds before reading, so reading past the end of an image is an error, not zeros.
 *
 * <p>Ordering: operations in flight run in any order and complete in any order. A flush covers only writes that have
 * <em>completed</em> (been reaped) before it is prepared: the caller orders a flush after the writes it must cover
 * (Linux blkback drains in-flight IO before a flush; so does jtap's block backend).
 *
 * <p>Threading: confined to one owner thread (the ring thread); only {@link #completionFd()}, {@link #capacity()} and
 * {@link #maxSegments()} may be read from any thread. Buffers named by an iovec must stay valid until the operation's
 * completion is reaped (or {@link #close()} returns).
 */
public interface BlockIoEngine extends AutoCloseable {
    /** The result of a read that reached end of file before the vector was filled: {@code -ENODATA}. */
    long SHORT_READ_AT_EOF = -LibC.ENODATA;

    /** {@code FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE}: deallocate a range, reads return zeros. */
    int FALLOCATE_PUNCH_HOLE = LibC.FALLOC_FL_PUNCH_HOLE | LibC.FALLOC_FL_KEEP_SIZE;
    /** {@code FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE}: zero a range, keeping (or allocating) its blocks. */
    int FALLOCATE_ZERO_RANGE = LibC.FALLOC_FL_ZERO_RANGE | LibC.FALLOC_FL_KEEP_SIZE;

    /** "io_uring" or "threads", as accepted by {@link BlockIoEngines#open}. */
    String kind();

    /** The most operations that can hold a slot at once (prepared, submitted or completed but not yet reaped). */
    int capacity();

    /** The most segments one {@link IoVector} holds. */
    int maxSegments();

    /** Operations holding a slot: reserved vector, prepared, submitted, or completed but not yet reaped. */
    int inFlight();

    /** Slots free for new operations: {@code capacity() - inFlight()}. Check it before preparing (backpressure). */
    default int available() {
        return capacity() - inFlight();
    }

    /**
     * Reserves a slot and returns its iovec builder, empty. The slot is held until the vector is passed to
     * {@link #readv} or {@link #writev} and that operation is reaped; calling {@code vector()} again before that
     * returns the same vector, emptied.
     *
     * @throws IllegalStateException when no slot is free ({@link #available()} is 0)
     */
    IoVector vector();

    /**
     * Prepares a vectored read of the reserved vector from {@code fd} at byte {@code offset}. Takes effect at
     * {@link #submit()} (or earlier, if the engine must submit to make room).
     *
     * @throws IllegalArgumentException if {@code vector} is not this engine's reserved vector, is empty, or
     *     offset &lt; 0
     */
    void readv(int fd, long offset, IoVector vector, long userData) throws IOException;

    /** Prepares a vectored write of the reserved vector to {@code fd} at byte {@code offset}; as {@link #readv}. */
    void writev(int fd, long offset, IoVector vector, long userData) throws IOException;

    /**
     * Prepares a flush of {@code fd}: {@code fdatasync} when {@code datasync}, else {@code fsync}. Covers writes reaped
     * before this call only (see the class comment).
     *
     * @throws IllegalStateException when no slot is free
     */
    void fsync(int fd, boolean datasync, long userData) throws IOException;

    /**
     * Prepares {@code fallocate(fd, mode, offset, length)}, e.g. {@link #FALLOCATE_PUNCH_HOLE} for a discard or
     * {@link #FALLOCATE_ZERO_RANGE} for write-zeroes. The result is 0 or -errno (-EOPNOTSUPP where the filesystem has
     * no such mode: the caller falls back to writing zeros).
     *
     * @throws IllegalStateException when no slot is free
     */
    void fallocate(int fd, int mode, long offset, long length, long userData) throws IOException;

    /**
     * Starts every prepared operation.
     *
     * @return the number of operations started by this call (0 when none were prepared)
     * @throws IOException when the engine itself fails (not when an operation fails: that is a completion)
     */
    int submit() throws IOException;

    /**
     * Delivers every completion available now to {@code handler}, without blocking, freeing each slot before the
     * handler runs (the handler may prepare new operations; it must {@link #submit()} them itself). Resets
     * {@link #completionFd()}'s readiness first, so a completion that arrives during or after the call makes it
     * readable again. May submit continuations of short transfers (and with them anything already prepared).
     *
     * @return the number of completions delivered; 0 when idle
     */
    default int reap(CompletionHandler handler) throws IOException {
        resetCompletionFd();
        return reapReady(handler);
    }

    /**
     * Delivers every completion available now, as {@link #reap} does, but leaves {@link #completionFd()}'s readiness
     * alone: no system call unless a short transfer must be continued. For an owner that resets the fd itself, only
     * before it sleeps ({@link #resetCompletionFd()}), instead of once per reap.
     *
     * @return the number of completions delivered; 0 when idle
     */
    int reapReady(CompletionHandler handler) throws IOException;

    /**
     * Resets {@link #completionFd()}'s readiness (one system call). The fd stays readable after completions were
     * posted until this or {@link #reap} is called: an owner that reaps with {@link #reapReady} calls this before it
     * sleeps on the fd whenever it reaped something or the fd woke it, and then checks {@link #completionsReady()}
     * once more, since a completion posted before the reset no longer makes the fd readable.
     */
    void resetCompletionFd() throws IOException;

    /**
     * Reads of at least {@code bytes} run off the owner's thread, so that a large read from the page cache (a copy the
     * engine may otherwise do inside {@link #submit()}) overlaps with the owner's other work; 0 turns it off. An
     * engine that always runs operations elsewhere ignores it.
     */
    default void offloadReadsFrom(long bytes) {
    }

    /**
     * Whether a {@link #reap} now would deliver a completion, without a system call: a cheap check for an owner
     * that busy-polls briefly before it sleeps on {@link #completionFd()}. A false answer may be stale by the time
     * it is returned; the owner still sleeps on the fd, so nothing is lost.
     */
    boolean completionsReady();

    /**
     * A non-blocking eventfd that becomes readable (POLLIN) when completions may be waiting; owned by the engine.
     * Poll it with the ring's other fds, then call {@link #reap}.
     */
    int completionFd();

    /**
     * Waits until operations in flight have completed (discarding their results), then releases the engine's fds and
     * native memory. Operations prepared but not submitted are discarded. Idempotent.
     */
    @Override
    void close() throws IOException;
}
