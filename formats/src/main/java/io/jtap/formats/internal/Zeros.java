package io.jtap.formats.internal;

import java.nio.ByteBuffer;
import java.util.Arrays;

/** Fills buffers with zeros in bulk (a copy from a shared zero buffer), not a byte at a time. */
public final class Zeros {
    /** Large enough that a 2 MiB chunk takes 32 bulk copies; read-only, so sharing it between threads is safe. */
    private static final ByteBuffer ZEROS = ByteBuffer.allocateDirect(64 << 10).asReadOnlyBuffer();

    private Zeros() {
    }

    /** Sets {@code dst}'s remaining bytes to zero and advances its position to its limit. */
    public static void fill(ByteBuffer dst) {
        if (dst.hasArray()) {
            int start = dst.arrayOffset() + dst.position();
            Arrays.fill(dst.array(), start, start + dst.remaining(), (byte) 0);
            dst.position(dst.limit());
            return;
        }
        while (dst.hasRemaining()) {
            dst.put(ZEROS.duplicate().limit(Math.min(dst.remaining(), ZEROS.capacity())));
        }
    }
}
