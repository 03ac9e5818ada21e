package io.jtap.formats;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link HostFile#read(ByteBuffer[], long)} and {@link HostFile#write(ByteBuffer[], long)}: the buffers in order at
 * consecutive offsets, as one call per buffer would, whether they go to the kernel as one vectored call (direct
 * buffers), as several (more buffers than one call takes), or one by one (heap buffers); past the end of the file
 * reads zeros; a write observer sees every buffer at its own offset.
 */
class HostFileVectoredTest {
    @TempDir
    Path dir;

    private static byte[] pattern(int length, int seed) {
        byte[] b = new byte[length];
        for (int i = 0; i < length; i++) {
            b[i] = (byte) (i * 131 + seed);
        }
        return b;
    }

    /** Slices of one direct buffer (as blkback's guest pages are), of the given sizes. */
    private static ByteBuffer[] directSlices(int... sizes) {
        int total = Arrays.stream(sizes).sum();
        ByteBuffer whole = ByteBuffer.allocateDirect(total + 8192);
        ByteBuffer[] out = new ByteBuffer[sizes.length];
        int at = 100;
        for (int i = 0; i < sizes.length; i++) {
            out[i] = whole.slice(at, sizes[i]);
            at += sizes[i];
        }
        return out;
    }

    private static byte[] concat(ByteBuffer[] bufs) {
        int total = 0;
        for (ByteBuffer b : bufs) {
            total += b.limit();
        }
        byte[] out = new byte[total];
        int at = 0;
        for (ByteBuffer b : bufs) {
            b.duplicate().position(0).get(out, at, b.limit());
            at += b.limit();
        }
        return out;
    }

    @Test
    void directBuffersReadAndWriteInOrderAtConsecutiveOffsets() throws Exception {
        Path p = dir.resolve("f");
        byte[] file = pattern(1 << 20, 1);
        Files.write(p, file);
        int[] sizes = {4096, 512, 1, 8191, 4096, 3000};
        try (HostFile f = HostFile.open(p, true, false)) {
            ByteBuffer[] dsts = directSlices(sizes);
            f.read(dsts, 777);
            assertEquals(1, f.vectoredCallsForTest(), "one preadv");
            for (ByteBuffer b : dsts) {
                assertFalse(b.hasRemaining(), "every buffer filled");
            }
            assertArrayEquals(Arrays.copyOfRange(file, 777, 777 + Arrays.stream(sizes).sum()), concat(dsts));

            byte[] data = pattern(Arrays.stream(sizes).sum(), 2);
            ByteBuffer[] srcs = directSlices(sizes);
            int at = 0;
            for (ByteBuffer b : srcs) {
                b.put(0, data, at, b.remaining());
                at += b.remaining();
            }
            List<long[]> observed = new ArrayList<>();
            f.observe(new HostFile.WriteObserver() {
                @Override
                public void written(long position, ByteBuffer written) {
                    observed.add(new long[] {position, written.remaining()});
                }

                @Override
                public void zeroed(long position, long length, boolean keepSize) {
                }

                @Override
                public void synced() {
                }
            });
            f.write(srcs, 5000);
            assertEquals(2, f.vectoredCallsForTest(), "one pwritev");
            for (ByteBuffer b : srcs) {
                assertFalse(b.hasRemaining(), "every buffer written");
            }
            assertEquals(sizes.length, observed.size(), "the observer saw each buffer");
            long pos = 5000;
            for (int i = 0; i < sizes.length; i++) {
                assertEquals(pos, observed.get(i)[0], "buffer " + i + "'s offset");
                assertEquals(sizes[i], observed.get(i)[1], "buffer " + i + "'s length");
                pos += sizes[i];
            }
        }
        byte[] back = Files.readAllBytes(p);
        byte[] expected = file.clone();
        System.arraycopy(pattern(Arrays.stream(sizes).sum(), 2), 0, expected, 5000, Arrays.stream(sizes).sum());
        assertArrayEquals(expected, back);
    }

    @Test
    void moreBuffersThanOneCallTakesAndHeapBuffersToo() throws Exception {
        Path p = dir.resolve("f");
        byte[] file = pattern(3 << 20, 3);
        Files.write(p, file);
        int n = 2 * 1024 + 37;
        int[] sizes = new int[n];
        Arrays.fill(sizes, 1000);
        try (HostFile f = HostFile.open(p, false, false)) {
            ByteBuffer[] dsts = directSlices(sizes);
            f.read(dsts, 12345);
            assertArrayEquals(Arrays.copyOfRange(file, 12345, 12345 + n * 1000), concat(dsts), "past IOV_MAX");
            assertEquals(3, f.vectoredCallsForTest(), "1024 + 1024 + 37 buffers");

            ByteBuffer[] mixed = {ByteBuffer.allocate(3000), ByteBuffer.allocateDirect(5000), ByteBuffer.allocate(7)};
            f.read(mixed, 99);
            assertArrayEquals(Arrays.copyOfRange(file, 99, 99 + 8007), concat(mixed), "heap buffers among them");
            assertEquals(3, f.vectoredCallsForTest(), "heap buffers go one by one");
        }
    }

    @Test
    void pastTheEndOfTheFileReadsZeros() throws Exception {
        Path p = dir.resolve("f");
        byte[] file = pattern(10000, 4);
        Files.write(p, file);
        try (HostFile f = HostFile.open(p, false, false)) {
            ByteBuffer[] dsts = directSlices(4096, 4096, 4096, 4096);
            for (ByteBuffer b : dsts) {
                for (int i = 0; i < b.limit(); i++) {
                    b.put(i, (byte) 0x5a);
                }
            }
            f.read(dsts, 4096);
            byte[] expected = new byte[4 * 4096];
            System.arraycopy(file, 4096, expected, 0, 10000 - 4096);
            assertArrayEquals(expected, concat(dsts), "the file's bytes, then zeros");
            assertEquals(2, f.vectoredCallsForTest(), "a short preadv, then one that finds the end");
            for (ByteBuffer b : dsts) {
                assertFalse(b.hasRemaining());
            }
        }
    }

    @Test
    void aDirectFileTakesAlignedBuffersInOneCallAndBouncesTheOthers() throws Exception {
        Path p = dir.resolve("f");
        byte[] file = pattern(1 << 20, 5);
        Files.write(p, file);
        HostFile f;
        try {
            f = HostFile.open(p, true, true);
        } catch (IOException e) {
            Assumptions.assumeTrue(false, "O_DIRECT unsupported on this file system: " + e);
            return;
        }
        int a = f.alignment();
        try (f) {
            ByteBuffer whole = ByteBuffer.allocateDirect(16 * 4096 + 4096).alignedSlice(4096);
            ByteBuffer[] aligned = {whole.slice(0, 4096), whole.slice(8192, 2 * 4096), whole.slice(4 * 4096, a)};
            f.read(aligned, 4096);
            assertArrayEquals(Arrays.copyOfRange(file, 4096, 4096 + 3 * 4096 + a), concat(aligned), "aligned");
            assertEquals(1, f.vectoredCallsForTest(), "aligned: one preadv");
            ByteBuffer[] odd = {ByteBuffer.allocateDirect(100), ByteBuffer.allocateDirect(a)};
            f.read(odd, 3);
            assertArrayEquals(Arrays.copyOfRange(file, 3, 3 + 100 + a), concat(odd), "unaligned: bounced");
            assertEquals(1, f.vectoredCallsForTest(), "unaligned: no preadv");
            byte[] data = pattern(2 * a, 6);
            ByteBuffer[] srcs = {whole.slice(0, a).put(0, data, 0, a), whole.slice(a, a).put(0, data, a, a)};
            f.write(srcs, 8L * a);
            assertTrue(!srcs[0].hasRemaining() && !srcs[1].hasRemaining(), "both written");
        }
        byte[] expected = file.clone();
        System.arraycopy(pattern(2 * a, 6), 0, expected, 8 * a, 2 * a);
        assertArrayEquals(expected, Files.readAllBytes(p), "written through O_DIRECT");
    }
}
