package io.jtap.formats.qcow2;

import static io.jtap.formats.QemuTools.run;
import static io.jtap.formats.QemuTools.runAllowingFailure;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.formats.Checkable;
import io.jtap.formats.CreateOptions;
import io.jtap.formats.Image;
import io.jtap.formats.ImageCheck;
import io.jtap.formats.ImageFormats;
import io.jtap.formats.OpenOptions;
import io.jtap.formats.QemuTools;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * jtap's {@code check} against {@code qemu-img check}: images damaged by qemu (a killed lazy-refcounts writer) or
 * by editing bytes get the same leak and corruption counts from both; after jtap's repair {@code qemu-img check}
 * finds nothing and the disk reads as qemu read it before.
 */
class Qcow2CheckTest {
    private static final int CLUSTER = 4096;

    @TempDir
    Path dir;

    /** What qemu-img check --output=json says, the parts jtap compares. */
    record QemuVerdict(long leaks, long corruptions, long checkErrors, long allocated, long fragmented,
                       long compressed, long imageEnd, int exit) {
        static QemuVerdict of(Path img) throws Exception {
            QemuTools.Result r = runAllowingFailure("qemu-img", "check", "--output=json", "-f", "qcow2",
                    img.toString());
            String json = r.output().substring(Math.max(0, r.output().indexOf('{')));
            return new QemuVerdict(field(json, "leaks"), field(json, "corruptions"), field(json, "check-errors"),
                    field(json, "allocated-clusters"), field(json, "fragmented-clusters"),
                    field(json, "compressed-clusters"), field(json, "image-end-offset"), r.exit());
        }

        private static long field(String json, String name) {
            Matcher m = Pattern.compile("\"" + name + "\": (\\d+)").matcher(json);
            return m.find() ? Long.parseLong(m.group(1)) : 0;
        }
    }

    // ---------------------------------------------------------------- byte surgery on a 4 KiB-cluster image

    private static ByteBuffer readAt(Path img, long offset, int length) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "r")) {
            byte[] b = new byte[length];
            f.seek(offset);
            f.readFully(b);
            return ByteBuffer.wrap(b);
        }
    }

    private static void writeLong(Path img, long offset, long value) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.seek(offset);
            f.writeLong(value);
        }
    }

    private static Qcow2Header header(Path img) throws IOException {
        return Qcow2Header.parse(readAt(img, 0, CLUSTER));
    }

    private static long l2Table(Path img) throws IOException {
        Qcow2Header h = header(img);
        return readAt(img, h.l1TableOffset, 8).getLong(0) & ClusterMap.L1_OFFSET_MASK;
    }

    private static long l2EntryOffset(Path img, int index) throws IOException {
        return l2Table(img) + index * 8L;
    }

    private static long l2Entry(Path img, int index) throws IOException {
        return readAt(img, l2EntryOffset(img, index), 8).getLong(0);
    }

    /** Sets a 16-bit refcount. */
    private static void setRefcount(Path img, long cluster, int value) throws IOException {
        Qcow2Header h = header(img);
        long perBlock = CLUSTER * 8L / 16;
        long block = readAt(img, h.refcountTableOffset + cluster / perBlock * 8, 8).getLong(0);
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.seek(block + cluster % perBlock * 2);
            f.writeShort(value);
        }
    }

    /** An image with data in guest clusters 0..15 and a few more, 4 KiB clusters, 16-bit refcounts. */
    private Path dataImage(String name, String extraOptions) throws Exception {
        Path img = dir.resolve(name + ".qcow2");
        run("qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=" + CLUSTER + extraOptions, img.toString(),
                "4M");
        run("qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 64k", "-c", "write -P 0x22 1M 12k",
                "-c", "write -P 0x33 3M 4k", img.toString());
        return img;
    }

    private interface Damage {
        void apply(Path img) throws Exception;
    }

    static Stream<Arguments> damages() {
        return Stream.of(
                Arguments.of("leak-dropped-l2-entry", (Damage) img -> writeLong(img, l2EntryOffset(img, 3), 0),
                        false),
                Arguments.of("leak-refcount-raised-and-copied-wrong", (Damage) img -> setRefcount(img,
                        L2Entry.hostOffset(l2Entry(img, 2)) / CLUSTER, 3), false),
                Arguments.of("overlap-two-l2-entries-one-cluster", (Damage) img -> writeLong(img,
                        l2EntryOffset(img, 5), l2Entry(img, 4)), true),
                Arguments.of("refcount-zero-under-data", (Damage) img -> setRefcount(img,
                        L2Entry.hostOffset(l2Entry(img, 7)) / CLUSTER, 0), true),
                Arguments.of("refcount-zero-under-l2-table", (Damage) img -> setRefcount(img,
                        l2Table(img) / CLUSTER, 0), true),
                Arguments.of("refcount-table-entry-unaligned", (Damage) img -> {
                    Qcow2Header h = header(img);
                    long e = readAt(img, h.refcountTableOffset, 8).getLong(0);
                    writeLong(img, h.refcountTableOffset, e + 512);
                }, true),
                Arguments.of("refcount-block-overlaps-l2-table", (Damage) img -> {
                    Qcow2Header h = header(img);
                    writeLong(img, h.refcountTableOffset, l2Table(img));
                }, true),
                Arguments.of("data-cluster-is-the-l1-table", (Damage) img -> writeLong(img, l2EntryOffset(img, 6),
                        header(img).l1TableOffset | L2Entry.COPIED), true),
                Arguments.of("l2-offset-unaligned-in-l1", (Damage) img -> {
                    Qcow2Header h = header(img);
                    writeLong(img, h.l1TableOffset, (l2Table(img) + 512) | L2Entry.COPIED);
                }, false),
                Arguments.of("data-beyond-end-of-file", (Damage) img -> writeLong(img, l2EntryOffset(img, 8),
                        (1L << 40) | L2Entry.COPIED), false),
                Arguments.of("l2-entry-reserved-bits", (Damage) img -> writeLong(img, l2EntryOffset(img, 9),
                        l2Entry(img, 9) | 2), false));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("damages")
    void jtapAgreesWithQemuAndRepairs(String name, Damage damage, boolean needsRepairAll) throws Exception {
        Path img = dataImage(name, "");
        damage.apply(img);
        QemuVerdict qemu = QemuVerdict.of(img);
        ImageCheck jtap = check(img, false, false);
        String context = name + ": qemu=" + qemu + ", jtap=" + jtap;
        assertEquals(qemu.leaks(), jtap.leaks(), context);
        assertEquals(qemu.corruptions(), jtap.corruptions(), context);
        assertEquals(qemu.exit(), jtap.qemuExitCode(), context);
        if (name.equals("l2-offset-unaligned-in-l1") || name.equals("data-beyond-end-of-file")
                || name.equals("l2-entry-reserved-bits")) {
            return; // qemu cannot repair these either; the verdicts agreeing is the point
        }
        byte[] before = qemuRaw(img);
        if (!needsRepairAll) {
            ImageCheck repaired = check(img, true, false);
            assertTrue(repaired.isClean(), name + ": after -r leaks: " + repaired);
        } else {
            Path copy = dir.resolve(name + ".leaksonly.qcow2");
            Files.copy(img, copy, StandardCopyOption.REPLACE_EXISTING);
            assertTrue(!check(copy, true, false).isClean(), name + ": -r leaks must not fix corruption");
            ImageCheck repaired = check(img, true, true);
            assertTrue(repaired.isClean(), name + ": after -r all: " + repaired);
            assertTrue(repaired.corruptionsFixed() > 0, name + ": " + repaired);
        }
        QemuVerdict after = QemuVerdict.of(img);
        assertEquals(0, after.exit(), name + ": qemu-img check after jtap's repair: " + after);
        assertArrayEquals(before, qemuRaw(img), name + ": data changed by the repair");
        // and the repaired image takes writes again, staying clean
        try (Image image = ImageFormats.defaults().get("qcow2").open(img, OpenOptions.defaults())) {
            image.write(2 * CLUSTER * 100, ByteBuffer.wrap(new byte[3 * CLUSTER]));
        }
        assertEquals(0, QemuVerdict.of(img).exit(), name + ": after writing to the repaired image");
    }

    private static ImageCheck check(Path img, boolean leaks, boolean all) throws IOException {
        OpenOptions o = OpenOptions.defaults().withCheck(true).withReadOnly(!leaks && !all);
        try (Image image = ImageFormats.defaults().get("qcow2").open(img, o)) {
            return ((Checkable) image).check(leaks, all);
        }
    }

    private byte[] qemuRaw(Path img) throws Exception {
        Path raw = dir.resolve("export.raw");
        Files.deleteIfExists(raw);
        run("qemu-img", "convert", "-f", "qcow2", "-O", "raw", img.toString(), raw.toString());
        return Files.readAllBytes(raw);
    }

    /** Clean images of every kind: both say clean, and the statistics agree. */
    @Test
    void statisticsMatchQemuOnCleanImages() throws Exception {
        Path src = dir.resolve("src.raw");
        Qcow2ReadInteropTest.writeSource(src, 8L << 20, new java.util.Random(7));
        String[][] variants = {
            {"plain", "compat=1.1"}, {"v2", "compat=0.10"}, {"c512", "cluster_size=512"},
            {"rc1", "refcount_bits=1"}, {"rc64", "refcount_bits=64"}, {"extl2", "extended_l2=on"},
            {"compressed", "compat=1.1", "-c"}, {"zstd", "compression_type=zstd", "-c"},
        };
        for (String[] v : variants) {
            Path img = dir.resolve(v[0] + ".qcow2");
            if (v.length > 2) {
                run("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", v[1], src.toString(),
                        img.toString());
            } else {
                run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o", v[1], src.toString(), img.toString());
            }
            QemuVerdict qemu = QemuVerdict.of(img);
            ImageCheck jtap = check(img, false, false);
            String context = v[0] + ": qemu=" + qemu + ", jtap=" + jtap;
            assertTrue(jtap.isClean(), context);
            assertEquals(qemu.allocated(), jtap.allocatedClusters(), context);
            assertEquals(qemu.fragmented(), jtap.fragmentedClusters(), context);
            assertEquals(qemu.compressed(), jtap.compressedClusters(), context);
            assertEquals(qemu.imageEnd(), jtap.imageEndOffset(), context);
        }
    }

    /** Persistent dirty bitmaps own clusters too (directory, tables, data): walked, so no false leaks. */
    @Test
    void persistentBitmapsAreWalked() throws Exception {
        Path img = dir.resolve("bitmaps.qcow2");
        run("qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=" + CLUSTER, img.toString(), "4M");
        run("qemu-img", "bitmap", "--add", img.toString(), "b0");
        run("qemu-img", "bitmap", "--add", "-g", "65536", img.toString(), "b1");
        run("qemu-io", "-f", "qcow2", "-c", "write -P 1 0 100k", "-c", "write -P 2 2M 8k", img.toString());
        QemuVerdict qemu = QemuVerdict.of(img);
        ImageCheck jtap = check(img, false, false);
        assertEquals(0, qemu.exit(), qemu.toString());
        assertTrue(jtap.isClean(), jtap.toString());
        assertEquals(qemu.imageEnd(), jtap.imageEndOffset(), "qemu=" + qemu + ", jtap=" + jtap);
        assertEquals(qemu.allocated(), jtap.allocatedClusters(), "qemu=" + qemu + ", jtap=" + jtap);
    }

    /** Snapshots share clusters (refcount 2, COPIED clear): clean; a leak in such an image is found and freed. */
    @Test
    void snapshotsAreWalked() throws Exception {
        Path img = dataImage("snap", "");
        run("qemu-img", "snapshot", "-c", "one", img.toString());
        run("qemu-io", "-f", "qcow2", "-c", "write -P 0x44 8k 8k", img.toString());
        run("qemu-img", "snapshot", "-c", "two", img.toString());
        assertTrue(check(img, false, false).isClean());
        setRefcount(img, L2Entry.hostOffset(l2Entry(img, 2)) / CLUSTER, 3);
        QemuVerdict qemu = QemuVerdict.of(img);
        ImageCheck jtap = check(img, false, false);
        assertEquals(qemu.leaks(), jtap.leaks(), "qemu=" + qemu + ", jtap=" + jtap);
        assertEquals(qemu.corruptions(), jtap.corruptions(), "qemu=" + qemu + ", jtap=" + jtap);
        byte[] before = qemuRaw(img);
        assertTrue(check(img, true, false).isClean());
        assertEquals(0, QemuVerdict.of(img).exit());
        assertArrayEquals(before, qemuRaw(img));
        // and, being consistent, opens for writing: jtap copies shared clusters on write
        ImageFormats.defaults().get("qcow2").open(img, OpenOptions.defaults()).close();
    }

    /**
     * A lazy-refcounts writer killed mid-run leaves the dirty bit and stale refcounts. jtap reports what qemu
     * reports; {@code -r all} rebuilds, clears the dirty bit, and the image then opens for writing.
     */
    @Test
    void dirtyLazyRefcountsImageIsRepairedAndWritableAgain() throws Exception {
        Path img = dir.resolve("lazy.qcow2");
        run("qemu-img", "create", "-f", "qcow2", "-o", "lazy_refcounts=on,cluster_size=" + CLUSTER, img.toString(),
                "4M");
        QemuTools.Result r = runAllowingFailure("qemu-io", "-f", "qcow2", "-c", "write -P 0x55 0 200k",
                "-c", "write -P 0x66 2M 64k", "-c", "sigraise 9", img.toString());
        assertTrue(r.exit() != 0, "qemu-io should have been killed: " + r.output());
        assertTrue((header(img).incompatible & Qcow2Header.INCOMPAT_DIRTY) != 0, "dirty bit set");
        QemuVerdict qemu = QemuVerdict.of(img);
        ImageCheck jtap = check(img, false, false);
        assertEquals(qemu.leaks(), jtap.leaks(), "qemu=" + qemu + ", jtap=" + jtap);
        assertEquals(qemu.corruptions(), jtap.corruptions(), "qemu=" + qemu + ", jtap=" + jtap);
        assertTrue(jtap.corruptions() > 0, jtap.toString());
        byte[] before = qemuRaw(img);
        assertThrows(IOException.class, () -> ImageFormats.defaults().get("qcow2").open(img, OpenOptions.defaults()));
        try (Image image = ImageFormats.defaults().get("qcow2").open(img, OpenOptions.defaults().withCheck(true))) {
            IOException refused = assertThrows(IOException.class, () -> image.write(0, ByteBuffer.allocate(512)));
            assertTrue(refused.getMessage().contains("dirty"), refused.getMessage());
            ImageCheck repaired = ((Checkable) image).check(true, true);
            assertTrue(repaired.isClean(), repaired.toString());
            image.write(3L << 20, ByteBuffer.wrap(new byte[CLUSTER]).put(0, (byte) 7));
        }
        assertEquals(0, header(img).incompatible & Qcow2Header.INCOMPAT_DIRTY, "dirty bit cleared");
        assertEquals(0, QemuVerdict.of(img).exit());
        byte[] after = qemuRaw(img);
        before[3 << 20] = 7;
        assertArrayEquals(before, after);
    }

    @Test
    void repairNeedsAWritableImage() throws Exception {
        Path img = dataImage("ro", "");
        try (Image image = ImageFormats.defaults().get("qcow2").open(img, OpenOptions.defaults().withReadOnly(true))) {
            assertThrows(java.nio.file.AccessDeniedException.class, () -> ((Checkable) image).check(true, false));
            assertTrue(((Checkable) image).check(false, false).isClean());
        }
    }

    /**
     * check keeps one counter per host cluster of the file, and a damaged image's file can be far longer than its
     * data (a sparse write placed by a corrupt offset; found by Qcow2FuzzTest, seed 17526858004629). With a small
     * heap the check must refuse with the sizes named, not die of OutOfMemoryError. Runs jtap-img in a JVM of its
     * own with -Xmx64m: a 1 TiB file of 64 KiB clusters needs 64 MiB of counters.
     */
    @Test
    void aFileTooLongForTheHeapIsRefusedWithItsSizesNamed() throws Exception {
        Path img = dir.resolve("long.qcow2");
        ImageFormats.defaults().get("qcow2").create(img, CreateOptions.ofSize(1 << 20));
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(1L << 40);
        }
        Process p = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx64m",
                "-cp", System.getProperty("java.class.path"), "io.jtap.formats.tool.JtapImg", "check", img.toString())
                .redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        int exit = p.waitFor();
        assertTrue(out.contains("image too large to check with this heap") && out.contains("clusters=16777217"),
                "exit " + exit + ", output:\n" + out);
        assertFalse(out.contains("OutOfMemoryError"), out);
        assertTrue(exit != 0, "exit " + exit);
    }
}
