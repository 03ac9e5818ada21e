package io.jtap.formats.qcow2;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.jtap.formats.CompressedWrites;
import io.jtap.formats.CreateOptions;
import io.jtap.formats.Image;
import io.jtap.formats.ImageFormat;
import io.jtap.formats.ImageFormats;
import io.jtap.formats.OpenOptions;
import io.jtap.formats.SelfDescribingData;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A compressed cluster read in pieces (as blkback reads a guest's 4 KiB segments) is inflated once, and what is kept
 * never outlives a change of the mapping: a cluster written again (compressed or not), discarded or written over
 * reads back its new contents.
 */
class Qcow2DecompressedClustersTest {
    private static final int CLUSTER = 65536;
    private static final int PIECE = 4096;

    @TempDir
    Path dir;

    @Test
    void aClusterReadInPiecesIsInflatedOnce() throws Exception {
        try (Image image = compressedImage(3)) {
            Qcow2Image q = (Qcow2Image) image;
            assertArrayEquals(expected(0, 3), readInPieces(image, 0));
            assertEquals(1, q.decompressions(), "16 pieces of one compressed cluster");
            assertArrayEquals(expected(CLUSTER, 3), readInPieces(image, CLUSTER));
            assertArrayEquals(expected(0, 3), readInPieces(image, 0));
            assertEquals(2, q.decompressions(), "two clusters, each read twice in pieces");
        }
    }

    @Test
    void aClusterCompressedAgainReadsItsNewContents() throws Exception {
        try (Image image = compressedImage(3)) {
            Qcow2Image q = (Qcow2Image) image;
            assertArrayEquals(expected(CLUSTER, 3), readInPieces(image, CLUSTER));
            writeCompressed(image, CLUSTER, 4);
            assertArrayEquals(expected(CLUSTER, 4), readInPieces(image, CLUSTER));
            assertEquals(2, q.decompressions());
        }
    }

    @Test
    void aFreedClusterReusedWithTheSameEntryIsNotServedFromMemory() throws Exception {
        ImageFormat qcow2 = ImageFormats.defaults().get("qcow2");
        Path img = dir.resolve("one.qcow2");
        qcow2.create(img, CreateOptions.ofSize(4L * CLUSTER).with("cluster_size", String.valueOf(CLUSTER)));
        try (Image image = qcow2.open(img, OpenOptions.defaults())) {
            Qcow2Image q = (Qcow2Image) image;
            writeCompressed(image, 0, 3);
            long first = q.l2Entry(0);
            assertArrayEquals(expected(0, 3), readInPieces(image, 0));
            // discarded and flushed: its host cluster is free again, and the next compressed cluster goes exactly there
            // with the same length, so its L2 entry is the very same value, over other bytes
            image.discard(0, CLUSTER);
            image.flush();
            writeCompressed(image, 0, 4);
            assertEquals(first, q.l2Entry(0), "the test needs the entry reused; the allocator has changed");
            assertArrayEquals(expected(0, 4), readInPieces(image, 0));
            assertEquals(2, q.decompressions());
        }
    }

    @Test
    void aWriteIntoACompressedClusterIsSeen() throws Exception {
        try (Image image = compressedImage(3)) {
            assertArrayEquals(expected(0, 3), readInPieces(image, 0));
            byte[] patch = new byte[PIECE];
            java.util.Arrays.fill(patch, (byte) 0x5a);
            image.write(2 * PIECE, ByteBuffer.wrap(patch));
            byte[] want = expected(0, 3);
            System.arraycopy(patch, 0, want, 2 * PIECE, PIECE);
            assertArrayEquals(want, readInPieces(image, 0));
            // another compressed cluster is still served, and still correct
            assertArrayEquals(expected(CLUSTER, 3), readInPieces(image, CLUSTER));
        }
    }

    /** Clusters 0 and 1 compressed with the pattern of {@code seed}. */
    private Image compressedImage(int seed) throws Exception {
        ImageFormat qcow2 = ImageFormats.defaults().get("qcow2");
        Path img = dir.resolve("c.qcow2");
        qcow2.create(img, CreateOptions.ofSize(4L * CLUSTER).with("cluster_size", String.valueOf(CLUSTER)));
        Image image = qcow2.open(img, OpenOptions.defaults());
        writeCompressed(image, 0, seed);
        writeCompressed(image, CLUSTER, seed);
        return image;
    }

    private static void writeCompressed(Image image, long offset, int seed) throws Exception {
        CompressedWrites cw = (CompressedWrites) image;
        ByteBuffer data = cw.compress(ByteBuffer.wrap(expected(offset, seed))).orElseThrow();
        cw.writeCompressedData(offset, data);
    }

    private static byte[] expected(long offset, int seed) {
        byte[] b = new byte[CLUSTER];
        SelfDescribingData.fill(b, 0, CLUSTER, offset, seed);
        return b;
    }

    private static byte[] readInPieces(Image image, long offset) throws Exception {
        byte[] out = new byte[CLUSTER];
        for (int p = 0; p < CLUSTER / PIECE; p++) {
            image.read(offset + (long) p * PIECE, ByteBuffer.wrap(out, p * PIECE, PIECE));
        }
        return out;
    }
}
