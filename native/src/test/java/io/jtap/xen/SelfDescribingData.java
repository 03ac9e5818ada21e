package io.jtap.xen;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Self-describing test data: each 8-byte word holds {@code tag << 32 | offset}, so a misplaced word names the page it
 * came from and where in it. Words are in native order whatever the buffer's order setting.
 */
public final class SelfDescribingData {
    private SelfDescribingData() {
    }

    public static long word(int tag, int offset) {
        return ((long) tag << 32) | offset;
    }

    /** Fills {@code length} bytes of {@code buffer} from {@code offset} (multiples of 8). */
    public static void fill(ByteBuffer buffer, int offset, int length, int tag) {
        buffer = buffer.duplicate().order(ByteOrder.nativeOrder());
        for (int o = offset; o < offset + length; o += 8) {
            buffer.putLong(o, word(tag, o));
        }
    }

    /** Asserts what {@link #fill} wrote at {@code sourceOffset}, read back at {@code offset}. */
    public static void check(ByteBuffer buffer, int offset, int length, int tag, int sourceOffset) {
        buffer = buffer.duplicate().order(ByteOrder.nativeOrder());
        for (int i = 0; i < length; i += 8) {
            long actual = buffer.getLong(offset + i);
            long expected = word(tag, sourceOffset + i);
            if (actual != expected) {
                assertEquals(describe(expected), describe(actual), "word at offset " + (offset + i));
            }
        }
    }

    public static void check(ByteBuffer buffer, int offset, int length, int tag) {
        check(buffer, offset, length, tag, offset);
    }

    private static String describe(long word) {
        return "tag=" + (word >>> 32) + ", offset=" + (int) word;
    }
}
