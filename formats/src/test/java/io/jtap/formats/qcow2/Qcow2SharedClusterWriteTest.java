package io.jtap.formats.qcow2;

import static io.jtap.formats.QemuTools.run;
import static io.jtap.formats.QemuTools.runAllowingFailure;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.formats.Checkable;
import io.jtap.formats.CompressedWrites;
import io.jtap.formats.Extent;
import io.jtap.formats.Image;
import io.jtap.formats.ImageCheck;
import io.jtap.formats.ImageFormat;
import io.jtap.formats.ImageFormats;
import io.jtap.formats.OpenOptions;
import io.jtap.formats.QemuTools;
import io.jtap.formats.SelfDescribingData;
import io.jtap.formats.WriteMapping;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * jtap writes into images whose clusters QEMU's internal snapshots share (refcount 2, COPIED clear): a shared data
 * cluster or L2 table must never be written in place. After jtap's writes, {@code qemu-img check} is clean, every
 * snapshot reads (through {@code qemu-img convert -l} and through {@code qemu-img snapshot -a} on a copy) exactly as
 * when QEMU took it, and the active state reads as the test's byte model says.
 */
class Qcow2SharedClusterWriteTest {
    private static final long MIB = 1 << 20;
    private static final long SEED = Long.getLong("jtap.seed", System.nanoTime());

    @TempDir
    Path dir;

    private final ImageFormat qcow2 = ImageFormats.defaults().get("qcow2");

    Qcow2SharedClusterWriteTest() throws Exception {
    }

    @BeforeEach
    void requireQemu() {
        QemuTools.require("qemu-img");
        QemuTools.require("qemu-io");
    }

    static Stream<Arguments> variants() {
        return Stream.of(
                Arguments.of("v3-64k", "compat=1.1,cluster_size=65536"),
                Arguments.of("v2-64k", "compat=0.10,cluster_size=65536"),
                Arguments.of("v3-4k-refcount8", "compat=1.1,cluster_size=4096,refcount_bits=8"),
                Arguments.of("v3-512", "compat=1.1,cluster_size=512"));
    }

    /**
     * Fixed writes over every kind of shared cluster: inside a shared data cluster (partial: the rest is copied),
     * whole clusters, across an L2 table boundary, two-phase, over QEMU's compressed and zero clusters, a discard and
     * a zero write over shared data, a compressed write, and a write into an unallocated range of a shared L2 table.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void writesOverAQemuSnapshotCopyOnWrite(String name, String options) throws Exception {
        Path img = dir.resolve(name + ".qcow2");
        long size = 4 * MIB;
        run("qemu-img", "create", "-f", "qcow2", "-o", options, img.toString(), String.valueOf(size));
        run("qemu-io", "-f", "qcow2", "-c", "write -P 0xaa 0 1M", "-c", "write -P 0xbb 1536k 512k",
                "-c", "write -c -P 0xcc 3M 64k", "-c", "write -z 2M 64k", img.toString());
        run("qemu-img", "snapshot", "-c", "s1", img.toString());
        byte[] snapshot = qemuRaw(img, null);
        byte[] model = snapshot.clone();
        int cluster;
        try (Qcow2Image image = (Qcow2Image) qcow2.open(img, OpenOptions.defaults())) {
            cluster = image.clusterSize();
            write(image, model, 4096 + 100, 1000, 2);
            write(image, model, 2L * cluster, 3 * cluster, 3);
            long l2Span = (long) cluster / 8 * cluster;
            if (l2Span < size) {
                write(image, model, l2Span - 700, 1400, 4);
            }
            try (WriteMapping m = image.mapForWrite(600_000, 70_000)) {
                for (Extent e : m.extents()) {
                    e.file().write(SelfDescribingData.buffer(e.offset(), (int) e.length(), 5), e.hostOffset());
                }
                m.complete();
            }
            SelfDescribingData.fill(model, 600_000, 70_000, 600_000, 5);
            write(image, model, 3 * MIB + 1000, 5000, 6);
            write(image, model, 2 * MIB + 30, 100, 7);
            image.discard(800 * 1024, 128 * 1024);
            image.read(800 * 1024, ByteBuffer.wrap(model, 800 * 1024, 128 * 1024));
            image.writeZeroes(1600 * 1024, 64 * 1024 + 512);
            Arrays.fill(model, 1600 * 1024, 1664 * 1024 + 512, (byte) 0);
            byte[] packed = new byte[cluster];
            SelfDescribingData.fill(packed, 0, cluster, 0, 0);
            Arrays.fill(packed, 0, cluster / 2, (byte) 0x5a);
            ((CompressedWrites) image).writeCompressed(5L * cluster, ByteBuffer.wrap(packed));
            System.arraycopy(packed, 0, model, 5 * cluster, cluster);
            write(image, model, 1100 * 1024, 3000, 8);
            byte[] all = new byte[(int) size];
            image.read(0, ByteBuffer.wrap(all));
            assertNull(SelfDescribingData.firstDifference(model, all, 0), name + ": jtap read-back");
        }
        assertQemuClean(img, name);
        assertJtapClean(img, name);
        assertNull(SelfDescribingData.firstDifference(model, qemuRaw(img, null), 0), name + ": active state");
        assertNull(SelfDescribingData.firstDifference(snapshot, qemuRaw(img, "s1"), 0), name + ": snapshot s1");
        assertNull(SelfDescribingData.firstDifference(snapshot, appliedRaw(img, "s1"), 0),
                name + ": snapshot s1 applied by qemu-img");
    }

    /**
     * Seeded random writes (also two-phase and aborted), discards and zero writes by jtap, alternating with
     * snapshots taken by QEMU, so that clusters are shared by one, two or three snapshots; each snapshot must keep
     * what it held.
     */
    @Test
    void randomWritesBetweenQemuSnapshots() throws Exception {
        String context = "seed=" + SEED + " (rerun with -Djtap.seed=" + SEED + ")";
        Random rnd = new Random(SEED);
        long size = 8 * MIB;
        Path img = dir.resolve("random.qcow2");
        run("qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=4096", img.toString(), String.valueOf(size));
        run("qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 3M", "-c", "write -P 0x22 5M 1M", img.toString());
        byte[] model = qemuRaw(img, null);
        List<byte[]> snapshots = new ArrayList<>();
        for (int round = 0; round < 3; round++) {
            run("qemu-img", "snapshot", "-c", "r" + round, img.toString());
            snapshots.add(model.clone());
            try (Image image = qcow2.open(img, OpenOptions.defaults().withCacheBytes(16 * 1024))) {
                for (int op = 0; op < 150; op++) {
                    randomOp(image, model, rnd, round * 1000 + op + 2);
                }
                byte[] all = new byte[(int) size];
                image.read(0, ByteBuffer.wrap(all));
                assertNull(SelfDescribingData.firstDifference(model, all, 0), context + ", round " + round);
            }
            assertQemuClean(img, context + ", round " + round);
        }
        assertJtapClean(img, context);
        assertNull(SelfDescribingData.firstDifference(model, qemuRaw(img, null), 0), context + ": active state");
        for (int i = 0; i < snapshots.size(); i++) {
            assertNull(SelfDescribingData.firstDifference(snapshots.get(i), qemuRaw(img, "r" + i), 0),
                    context + ": snapshot r" + i);
        }
    }

    private static void write(Image image, byte[] model, long offset, int length, int tag) throws Exception {
        image.write(offset, SelfDescribingData.buffer(offset, length, tag));
        SelfDescribingData.fill(model, (int) offset, length, offset, tag);
    }

    static void randomOp(Image image, byte[] model, Random rnd, int tag) throws Exception {
        long size = image.size();
        int kind = rnd.nextInt(100);
        long off = rnd.nextInt(3) == 0 ? rnd.nextInt((int) (size / 4096)) * 4096L : rnd.nextLong(size);
        int len = (int) Math.min(size - off, 1 + rnd.nextInt(rnd.nextInt(4) == 0 ? 300_000 : 20_000));
        if (kind < 60) {
            write(image, model, off, len, tag);
        } else if (kind < 72) {
            try (WriteMapping m = image.mapForWrite(off, len)) {
                for (Extent e : m.extents()) {
                    e.file().write(SelfDescribingData.buffer(e.offset(), (int) e.length(), tag), e.hostOffset());
                }
                m.complete();
            }
            SelfDescribingData.fill(model, (int) off, len, off, tag);
        } else if (kind < 77) {
            try (WriteMapping m = image.mapForWrite(off, len)) {
                m.abort();
            }
        } else if (kind < 86) {
            image.writeZeroes(off, len);
            Arrays.fill(model, (int) off, (int) off + len, (byte) 0);
        } else if (kind < 95) {
            image.discard(off, len);
            image.read(off, ByteBuffer.wrap(model, (int) off, len));
        } else {
            image.flush();
        }
    }

    /** The image (or one of its snapshots, by name) as raw bytes, read by qemu-img. */
    static byte[] qemuRaw(Path img, String snapshot) throws Exception {
        Path out = Files.createTempFile(img.getParent(), "raw", ".raw");
        Files.delete(out);
        List<String> args = new ArrayList<>(List.of("convert", "-f", "qcow2", "-O", "raw"));
        if (snapshot != null) {
            args.addAll(List.of("-l", "snapshot.name=" + snapshot));
        }
        args.addAll(List.of(img.toString(), out.toString()));
        run("qemu-img", args.toArray(String[]::new));
        byte[] b = Files.readAllBytes(out);
        Files.delete(out);
        return b;
    }

    /** A copy of the image reverted to {@code snapshot} by {@code qemu-img snapshot -a}, as raw bytes. */
    static byte[] appliedRaw(Path img, String snapshot) throws Exception {
        Path copy = img.resolveSibling(img.getFileName() + ".applied");
        Files.copy(img, copy, StandardCopyOption.REPLACE_EXISTING);
        run("qemu-img", "snapshot", "-a", snapshot, copy.toString());
        assertQemuClean(copy, "after qemu-img snapshot -a " + snapshot);
        byte[] b = qemuRaw(copy, null);
        Files.delete(copy);
        return b;
    }

    static void assertQemuClean(Path img, String context) throws Exception {
        QemuTools.Result check = runAllowingFailure("qemu-img", "check", "-f", "qcow2", img.toString());
        assertEquals(0, check.exit(), context + ", qemu-img check: " + check.output());
        assertTrue(check.output().contains("No errors were found"), context + ", qemu-img check: " + check.output());
        assertFalse(check.output().contains("leaked"), context + ", qemu-img check: " + check.output());
    }

    static void assertJtapClean(Path img, String context) throws Exception {
        try (Image image = ImageFormats.defaults().get("qcow2").open(img,
                OpenOptions.defaults().withReadOnly(true).withCheck(true))) {
            ImageCheck c = ((Checkable) image).check(false, false);
            assertTrue(c.isClean(), context + ", jtap check: " + c);
        }
    }
}
