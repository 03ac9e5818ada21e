package io.jtap.ring;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Plain little-endian field access at absolute byte offsets, whatever the buffer's own {@link ByteOrder} and
 * alignment (the x86_32 ABI puts 64-bit fields at 4-byte offsets). The descriptors read and write message fields
 * through it. Unsigned C types widen: {@code uint8_t}/{@code uint16_t} to a non-negative int, {@code uint32_t}
 * stays in an int (bit pattern), {@code uint64_t} in a long.
 */
public final class LittleEndian {
    private static final VarHandle SHORT = MethodHandles.byteBufferViewVarHandle(short[].class,
        ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle INT = MethodHandles.byteBufferViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle LONG = MethodHandles.byteBufferViewVarHandle(long[].class,
        ByteOrder.LITTLE_ENDIAN);

    private LittleEndian() {
    }

    /** {@code uint8_t}. */
    public static int getUint8(final ByteBuffer buffer, final int offset) {
        return buffer.get(offset) & 0xff;
    }

    public static void putUint8(final ByteBuffer buffer, final int offset, final int value) {
        buffer.put(offset, (byte) value);
    }

    /** {@code uint16_t}. */
    public static int getUint16(final ByteBuffer buffer, final int offset) {
        return (short) SHORT.get(buffer, offset) & 0xffff;
    }

    /** {@code int16_t}. */
    public static short getInt16(final ByteBuffer buffer, final int offset) {
        return (short) SHORT.get(buffer, offset);
    }

    /** {@code uint16_t} or {@code int16_t}: the low 16 bits of {@code value}. */
    public static void putInt16(final ByteBuffer buffer, final int offset, final int value) {
        SHORT.set(buffer, offset, (short) value);
    }

    /** {@code uint32_t} or {@code int32_t}, as its bit pattern. */
    public static int getInt32(final ByteBuffer buffer, final int offset) {
        return (int) INT.get(buffer, offset);
    }

    public static void putInt32(final ByteBuffer buffer, final int offset, final int value) {
        INT.set(buffer, offset, value);
    }

    /** {@code uint64_t} or {@code int64_t}, as its bit pattern. */
    public static long getInt64(final ByteBuffer buffer, final int offset) {
        return (long) LONG.get(buffer, offset);
    }

    public static void putInt64(final ByteBuffer buffer, final int offset, final long value) {
        LONG.set(buffer, offset, value);
    }
}
