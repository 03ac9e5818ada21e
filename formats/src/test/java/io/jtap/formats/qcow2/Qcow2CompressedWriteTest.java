package io.jtap.formats.qcow2;

import static io.jtap.formats.QemuTools.run;
import static io.jtap.formats.QemuTools.runAllowingFailure;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.formats.Checkable;
import io.jtap.formats.CompressedWrites;
import io.jtap.formats.CreateOptions;
import io.jtap.formats.Image;
import io.jtap.formats.ImageCheck;
import io.jtap.formats.ImageFormat;
import io.jtap.formats.ImageFormats;
import io.jtap.formats.OpenOptions;
import io.jtap.formats.QemuTools;
import io.jtap.formats.SelfDescribingData;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * jtap writes compressed clusters, qemu reads them: deflate with a 4 KiB window (which java.util.zip cannot
 * produce) and zstd. Clusters that do not compress are stored plainly; compressed clusters are packed several to a
 * host cluster; some are overwritten (compressed again, partially, discarded). {@code qemu-img check} finds no
 * errors or leaks and counts the same compressed clusters as jtap's check; {@code qemu-img compare} finds the image
 * identical to the byte model.
 */
class Qcow2CompressedWriteTest {
    private static final long SEED = Long.getLong("jtap.seed", System.nanoTime());

    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0} {1} {2}")
    @CsvSource({"1.1, zlib, 65536", "1.1, zlib, 4096", "0.10, zlib, 65536", "1.1, zlib, 2097152", "1.1, zstd, 65536",
        "1.1, zstd, 512", "1.1, zlib, 512"})
    void qemuReadsWhatJtapCompressed(String compat, String type, int clusterSize) throws Exception {
        String context = "seed=" + SEED + " (rerun with -Djtap.seed=" + SEED + "), compat=" + compat + ", type="
                + type + ", cluster_size=" + clusterSize;
        QemuTools.require("qemu-img");
        Random rnd = new Random(SEED);
        int size = Math.max(4 << 20, 4 * clusterSize);
        byte[] model = new byte[size];
        ImageFormat qcow2 = ImageFormats.defaults().get("qcow2");
        Path img = dir.resolve("c.qcow2");
        qcow2.create(img, CreateOptions.ofSize(size).with("compat", compat).with("compression_type", type)
                .with("cluster_size", String.valueOf(clusterSize)));
        int stored = 0;
        try (Image image = qcow2.open(img, OpenOptions.defaults())) {
            CompressedWrites cw = (CompressedWrites) image;
            assertEquals(clusterSize, cw.compressionUnit());
            for (int c = 0; c < size / clusterSize; c++) {
                long off = (long) c * clusterSize;
                byte[] cluster = new byte[clusterSize];
                // cluster 0 is always compressible: with 2 MiB clusters there are few, and all could be random
                switch (c == 0 ? 2 : rnd.nextInt(5)) {
                    case 0 -> rnd.nextBytes(cluster); // incompressible: stored plainly
                    case 1 -> {
                        continue; // left unallocated
                    }
                    default -> SelfDescribingData.fill(cluster, 0, clusterSize, off, 3);
                }
                // the converter's split: compress (any thread), then store in order
                java.util.Optional<ByteBuffer> compressed = cw.compress(ByteBuffer.wrap(cluster));
                if (compressed.isPresent()) {
                    stored++;
                    cw.writeCompressedData(off, compressed.get());
                } else {
                    image.write(off, ByteBuffer.wrap(cluster));
                }
                System.arraycopy(cluster, 0, model, (int) off, clusterSize);
            }
            // overwrite some: compressed again, partially (copy-on-write from a compressed cluster), discarded
            for (int i = 0; i < 20; i++) {
                long off = (long) rnd.nextInt(size / clusterSize) * clusterSize;
                switch (rnd.nextInt(3)) {
                    case 0 -> {
                        byte[] cluster = new byte[clusterSize];
                        SelfDescribingData.fill(cluster, 0, clusterSize, off, 10 + i);
                        cw.writeCompressed(off, ByteBuffer.wrap(cluster));
                        System.arraycopy(cluster, 0, model, (int) off, clusterSize);
                    }
                    case 1 -> {
                        long at = off + rnd.nextInt(clusterSize);
                        int len = (int) Math.min(size - at, 1 + rnd.nextInt(clusterSize));
                        image.write(at, SelfDescribingData.buffer(at, len, 40 + i));
                        SelfDescribingData.fill(model, (int) at, len, at, 40 + i);
                    }
                    default -> {
                        image.writeZeroes(off, clusterSize);
                        Arrays.fill(model, (int) off, (int) off + clusterSize, (byte) 0);
                    }
                }
                if (i == 10) {
                    image.flush();
                }
            }
            // at least one compressed cluster survives, whatever the overwrites did
            byte[] last = new byte[clusterSize];
            SelfDescribingData.fill(last, 0, clusterSize, 0, 99);
            cw.writeCompressed(0, ByteBuffer.wrap(last));
            System.arraycopy(last, 0, model, 0, clusterSize);
            byte[] all = new byte[size];
            image.read(0, ByteBuffer.wrap(all));
            assertNull(SelfDescribingData.firstDifference(model, all, 0), context + ", jtap read-back");
        }
        assertTrue(stored > 0, context + ": nothing was compressible?");
        QemuTools.Result check = runAllowingFailure("qemu-img", "check", "--output=json", "-f", "qcow2",
                img.toString());
        assertEquals(0, check.exit(), context + ", qemu-img check: " + check.output());
        ImageCheck jtap;
        try (Image image = qcow2.open(img, OpenOptions.defaults().withReadOnly(true))) {
            jtap = ((Checkable) image).check(false, false);
        }
        assertTrue(jtap.isClean(), context + ": " + jtap);
        assertTrue(jtap.compressedClusters() > 0, context + ": " + jtap);
        assertTrue(check.output().contains("\"compressed-clusters\": " + jtap.compressedClusters()),
                context + ": qemu " + check.output() + " vs jtap " + jtap);
        Path ref = dir.resolve("ref.raw");
        Files.write(ref, model);
        QemuTools.Result cmp = runAllowingFailure("qemu-img", "compare", "-f", "raw", "-F", "qcow2", ref.toString(),
                img.toString());
        assertEquals(0, cmp.exit(), context + ", qemu-img compare: " + cmp.output());
        // and the converted raw image qemu makes is the model too (reads every compressed cluster)
        Path out = dir.resolve("out.raw");
        run("qemu-img", "convert", "-f", "qcow2", "-O", "raw", img.toString(), out.toString());
        assertNull(SelfDescribingData.firstDifference(model, Files.readAllBytes(out), 0), context + ", qemu convert");
    }
}
