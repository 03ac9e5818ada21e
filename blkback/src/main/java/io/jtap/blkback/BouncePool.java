package io.jtap.blkback;

import java.nio.ByteBuffer;
import java.util.ArrayDeque;

/**
 * Direct buffers for grant-copy mode, reused instead of allocated per request (a direct allocation zeroes its
 * memory and registers a cleaner: several microseconds for a 4 KiB request). Sizes are rounded up to powers of two
 * from one page; at most {@code maxPooledBytes} are kept. Confined to the ring thread.
 */
final class BouncePool {
    private static final int MIN_SHIFT = 12;
    private final ArrayDeque<ByteBuffer>[] free;
    private final long maxPooledBytes;
    private long pooledBytes;

    @SuppressWarnings("unchecked")
    BouncePool(long maxPooledBytes) {
        this.free = new ArrayDeque[32];
        this.maxPooledBytes = maxPooledBytes;
    }

    private static int sizeClass(int length) {
        int shift = 32 - Integer.numberOfLeadingZeros(Math.max(length, 1) - 1);
        return Math.max(shift, MIN_SHIFT);
    }

    /** A buffer of at least {@code length} bytes; give it back with {@link #release}. */
    ByteBuffer acquire(int length) {
        int c = sizeClass(length);
        ArrayDeque<ByteBuffer> q = free[c];
        if (q != null && !q.isEmpty()) {
            ByteBuffer b = q.pop();
            pooledBytes -= b.capacity();
            return b;
        }
        return ByteBuffer.allocateDirect(1 << c);
    }

    void release(ByteBuffer buffer) {
        if (pooledBytes + buffer.capacity() > maxPooledBytes) {
            return;
        }
        int c = sizeClass(buffer.capacity());
        if (free[c] == null) {
            free[c] = new ArrayDeque<>();
        }
        free[c].push(buffer.clear());
        pooledBytes += buffer.capacity();
    }
}
