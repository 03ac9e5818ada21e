package io.jtap.formats.tool;

import io.jtap.formats.Image;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;

/**
 * {@code compare [-f fmt] [-F fmt] [-s] [-p] [-q] filename1 filename2}: compares what the guest would see. Exit 0
 * identical, 1 different (naming the first differing 512-byte sector, as qemu-img does), 2 error. Ranges both chains
 * report as zeros are not read. Without {@code -s} images of different sizes are equal when the longer one's tail
 * reads as zeros; {@code -s} also requires equal sizes and equal allocation.
 */
@Command(name = "compare", description = "Check whether two images have the same content.")
final class CompareCommand implements Callable<Integer> {
    static final int EXIT_IDENTICAL = 0;
    static final int EXIT_DIFFERENT = 1;
    static final int EXIT_ERROR = 2;
    private static final int CHUNK = 2 << 20;
    private static final int SECTOR = 512;

    @ParentCommand
    JtapImg tool;

    @Option(names = "-f", paramLabel = "fmt", description = "format of the first image")
    String format1;

    @Option(names = "-F", paramLabel = "fmt", description = "format of the second image")
    String format2;

    @Option(names = "-s", description = "strict: sizes and allocation must match too")
    boolean strict;

    @Mixin
    ProgressOptions progressOptions;

    @Option(names = "-q", description = "quiet")
    boolean quiet;

    @Option(names = {"-U", "--force-share"}, description = "accepted for compatibility (jtap takes no locks)")
    boolean forceShare;

    @Parameters(index = "0", paramLabel = "filename1")
    String filename1;

    @Parameters(index = "1", paramLabel = "filename2")
    String filename2;

    @Override
    public Integer call() {
        try (Image a = tool.opener.openReadOnly(filename1, format1);
             Image b = tool.opener.openReadOnly(filename2, format2)) {
            return compare(ImageChain.of(a, filename1), ImageChain.of(b, filename2));
        } catch (ToolException e) {
            tool.err.println("jtap-img: " + e.getMessage());
            return EXIT_ERROR;
        } catch (IOException | RuntimeException e) {
            tool.err.println("jtap-img: Error while comparing: " + e.getMessage());
            return EXIT_ERROR;
        }
    }

    private int compare(ImageChain a, ImageChain b) throws IOException {
        long sizeA = a.top().image().size();
        long sizeB = b.top().image().size();
        if (sizeA != sizeB) {
            if (strict) {
                say("Strict mode: Image size mismatch!");
                return EXIT_DIFFERENT;
            }
            say("Warning: Image size mismatch!");
        }
        long common = Math.min(sizeA, sizeB);
        ByteBuffer bufA = ByteBuffer.allocateDirect(CHUNK);
        ByteBuffer bufB = ByteBuffer.allocateDirect(CHUNK);
        try (Progress progress = Progress.start(progressOptions.mode(),
                Math.max(sizeA, sizeB), tool.out, tool.err)) {
            for (long off = 0; off < common; ) {
                ImageChain.Status sa = a.status(off, common - off);
                ImageChain.Status sb = b.status(off, common - off);
                long n = Math.min(sa.length(), sb.length());
                if (strict && (sa.present() != sb.present() || sa.data() != sb.data())) {
                    say("Strict mode: Offset " + off + " block status mismatch!");
                    return EXIT_DIFFERENT;
                }
                if (sa.data() || sb.data()) {
                    long diff = compareRange(a.top().image(), b.top().image(), off, n, bufA, bufB);
                    if (diff >= 0) {
                        say("Content mismatch at offset " + diff + "!");
                        return EXIT_DIFFERENT;
                    }
                }
                progress.advance(n);
                off += n;
            }
            ImageChain longer = sizeA > sizeB ? a : b;
            for (long off = common; off < Math.max(sizeA, sizeB); ) {
                ImageChain.Status s = longer.status(off, longer.top().image().size() - off);
                if (s.data()) {
                    long diff = firstNonZero(longer.top().image(), off, s.length(), bufA);
                    if (diff >= 0) {
                        say("Content mismatch at offset " + diff + "!");
                        return EXIT_DIFFERENT;
                    }
                }
                progress.advance(s.length());
                off += s.length();
            }
        }
        say("Images are identical.");
        return EXIT_IDENTICAL;
    }

    private void say(String line) {
        if (!quiet) {
            tool.out.println(line);
        }
    }

    /** The first differing offset, rounded down to its sector, or -1. */
    private static long compareRange(Image a, Image b, long off, long len, ByteBuffer bufA, ByteBuffer bufB)
            throws IOException {
        for (long done = 0; done < len; ) {
            int n = (int) Math.min(CHUNK - (off + done) % CHUNK, len - done);
            bufA.clear().limit(n);
            bufB.clear().limit(n);
            a.read(off + done, bufA);
            b.read(off + done, bufB);
            int m = bufA.flip().mismatch(bufB.flip());
            if (m >= 0) {
                return (off + done + m) / SECTOR * SECTOR;
            }
            done += n;
        }
        return -1;
    }

    private static long firstNonZero(Image image, long off, long len, ByteBuffer buf) throws IOException {
        ByteBuffer zeros = ByteBuffer.allocateDirect(CHUNK);
        for (long done = 0; done < len; ) {
            int n = (int) Math.min(CHUNK, len - done);
            buf.clear().limit(n);
            image.read(off + done, buf);
            int m = buf.flip().mismatch(zeros.clear().limit(n));
            if (m >= 0) {
                return (off + done + m) / SECTOR * SECTOR;
            }
            done += n;
        }
        return -1;
    }
}
