package io.jtap.bench.img;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.SplittableRandom;

/**
 * Writes a sparse raw disk image with content shaped like a used guest disk, for the convert benchmark
 * ({@code bench/convert-vs-qemu-img.sh}): about half of the disk is large zero runs (8–256 MiB holes, never written),
 * the rest is data in which 64 KiB blocks are incompressible random bytes (60%), compressible text (30%) or zeros
 * (10%, written as zeros: the small zero runs a file system leaves inside used space). Seeded: the same arguments
 * give the same image.
 *
 * <p>Usage: {@code ImageContentGenerator <path> <size-GiB> [seed]}
 */
public final class ImageContentGenerator {
    private static final int BLOCK = 64 * 1024;
    private static final long MIB = 1 << 20;

    private ImageContentGenerator() {
    }

    public static void main(String[] args) throws IOException {
        if (args.length < 2) {
            System.err.println("usage: ImageContentGenerator <path> <size-GiB> [seed]");
            System.exit(1);
        }
        Path path = Path.of(args[0]);
        long size = Long.parseLong(args[1]) << 30;
        long seed = args.length > 2 ? Long.parseLong(args[2]) : 42;
        long data = generate(path, size, seed);
        System.out.printf("%s: %d bytes, %d bytes of data regions (%.0f%%), seed %d%n", path, size, data,
                data * 100.0 / size, seed);
    }

    /** Writes the image; returns the bytes in data regions. */
    static long generate(Path path, long size, long seed) throws IOException {
        SplittableRandom rnd = new SplittableRandom(seed);
        byte[] text = textBlock(rnd);
        ByteBuffer buf = ByteBuffer.allocateDirect(BLOCK);
        byte[] random = new byte[BLOCK];
        long dataBytes = 0;
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            boolean zero = false;
            for (long off = 0; off < size; ) {
                long run = Math.min(size - off, (8 + rnd.nextInt(249)) * MIB);
                if (!zero) {
                    for (long p = off; p < off + run; p += BLOCK) {
                        int kind = rnd.nextInt(10);
                        buf.clear();
                        if (kind < 6) {
                            rnd.nextBytes(random);
                            buf.put(random);
                        } else if (kind < 9) {
                            int shift = rnd.nextInt(text.length - BLOCK);
                            buf.put(text, shift, BLOCK);
                        } else {
                            buf.put(new byte[BLOCK]);
                        }
                        buf.flip();
                        while (buf.hasRemaining()) {
                            ch.write(buf, p + buf.position());
                        }
                    }
                    dataBytes += run;
                }
                off += run;
                zero = !zero;
            }
            if (ch.size() < size) {
                ch.truncate(size);
                ch.write(ByteBuffer.allocate(1), size - 1);
            }
        }
        return dataBytes;
    }

    /**
     * Fills {@code dst} (at most 192 KiB) with log-like text that compresses about 4:1, a slice chosen by {@code seed}.
     */
    static void fillText(byte[] dst, long seed) {
        byte[] text = TextHolder.TEXT;
        int shift = (int) Long.remainderUnsigned(seed * 0x9E3779B97F4A7C15L, text.length - dst.length);
        System.arraycopy(text, shift, dst, 0, dst.length);
    }

    private static final class TextHolder {
        static final byte[] TEXT = textBlock(new SplittableRandom(42));
    }

    /** Log-like text: compresses about 4:1 with zlib. */
    private static byte[] textBlock(SplittableRandom rnd) {
        String[] words = {"kernel", "block", "request", "sector", "device", "xen", "ring", "grant", "event",
            "domain", "read", "write", "flush", "discard", "ok", "error", "retry", "queue", "backend", "frontend"};
        StringBuilder sb = new StringBuilder();
        while (sb.length() < 4 * BLOCK) {
            sb.append(String.format("[%10d.%06d] ", rnd.nextInt(100000), rnd.nextInt(1000000)));
            for (int i = 0, n = 4 + rnd.nextInt(8); i < n; i++) {
                sb.append(words[rnd.nextInt(words.length)]).append(i + 1 < n ? ' ' : '\n');
            }
        }
        return sb.toString().getBytes(StandardCharsets.US_ASCII);
    }
}
