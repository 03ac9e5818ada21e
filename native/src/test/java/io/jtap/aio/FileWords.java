package io.jtap.aio;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Self-describing file contents: the 8-byte word at file offset {@code o} (a multiple of 8) is
 * {@code MARKER << 48 | o}, or with a different marker for data a test wrote, so a misplaced read names the file
 * offset it really came from.
 */
final class FileWords {
    static final long IMAGE = 0x4A54; // "JT": what the file was created with
    static final long WRITTEN = 0x5752; // "WR": what a test wrote through the engine

    private FileWords() {
    }

    static long word(long marker, long fileOffset) {
        return marker << 48 | fileOffset;
    }

    /**
     * Fills {@code length} bytes of {@code buffer} from {@code at} with the words for file offset {@code fileOffset}.
     */
    static void fill(ByteBuffer buffer, int at, int length, long marker, long fileOffset) {
        ByteBuffer b = buffer.duplicate().order(ByteOrder.nativeOrder());
        for (int i = 0; i < length; i += 8) {
            b.putLong(at + i, word(marker, fileOffset + i));
        }
    }

    /** Asserts that {@code buffer[at, at+length)} holds the words of file offset {@code fileOffset}. */
    static void check(ByteBuffer buffer, int at, int length, long marker, long fileOffset, String what) {
        ByteBuffer b = buffer.duplicate().order(ByteOrder.nativeOrder());
        for (int i = 0; i < length; i += 8) {
            long actual = b.getLong(at + i);
            long expected = word(marker, fileOffset + i);
            if (actual != expected) {
                fail(what + ": word at buffer offset " + (at + i) + " should be " + describe(expected) + " but is "
                        + describe(actual));
            }
        }
    }

    static String describe(long word) {
        long marker = word >>> 48;
        if (marker == IMAGE || marker == WRITTEN) {
            return (marker == IMAGE ? "image" : "written") + " data of file offset " + (word & 0xFFFF_FFFF_FFFFL);
        }
        return "0x" + Long.toHexString(word);
    }

    /** Creates {@code path} with {@code length} bytes (a multiple of 8) of {@link #IMAGE} words. */
    static void createImage(Path path, long length) throws IOException {
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            ByteBuffer chunk = ByteBuffer.allocateDirect(1 << 20);
            for (long o = 0; o < length; o += chunk.capacity()) {
                int n = (int) Math.min(chunk.capacity(), length - o);
                fill(chunk, 0, n, IMAGE, o);
                chunk.clear().limit(n);
                while (chunk.hasRemaining()) {
                    ch.write(chunk, o + chunk.position());
                }
                chunk.clear();
            }
        }
    }

    /**
     * Reads {@code length} bytes of {@code path} at {@code offset} through the JDK, for checking what an engine wrote.
     */
    static ByteBuffer read(Path path, long offset, int length) throws IOException {
        ByteBuffer b = ByteBuffer.allocateDirect(length);
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            while (b.hasRemaining()) {
                if (ch.read(b, offset + b.position()) < 0) {
                    break;
                }
            }
        }
        return b.clear();
    }

    /** A direct buffer of {@code length} bytes whose address is a multiple of {@code alignment}. */
    static ByteBuffer aligned(int length, int alignment) {
        return ByteBuffer.allocateDirect(length + alignment).alignedSlice(alignment).limit(length).slice();
    }
}
