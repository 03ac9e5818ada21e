package io.jtap.formats.qcow2;

import static io.jtap.formats.QemuTools.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.formats.BlockStatus;
import io.jtap.formats.Extent;
import io.jtap.formats.Image;
import io.jtap.formats.ImageFormats;
import io.jtap.formats.OpenOptions;
import io.jtap.formats.QemuTools;
import io.jtap.formats.SelfDescribingData;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * qemu-img creates, jtap reads: every variant qemu-img can produce is read by jtap (both through the synchronous
 * {@link Image#read} and through the zero-copy {@link Image#mapForRead} path) and compared byte for byte with
 * {@code qemu-img convert -O raw} of the same image.
 */
class Qcow2ReadInteropTest {
    private static final long MIB = 1 << 20;
    private static final long SEED = Long.getLong("jtap.seed", 20240601L);

    @TempDir
    Path dir;

    static Stream<Arguments> variants() {
        return Stream.of(
                Arguments.of("v2-64k", "compat=0.10,cluster_size=65536", false, 8 * MIB),
                Arguments.of("v3-512", "compat=1.1,cluster_size=512", false, 2 * MIB),
                Arguments.of("v3-4k", "compat=1.1,cluster_size=4096", false, 8 * MIB),
                Arguments.of("v3-64k", "compat=1.1,cluster_size=65536", false, 8 * MIB),
                Arguments.of("v3-2m", "compat=1.1,cluster_size=2097152", false, 16 * MIB),
                Arguments.of("v3-refcount1", "compat=1.1,refcount_bits=1", false, 8 * MIB),
                Arguments.of("v3-refcount64-512", "compat=1.1,refcount_bits=64,cluster_size=512", false, 2 * MIB),
                Arguments.of("v3-extl2-64k", "compat=1.1,extended_l2=on,cluster_size=65536", false, 8 * MIB),
                Arguments.of("v3-lazy", "compat=1.1,lazy_refcounts=on", false, 8 * MIB),
                Arguments.of("v3-compressed-64k", "compat=1.1,cluster_size=65536", true, 8 * MIB),
                Arguments.of("v3-compressed-4k", "compat=1.1,cluster_size=4096", true, 4 * MIB),
                Arguments.of("v3-compressed-2m", "compat=1.1,cluster_size=2097152", true, 16 * MIB),
                Arguments.of("v2-compressed", "compat=0.10", true, 8 * MIB),
                Arguments.of("v3-zstd-64k", "compat=1.1,compression_type=zstd", true, 8 * MIB),
                Arguments.of("v3-zstd-4k", "compat=1.1,compression_type=zstd,cluster_size=4096", true, 4 * MIB),
                Arguments.of("v3-zstd-2m", "compat=1.1,compression_type=zstd,cluster_size=2097152", true,
                        16 * MIB));
    }

    /** A raw source with holes, whole data regions and partial ones (self-describing, tag 1). */
    static void writeSource(Path raw, long size, Random rnd) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(raw.toFile(), "rw")) {
            f.setLength(size);
            int chunk = 64 * 1024;
            for (long off = 0; off < size; off += chunk) {
                int kind = rnd.nextInt(4);
                if (kind == 0) {
                    continue;
                }
                int from = kind == 1 ? 0 : rnd.nextInt(chunk);
                int to = kind == 1 ? chunk : from + 1 + rnd.nextInt(chunk - from);
                byte[] b = new byte[to - from];
                SelfDescribingData.fill(b, 0, b.length, off + from, 1);
                f.seek(off + from);
                f.write(b);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void jtapReadsWhatQemuWrote(String name, String options, boolean compressed, long size) throws Exception {
        Random rnd = new Random(SEED);
        Path src = dir.resolve("src.raw");
        Path img = dir.resolve(name + ".qcow2");
        writeSource(src, size, rnd);
        List<String> args = new ArrayList<>(List.of("convert", "-f", "raw", "-O", "qcow2", "-o", options));
        if (compressed) {
            args.add("-c");
        }
        args.add(src.toString());
        args.add(img.toString());
        run("qemu-img", args.toArray(new String[0]));
        if (!compressed) {
            // zero clusters (v3 flag; explicit zeros on v2) and a patterned partial write over data and holes
            run("qemu-io", "-f", "qcow2", "-c", "write -z " + (MIB) + " " + (MIB / 2), img.toString());
            run("qemu-io", "-f", "qcow2", "-c", "write -P 0xab 4608 70000", img.toString());
        }
        assertImageMatchesQemu(img, OpenOptions.defaults().withReadOnly(true), rnd, "seed=" + SEED + ", " + name);
        try (Image image = ImageFormats.defaults().get("qcow2").open(img,
                OpenOptions.defaults().withReadOnly(true))) {
            java.util.Set<Extent.Kind> kinds = java.util.EnumSet.noneOf(Extent.Kind.class);
            image.mapForRead(0, image.size()).forEach(e -> kinds.add(e.kind()));
            assertTrue(kinds.contains(compressed ? Extent.Kind.TRANSFORMED : Extent.Kind.DATA), name + " " + kinds);
            // With 2 MiB clusters every cluster of the source holds some data: no zero extents to expect.
            assertTrue(name.endsWith("2m") || kinds.contains(Extent.Kind.ZERO), name + " " + kinds);
        }
    }

    /** Reads the image with jtap two ways and compares each with qemu-img's raw conversion. */
    static void assertImageMatchesQemu(Path img, OpenOptions options, Random rnd, String context)
            throws Exception {
        Path ref = img.resolveSibling(img.getFileName() + ".ref.raw");
        List<String> args = new ArrayList<>(List.of("convert", "-O", "raw"));
        options.snapshot().ifPresent(s -> args.addAll(List.of("-l", "snapshot.name=" + s)));
        args.add(img.toString());
        args.add(ref.toString());
        run("qemu-img", args.toArray(new String[0]));
        byte[] expected = Files.readAllBytes(ref);
        try (Image image = ImageFormats.defaults().get("qcow2").open(img, options)) {
            assertEquals(expected.length, image.size(), context + ": size");
            byte[] viaRead = new byte[expected.length];
            byte[] viaMap = new byte[expected.length];
            for (int off = 0; off < expected.length; ) {
                int n = Math.min(expected.length - off, 1 + rnd.nextInt(1 << 20));
                image.read(off, ByteBuffer.wrap(viaRead, off, n));
                readViaMapping(image, off, ByteBuffer.wrap(viaMap, off, n).slice());
                off += n;
            }
            assertNull(SelfDescribingData.firstDifference(expected, viaRead, 0), context + ", read()");
            assertNull(SelfDescribingData.firstDifference(expected, viaMap, 0), context + ", mapForRead()");
            checkBlockStatusCoversImage(image);
        }
    }

    /** What blkback will do: DATA extents straight from the host file, BACKING down the chain. */
    static void readViaMapping(Image image, long offset, ByteBuffer dst) throws IOException {
        long pos = offset;
        for (Extent e : image.mapForRead(offset, dst.remaining())) {
            assertEquals(pos, e.offset(), "extents are contiguous");
            ByteBuffer part = dst.slice((int) (e.offset() - offset), (int) e.length());
            switch (e.kind()) {
                case DATA -> e.file().read(part, e.hostOffset());
                case ZERO -> {
                    while (part.hasRemaining()) {
                        part.put((byte) 0);
                    }
                }
                case BACKING -> readViaMapping(image.backingImage().orElseThrow(), e.offset(), part);
                case TRANSFORMED -> image.read(e.offset(), part);
            }
            pos = e.end();
        }
        assertEquals(offset + dst.remaining(), pos, "extents cover the range");
    }

    private static void checkBlockStatusCoversImage(Image image) throws IOException {
        for (long off = 0; off < image.size(); ) {
            BlockStatus st = image.blockStatus(off, image.size() - off);
            assertTrue(st.length() > 0);
            off += st.length();
        }
    }

    @Test
    void backingChainOfMixedFormats() throws Exception {
        Random rnd = new Random(SEED);
        Path base = dir.resolve("base.raw");
        writeSource(base, 4 * MIB, rnd);
        Path mid = dir.resolve("mid.qcow2");
        Path top = dir.resolve("top.qcow2");
        run("qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=4096", "-b", "base.raw", "-F", "raw",
                mid.toString(), String.valueOf(6 * MIB));
        run("qemu-io", "-f", "qcow2", "-c", "write -P 0x11 100000 300000", "-c", "write -P 0x12 5000000 4096",
                mid.toString());
        run("qemu-img", "create", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", top.toString(),
                String.valueOf(8 * MIB));
        run("qemu-io", "-f", "qcow2", "-c", "write -P 0x21 200000 70000", "-c", "write -z 1048576 131072",
                "-c", "write -P 0x22 7000000 512", top.toString());
        assertImageMatchesQemu(top, OpenOptions.defaults().withReadOnly(true), rnd, "seed=" + SEED + ", chain");
        try (Image image = ImageFormats.defaults().get("qcow2").open(top, OpenOptions.defaults()
                .withReadOnly(true))) {
            assertEquals("mid.qcow2", image.backing().orElseThrow().name());
            Image midImage = image.backingImage().orElseThrow();
            assertEquals("raw", midImage.backingImage().orElseThrow().formatName());
            assertEquals(BlockStatus.Kind.ZERO, image.blockStatus(MIB, 4096).kind());
            assertEquals(BlockStatus.Kind.UNALLOCATED, image.blockStatus(0, 4096).kind());
        }
    }

    @Test
    void extendedL2SubclustersOverBacking() throws Exception {
        Random rnd = new Random(SEED);
        Path base = dir.resolve("base.qcow2");
        Path src = dir.resolve("src.raw");
        writeSource(src, 4 * MIB, rnd);
        run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", src.toString(), base.toString());
        Path top = dir.resolve("top.qcow2");
        run("qemu-img", "create", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=65536", "-b", "base.qcow2",
                "-F", "qcow2", top.toString(), String.valueOf(4 * MIB));
        run("qemu-io", "-f", "qcow2", "-c", "write -P 0x31 4096 4096", "-c", "write -z 12288 2048",
                "-c", "write -P 0x32 200000 10000", "-c", "write -z 1048576 65536", top.toString());
        assertImageMatchesQemu(top, OpenOptions.defaults().withReadOnly(true), rnd, "seed=" + SEED + ", extl2");
        IOException e = assertThrows(IOException.class,
                () -> ImageFormats.defaults().get("qcow2").open(top, OpenOptions.defaults()));
        assertTrue(e.getMessage().contains("extended L2"), e.getMessage());
    }

    @Test
    void internalSnapshotsAreListedAndRead() throws Exception {
        Random rnd = new Random(SEED);
        Path src = dir.resolve("src.raw");
        Path img = dir.resolve("snap.qcow2");
        writeSource(src, 4 * MIB, rnd);
        run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", src.toString(), img.toString());
        run("qemu-img", "snapshot", "-c", "first", img.toString());
        run("qemu-io", "-f", "qcow2", "-c", "write -P 0x41 0 300000", "-c", "write -z 2097152 65536",
                img.toString());
        run("qemu-img", "snapshot", "-c", "second", img.toString());
        run("qemu-io", "-f", "qcow2", "-c", "write -P 0x42 1000000 4096", img.toString());
        try (Qcow2Image image = (Qcow2Image) ImageFormats.defaults().get("qcow2").open(img,
                OpenOptions.defaults().withReadOnly(true))) {
            assertEquals(List.of("first", "second"), image.snapshots().stream().map(Qcow2Snapshot::name).toList());
        }
        assertImageMatchesQemu(img, OpenOptions.defaults().withSnapshot("first"), rnd, "seed=" + SEED + ", first");
        assertImageMatchesQemu(img, OpenOptions.defaults().withSnapshot("second"), rnd, "seed=" + SEED + ", 2nd");
        assertImageMatchesQemu(img, OpenOptions.defaults().withReadOnly(true), rnd, "seed=" + SEED + ", active");
    }

    @Test
    void backingLoopIsDetected() throws Exception {
        Path a = dir.resolve("a.qcow2");
        Path b = dir.resolve("b.qcow2");
        run("qemu-img", "create", "-f", "qcow2", a.toString(), "1M");
        run("qemu-img", "create", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", b.toString(), "1M");
        run("qemu-img", "rebase", "-u", "-b", "b.qcow2", "-F", "qcow2", a.toString());
        IOException e = assertThrows(IOException.class,
                () -> ImageFormats.defaults().get("qcow2").open(b, OpenOptions.defaults().withReadOnly(true)));
        assertTrue(e.getMessage().contains("loop"), e.getMessage());
        Path self = dir.resolve("self.qcow2");
        run("qemu-img", "create", "-f", "qcow2", self.toString(), "1M");
        run("qemu-img", "rebase", "-u", "-b", "self.qcow2", "-F", "qcow2", self.toString());
        e = assertThrows(IOException.class,
                () -> ImageFormats.defaults().get("qcow2").open(self, OpenOptions.defaults().withReadOnly(true)));
        assertTrue(e.getMessage().contains("loop"), e.getMessage());
    }

    @Test
    void dirtyLazyRefcountImageRefusesWrites() throws Exception {
        QemuTools.require("qemu-img");
        Path img = dir.resolve("dirty.qcow2");
        run("qemu-img", "create", "-f", "qcow2", "-o", "lazy_refcounts=on", img.toString(), "1M");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.seek(Qcow2Header.OFFSET_INCOMPATIBLE);
            f.writeLong(Qcow2Header.INCOMPAT_DIRTY);
        }
        IOException e = assertThrows(IOException.class,
                () -> ImageFormats.defaults().get("qcow2").open(img, OpenOptions.defaults()));
        assertTrue(e.getMessage().contains("dirty"), e.getMessage());
        try (Image ro = ImageFormats.defaults().get("qcow2").open(img, OpenOptions.defaults().withReadOnly(true))) {
            assertEquals(MIB, ro.size());
        }
    }
}
