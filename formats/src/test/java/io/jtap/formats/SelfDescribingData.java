package io.jtap.formats;

import java.nio.ByteBuffer;

/**
 * Self-describing test data: the big-endian 8-byte word at offset {@code o} (8-aligned) is
 * {@code (tag << 48) | o}, so a misplaced byte names the offset and the write (tag) it came from.
 */
public final class SelfDescribingData {
    private SelfDescribingData() {
    }

    public static long word(long offset, int tag) {
        return ((long) tag << 48) | (offset & ~7L);
    }

    public static byte byteAt(long offset, int tag) {
        return (byte) (word(offset, tag) >>> (8 * (7 - (offset & 7))));
    }

    /** Fills {@code dst[from, from+length)} with the data for guest offset {@code offset}. */
    public static void fill(byte[] dst, int from, int length, long offset, int tag) {
        for (int i = 0; i < length; i++) {
            dst[from + i] = byteAt(offset + i, tag);
        }
    }

    public static ByteBuffer buffer(long offset, int length, int tag) {
        byte[] b = new byte[length];
        fill(b, 0, length, offset, tag);
        return ByteBuffer.wrap(b);
    }

    /**
     * Null when equal, else a description of the first difference: offset, both 8-byte words, and the offset and
     * tag each word claims.
     */
    public static String firstDifference(byte[] expected, byte[] actual, long base) {
        int n = Math.min(expected.length, actual.length);
        for (int i = 0; i < n; i++) {
            if (expected[i] != actual[i]) {
                int w = i & ~7;
                return "first difference at offset " + (base + i) + ": expected word " + describe(expected, w)
                        + ", actual word " + describe(actual, w);
            }
        }
        return expected.length == actual.length ? null
                : "length differs: expected=" + expected.length + ", actual=" + actual.length;
    }

    private static String describe(byte[] b, int at) {
        if (at + 8 > b.length) {
            return "(short)";
        }
        long v = ByteBuffer.wrap(b, at, 8).getLong();
        return String.format("0x%016x (claims offset=%d tag=%d)", v, v & 0xffffffffffffL, v >>> 48);
    }
}
