package io.jtap.aio;

import com.sun.jna.Memory;
import com.sun.jna.Pointer;
import io.jtap.xen.linux.LibC;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The slot table both engines share: one slot per operation that may be in flight, each with its caller's userData,
 * its operation, and its {@link IoVector} over a region of one native iovec block. A slot is taken by
 * {@link #reserveVector()} or {@link #take()} and returned by {@link #release} when the completion is reaped.
 *
 * <p>Confined to the engine's owner thread, except that while an operation is in flight the thread running it
 * (a kernel thread for io_uring, a worker for the thread pool) reads and advances that slot's fields; the engine's
 * hand-off (io_uring_enter, or an executor and a lock) orders those accesses.
 */
final class IoSlots implements AutoCloseable {
    static final byte OP_READV = 1;
    static final byte OP_WRITEV = 2;
    static final byte OP_FSYNC = 3;
    static final byte OP_FDATASYNC = 4;
    static final byte OP_FALLOCATE = 5;

    /** {@link #progress} result: the transfer is short, continue it from the advanced vector and offset. */
    static final long CONTINUE = Long.MIN_VALUE;

    /** Linux's {@code UIO_MAXIOV}: the most iovecs one preadv/pwritev/IORING_OP_READV accepts. */
    static final int UIO_MAXIOV = 1024;

    final int capacity;
    final int maxSegments;
    final long[] userData;
    final byte[] op;
    final int[] fd;
    /** The file offset of the next byte to transfer; for fallocate, the range's offset. */
    final long[] offset;
    /** fallocate's length. */
    final long[] length;
    /** fallocate's mode. */
    final int[] mode;
    final IoVector[] vectors;
    private final Memory iovecMemory;
    private final int[] free;
    private int freeCount;
    private int reserved = -1;
    /** Set once the iovec memory is freed; read by {@link IoVector} on the owner thread. */
    boolean closed;

    IoSlots(int capacity, int maxSegments) {
        if (capacity <= 0) {
            throw new IllegalArgumentException("queue depth must be positive: queueDepth=" + capacity);
        }
        if (maxSegments <= 0 || maxSegments > UIO_MAXIOV) {
            throw new IllegalArgumentException("maxSegments must be in 1.." + UIO_MAXIOV + ": maxSegments="
                    + maxSegments);
        }
        this.capacity = capacity;
        this.maxSegments = maxSegments;
        userData = new long[capacity];
        op = new byte[capacity];
        fd = new int[capacity];
        offset = new long[capacity];
        length = new long[capacity];
        mode = new int[capacity];
        vectors = new IoVector[capacity];
        long slotBytes = (long) maxSegments * IoVector.IOVEC_SIZE;
        iovecMemory = new Memory(slotBytes * capacity);
        long base = Pointer.nativeValue(iovecMemory);
        for (int i = 0; i < capacity; i++) {
            ByteBuffer entries = iovecMemory.getByteBuffer(slotBytes * i, slotBytes).order(ByteOrder.nativeOrder());
            vectors[i] = new IoVector(this, i, entries, base + slotBytes * i, maxSegments);
        }
        free = new int[capacity];
        for (int i = 0; i < capacity; i++) {
            free[i] = capacity - 1 - i;
        }
        freeCount = capacity;
    }

    int inUse() {
        return capacity - freeCount;
    }

    /** See {@link BlockIoEngine#vector()}. */
    IoVector reserveVector() {
        if (reserved < 0) {
            reserved = take();
        }
        IoVector v = vectors[reserved];
        v.reset();
        return v;
    }

    /** Takes a free slot. */
    int take() {
        if (freeCount == 0) {
            throw new IllegalStateException("block IO engine full: capacity=" + capacity + ", inFlight=" + inUse()
                    + " (check available() before preparing)");
        }
        return free[--freeCount];
    }

    /** Claims the reserved vector's slot for a readv/writev. */
    int claim(IoVector v, int fdValue, long offsetValue, byte opValue, long userDataValue) {
        if (v.owner != this || v.slot != reserved) {
            throw new IllegalArgumentException("not this engine's reserved vector: slot=" + v.slot + ", reserved="
                    + reserved);
        }
        if (v.segments() == 0) {
            throw new IllegalArgumentException("empty iovec");
        }
        if (offsetValue < 0) {
            throw new IllegalArgumentException("negative offset: offset=" + offsetValue);
        }
        reserved = -1;
        int slot = v.slot;
        set(slot, opValue, fdValue, offsetValue, userDataValue);
        return slot;
    }

    void set(int slot, byte opValue, int fdValue, long offsetValue, long userDataValue) {
        op[slot] = opValue;
        fd[slot] = fdValue;
        offset[slot] = offsetValue;
        userData[slot] = userDataValue;
    }

    void release(int slot) {
        op[slot] = 0;
        free[freeCount++] = slot;
    }

    boolean isBusy(int slot) {
        return op[slot] != 0;
    }

    /**
     * Folds one transfer result into a readv/writev slot: returns the final result for the handler, or
     * {@link #CONTINUE} after advancing the vector and offset over a short transfer.
     */
    long progress(int slot, long result) {
        byte o = op[slot];
        if (o != OP_READV && o != OP_WRITEV) {
            return result;
        }
        if (result < 0) {
            return result;
        }
        IoVector v = vectors[slot];
        if (result == 0) {
            // No progress: a read at end of file, or a write the file refuses without an errno.
            return o == OP_READV ? BlockIoEngine.SHORT_READ_AT_EOF : -LibC.EIO;
        }
        if (result >= v.remaining()) {
            return v.length();
        }
        v.advance(result);
        offset[slot] += result;
        return CONTINUE;
    }

    @Override
    public void close() {
        closed = true;
        iovecMemory.close();
    }
}
