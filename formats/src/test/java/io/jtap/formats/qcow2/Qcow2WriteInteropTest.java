package io.jtap.formats.qcow2;

import static io.jtap.formats.QemuTools.run;
import static io.jtap.formats.QemuTools.runAllowingFailure;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.formats.CreateOptions;
import io.jtap.formats.Extent;
import io.jtap.formats.Image;
import io.jtap.formats.ImageFormat;
import io.jtap.formats.ImageFormats;
import io.jtap.formats.OpenOptions;
import io.jtap.formats.QemuTools;
import io.jtap.formats.SelfDescribingData;
import io.jtap.formats.WriteMapping;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * jtap creates and writes, qemu-img judges: after seeded random writes (partial clusters, two-phase writes
 * completed and aborted), discards and zero writes, with and without a backing file, {@code qemu-img check} finds
 * no errors and no leaks and {@code qemu-img compare} finds the image identical to a raw reference the test keeps
 * alongside (a byte model of the disk).
 */
class Qcow2WriteInteropTest {
    private static final long MIB = 1 << 20;
    private static final long SEED = Long.getLong("jtap.seed", System.nanoTime());

    @TempDir
    Path dir;

    private final ImageFormat qcow2 = ImageFormats.defaults().get("qcow2");

    Qcow2WriteInteropTest() throws Exception {
    }

    static Stream<Arguments> variants() {
        return Stream.of(
                Arguments.of("v3-64k", "1.1", 65536, 16, "none", 8 * MIB),
                Arguments.of("v2-64k", "0.10", 65536, 16, "none", 8 * MIB),
                Arguments.of("v3-512-refcount64", "1.1", 512, 64, "none", 4 * MIB),
                Arguments.of("v3-4k-refcount1", "1.1", 4096, 1, "none", 8 * MIB),
                Arguments.of("v3-2m", "1.1", 2 << 20, 16, "none", 16 * MIB),
                Arguments.of("v3-64k-raw-backing", "1.1", 65536, 16, "raw", 8 * MIB),
                Arguments.of("v2-64k-raw-backing", "0.10", 65536, 16, "raw", 8 * MIB),
                Arguments.of("v3-4k-qcow2-backing", "1.1", 4096, 16, "qcow2", 8 * MIB),
                Arguments.of("v3-512-qcow2-backing", "1.1", 512, 32, "qcow2", 4 * MIB));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void qemuAcceptsWhatJtapWrote(String name, String compat, int clusterSize, int refcountBits,
                                  String backingFormat, long size) throws Exception {
        String context = "seed=" + SEED + " (rerun with -Djtap.seed=" + SEED + "), variant=" + name;
        Random rnd = new Random(SEED);
        byte[] model = new byte[(int) size];
        CreateOptions create = CreateOptions.ofSize(size).with("compat", compat)
                .with("cluster_size", String.valueOf(clusterSize)).with("refcount_bits", String.valueOf(refcountBits));
        if (!backingFormat.equals("none")) {
            long baseSize = size / 2;
            Path baseRaw = dir.resolve("base.raw");
            Qcow2ReadInteropTest.writeSource(baseRaw, baseSize, rnd);
            System.arraycopy(Files.readAllBytes(baseRaw), 0, model, 0, (int) baseSize);
            String baseName = "base.raw";
            if (backingFormat.equals("qcow2")) {
                baseName = "base.qcow2";
                run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", baseRaw.toString(),
                        dir.resolve(baseName).toString());
            }
            create = create.withBacking(baseName, backingFormat);
        }
        Path img = dir.resolve(name + ".qcow2");
        qcow2.create(img, create);
        assertClean(img, context + ", fresh");

        try (Image image = qcow2.open(img, OpenOptions.defaults().withCacheBytes(64 * 1024))) {
            for (int op = 0; op < 400; op++) {
                randomOp(image, model, rnd, op);
            }
            byte[] all = new byte[(int) size];
            image.read(0, ByteBuffer.wrap(all));
            assertNull(SelfDescribingData.firstDifference(model, all, 0), context + ", jtap read-back");
        }
        assertClean(img, context);
        Path ref = dir.resolve(name + ".ref.raw");
        Files.write(ref, model);
        QemuTools.Result cmp = runAllowingFailure("qemu-img", "compare", "-f", "raw", "-F", "qcow2",
                ref.toString(), img.toString());
        assertEquals(0, cmp.exit(), context + ", qemu-img compare: " + cmp.output());

        // Reopen and grow: the new range reads as zeros, even over a longer backing file; qemu agrees.
        try (Image image = qcow2.open(img, OpenOptions.defaults())) {
            image.resize(size + 3 * MIB);
            image.write(size + MIB, SelfDescribingData.buffer(size + MIB, 5000, 999));
        }
        assertClean(img, context + ", after resize");
        byte[] grown = java.util.Arrays.copyOf(model, (int) (size + 3 * MIB));
        SelfDescribingData.fill(grown, (int) (size + MIB), 5000, size + MIB, 999);
        Files.write(ref, grown);
        cmp = runAllowingFailure("qemu-img", "compare", "-f", "raw", "-F", "qcow2", ref.toString(), img.toString());
        assertEquals(0, cmp.exit(), context + ", qemu-img compare after resize: " + cmp.output());
    }

    private static void randomOp(Image image, byte[] model, Random rnd, int op) throws Exception {
        long size = image.size();
        int kind = rnd.nextInt(100);
        int maxLen = rnd.nextInt(4) == 0 ? 1 << 20 : 70_000;
        long off = rnd.nextInt(4) == 0 ? (long) rnd.nextInt((int) (size / 65536)) * 65536 : rnd.nextLong(size);
        int len = (int) Math.min(size - off, 1 + rnd.nextInt(maxLen));
        int tag = op + 2;
        if (kind < 55) {
            image.write(off, SelfDescribingData.buffer(off, len, tag));
            SelfDescribingData.fill(model, (int) off, len, off, tag);
        } else if (kind < 70) {
            // the blkback path: reserve, write the data ourselves, complete
            try (WriteMapping m = image.mapForWrite(off, len)) {
                for (Extent e : m.extents()) {
                    e.file().write(SelfDescribingData.buffer(e.offset(), (int) e.length(), tag), e.hostOffset());
                }
                m.complete();
            }
            SelfDescribingData.fill(model, (int) off, len, off, tag);
        } else if (kind < 75) {
            // a failed data IO: reserve, write nothing, abort; contents stay as they were
            try (WriteMapping m = image.mapForWrite(off, len)) {
                m.abort();
            }
        } else if (kind < 85) {
            image.writeZeroes(off, len);
            java.util.Arrays.fill(model, (int) off, (int) off + len, (byte) 0);
        } else if (kind < 95) {
            image.discard(off, len);
            // discard leaves the range undefined: the model takes what jtap now reads, qemu-img compare checks it
            ByteBuffer now = ByteBuffer.wrap(model, (int) off, len);
            image.read(off, now);
        } else {
            image.flush();
        }
    }

    private static void assertClean(Path img, String context) throws Exception {
        QemuTools.Result check = runAllowingFailure("qemu-img", "check", "-f", "qcow2", img.toString());
        assertEquals(0, check.exit(), context + ", qemu-img check: " + check.output());
        assertTrue(check.output().contains("No errors were found"), context + ", qemu-img check: " + check.output());
        assertFalse(check.output().contains("leaked"), context + ", qemu-img check: " + check.output());
    }

    /**
     * Many threads write interleaved 512-byte sectors of the same clusters at once through the two-phase path, so
     * requests join each other's pending allocations; the result is deterministic and qemu-img must agree.
     */
    @Test
    void concurrentTwoPhaseWritesIntoSharedNewClusters() throws Exception {
        String context = "seed=" + SEED + " (rerun with -Djtap.seed=" + SEED + ")";
        long size = 4 * MIB;
        int threads = 4;
        Path baseRaw = dir.resolve("base.raw");
        Qcow2ReadInteropTest.writeSource(baseRaw, size, new Random(SEED));
        byte[] model = Files.readAllBytes(baseRaw);
        Path img = dir.resolve("conc.qcow2");
        qcow2.create(img, CreateOptions.ofSize(size).withBacking("base.raw", "raw"));
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try (Image image = qcow2.open(img, OpenOptions.defaults())) {
            List<Future<?>> done = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int me = t;
                done.add(pool.submit(() -> {
                    Random rnd = new Random(SEED + me);
                    for (int i = 0; i < 300; i++) {
                        long sector = (long) rnd.nextInt((int) (size / 512 / threads)) * threads + me;
                        long off = sector * 512;
                        int tag = 1000 + me;
                        try (WriteMapping m = image.mapForWrite(off, 512)) {
                            Extent e = m.extents().get(0);
                            e.file().write(SelfDescribingData.buffer(off, 512, tag), e.hostOffset());
                            if (rnd.nextInt(10) == 0) {
                                image.read(off, ByteBuffer.allocate(512));
                            }
                            m.complete();
                        }
                        synchronized (model) {
                            SelfDescribingData.fill(model, (int) off, 512, off, tag);
                        }
                    }
                    return null;
                }));
            }
            for (Future<?> f : done) {
                f.get();
            }
            byte[] all = new byte[(int) size];
            image.read(0, ByteBuffer.wrap(all));
            assertNull(SelfDescribingData.firstDifference(model, all, 0), context + ", jtap read-back");
        } finally {
            pool.shutdown();
        }
        assertClean(img, context);
        Path ref = dir.resolve("conc.ref.raw");
        Files.write(ref, model);
        QemuTools.Result cmp = runAllowingFailure("qemu-img", "compare", "-f", "raw", "-F", "qcow2",
                ref.toString(), img.toString());
        assertEquals(0, cmp.exit(), context + ", qemu-img compare: " + cmp.output());
    }
}
