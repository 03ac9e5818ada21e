package io.jtap.formats.qcow2;

import static io.jtap.formats.QemuTools.run;
import static io.jtap.formats.qcow2.Qcow2SharedClusterWriteTest.appliedRaw;
import static io.jtap.formats.qcow2.Qcow2SharedClusterWriteTest.assertJtapClean;
import static io.jtap.formats.qcow2.Qcow2SharedClusterWriteTest.assertQemuClean;
import static io.jtap.formats.qcow2.Qcow2SharedClusterWriteTest.qemuRaw;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.jtap.formats.Checkable;
import io.jtap.formats.CreateOptions;
import io.jtap.formats.Image;
import io.jtap.formats.ImageCheck;
import io.jtap.formats.ImageFormat;
import io.jtap.formats.ImageFormats;
import io.jtap.formats.OpenOptions;
import io.jtap.formats.QemuTools;
import io.jtap.formats.SelfDescribingData;
import io.jtap.formats.WriteMapping;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Internal snapshots both ways between jtap and QEMU. jtap creates, deletes and applies; {@code qemu-img snapshot -l}
 * lists what jtap made (names, ids), {@code qemu-img check} is clean after every step, and every snapshot, read by
 * {@code qemu-img convert -l snapshot.name=...} and by {@code qemu-img snapshot -a} on a copy, holds exactly what the
 * disk held when it was taken (a byte model per snapshot is the oracle). QEMU's snapshots are deleted and applied by
 * jtap with the same checks, and jtap's checker agrees with qemu-img's on images with snapshots, damaged or not.
 */
class Qcow2SnapshotInteropTest {
    private static final long MIB = 1 << 20;
    private static final long SEED = Long.getLong("jtap.seed", System.nanoTime());
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    private final ImageFormat qcow2 = ImageFormats.defaults().get("qcow2");

    Qcow2SnapshotInteropTest() throws Exception {
    }

    @BeforeEach
    void requireQemu() {
        QemuTools.require("qemu-img");
        QemuTools.require("qemu-io");
    }

    static Stream<Arguments> variants() {
        return Stream.of(
                Arguments.of("v3-64k", "1.1", 65536, 16, 8 * MIB),
                Arguments.of("v2-64k", "0.10", 65536, 16, 8 * MIB),
                Arguments.of("v3-4k-refcount8", "1.1", 4096, 8, 4 * MIB),
                Arguments.of("v3-512-refcount64", "1.1", 512, 64, 2 * MIB));
    }

    /**
     * Several snapshots with writes between them, a delete from the middle, an apply of an older one followed by
     * writes and a new snapshot; after each step qemu-img agrees on the list and the contents, and check is clean.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void jtapSnapshotsReadBackThroughQemu(String name, String compat, int clusterSize, int refcountBits, long size)
            throws Exception {
        String context = "seed=" + SEED + " (rerun with -Djtap.seed=" + SEED + "), variant=" + name;
        Random rnd = new Random(SEED);
        Path img = dir.resolve(name + ".qcow2");
        qcow2.create(img, CreateOptions.ofSize(size).with("compat", compat)
                .with("cluster_size", String.valueOf(clusterSize)).with("refcount_bits", String.valueOf(refcountBits)));
        byte[] model = new byte[(int) size];
        Map<String, byte[]> taken = new LinkedHashMap<>();
        try (Qcow2Image image = (Qcow2Image) qcow2.open(img, OpenOptions.defaults().withCacheBytes(32 * 1024))) {
            for (int round = 0; round < 4; round++) {
                for (int op = 0; op < 40; op++) {
                    Qcow2SharedClusterWriteTest.randomOp(image, model, rnd, round * 100 + op + 2);
                }
                Qcow2Snapshot s = image.createSnapshot("snap" + round);
                assertEquals(String.valueOf(round + 1), s.id(), context);
                assertEquals(size, s.diskSize(), context);
                taken.put("snap" + round, model.clone());
            }
            for (int op = 0; op < 40; op++) {
                Qcow2SharedClusterWriteTest.randomOp(image, model, rnd, 500 + op);
            }
        }
        assertSnapshots(img, taken, model, context + ", four snapshots");
        JsonNode info = JSON.readTree(run("qemu-img", "info", "--output=json", img.toString()));
        for (int i = 0; i < 4; i++) {
            assertEquals(String.valueOf(i + 1), info.get("snapshots").get(i).get("id").asText(), context);
            assertEquals("snap" + i, info.get("snapshots").get(i).get("name").asText(), context);
        }
        String list = run("qemu-img", "snapshot", "-l", img.toString());
        assertTrue(list.contains("snap0") && list.contains("snap3"), list);

        try (Qcow2Image image = (Qcow2Image) qcow2.open(img, OpenOptions.defaults())) {
            image.deleteSnapshot("2");
            taken.remove("snap1");
        }
        assertSnapshots(img, taken, model, context + ", after deleting snap1");

        try (Qcow2Image image = (Qcow2Image) qcow2.open(img, OpenOptions.defaults().withCacheBytes(32 * 1024))) {
            image.applySnapshot(image.findSnapshot("snap0").orElseThrow().id());
            model = taken.get("snap0").clone();
            byte[] now = new byte[(int) size];
            image.read(0, ByteBuffer.wrap(now));
            assertNull(SelfDescribingData.firstDifference(model, now, 0), context + ", jtap reads applied snap0");
            for (int op = 0; op < 40; op++) {
                Qcow2SharedClusterWriteTest.randomOp(image, model, rnd, 700 + op);
            }
            Qcow2Snapshot s = image.createSnapshot("after-apply");
            assertEquals("5", s.id(), context + ": ids keep counting past deleted ones");
            taken.put("after-apply", model.clone());
            for (int op = 0; op < 20; op++) {
                Qcow2SharedClusterWriteTest.randomOp(image, model, rnd, 800 + op);
            }
        }
        assertSnapshots(img, taken, model, context + ", after apply, writes, snapshot");

        try (Qcow2Image image = (Qcow2Image) qcow2.open(img, OpenOptions.defaults())) {
            for (Qcow2Snapshot s : image.snapshots()) {
                image.deleteSnapshot(s.id());
            }
            assertEquals(List.of(), image.snapshots());
        }
        assertSnapshots(img, Map.of(), model, context + ", all deleted");
        assertEquals(0, Qcow2Header.parse(ByteBuffer.wrap(Files.readAllBytes(img), 0, clusterSize)).nbSnapshots);
    }

    /** QEMU takes the snapshots; jtap deletes one from the middle, applies an older one, writes, takes another. */
    @Test
    void qemuSnapshotsDeletedAndAppliedByJtap() throws Exception {
        Path img = dir.resolve("qemu.qcow2");
        run("qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=4096", img.toString(), "4M");
        Map<String, byte[]> taken = new LinkedHashMap<>();
        String[] patterns = {"write -P 0x11 0 1M", "write -P 0x22 512k 1M", "write -c -P 0x33 3M 64k"};
        for (int i = 0; i < 3; i++) {
            run("qemu-io", "-f", "qcow2", "-c", patterns[i], "-c", "write -z " + (i * 100 + 50) + "k 8k",
                    img.toString());
            run("qemu-img", "snapshot", "-c", "q" + i, img.toString());
            taken.put("q" + i, qemuRaw(img, null));
        }
        run("qemu-io", "-f", "qcow2", "-c", "write -P 0x44 100k 200k", img.toString());
        byte[] model = qemuRaw(img, null);
        try (Qcow2Image image = (Qcow2Image) qcow2.open(img, OpenOptions.defaults())) {
            image.deleteSnapshot(image.findSnapshot("q1").orElseThrow().id());
            taken.remove("q1");
        }
        assertSnapshots(img, taken, model, "after jtap deleted q1");
        try (Qcow2Image image = (Qcow2Image) qcow2.open(img, OpenOptions.defaults())) {
            image.applySnapshot(image.findSnapshot("q0").orElseThrow().id());
            model = taken.get("q0").clone();
            image.write(5000, SelfDescribingData.buffer(5000, 70000, 9));
            SelfDescribingData.fill(model, 5000, 70000, 5000, 9);
            image.createSnapshot("j1");
            taken.put("j1", model.clone());
            image.write(2 * MIB, SelfDescribingData.buffer(2 * MIB, 4096, 10));
            SelfDescribingData.fill(model, (int) (2 * MIB), 4096, 2 * MIB, 10);
        }
        assertSnapshots(img, taken, model, "after jtap applied q0, wrote, took j1");
        // and QEMU carries on from what jtap left
        run("qemu-img", "snapshot", "-d", "q0", img.toString());
        taken.remove("q0");
        run("qemu-img", "snapshot", "-a", "j1", img.toString());
        assertSnapshots(img, taken, taken.get("j1"), "after qemu deleted q0 and applied j1");
    }

    /** A snapshot keeps its disk size: applying it after a resize brings the old size back, as in QEMU. */
    @Test
    void applyRestoresTheSnapshotsDiskSize() throws Exception {
        Path img = dir.resolve("resized.qcow2");
        qcow2.create(img, CreateOptions.ofSize(2 * MIB).with("cluster_size", "4096"));
        byte[] small = new byte[(int) (2 * MIB)];
        try (Qcow2Image image = (Qcow2Image) qcow2.open(img, OpenOptions.defaults())) {
            image.write(0, SelfDescribingData.buffer(0, 300_000, 2));
            SelfDescribingData.fill(small, 0, 300_000, 0, 2);
            image.createSnapshot("small");
            image.resize(64 * MIB);
            image.write(40 * MIB, SelfDescribingData.buffer(40 * MIB, 100_000, 3));
            image.write(1000, SelfDescribingData.buffer(1000, 1000, 4));
            image.createSnapshot("big");
            image.applySnapshot(image.findSnapshot("small").orElseThrow().id());
            assertEquals(2 * MIB, image.size());
        }
        JsonNode info = JSON.readTree(run("qemu-img", "info", "--output=json", img.toString()));
        assertEquals(2 * MIB, info.get("virtual-size").asLong());
        assertQemuClean(img, "after apply of the smaller snapshot");
        assertNull(SelfDescribingData.firstDifference(small, qemuRaw(img, null), 0));
        // (qemu-img convert -l reads a snapshot at the active disk size; snapshot -a restores the snapshot's)
        byte[] big = appliedRaw(img, "big");
        assertEquals(64 * MIB, big.length);
        try (Qcow2Image image = (Qcow2Image) qcow2.open(img, OpenOptions.defaults())) {
            image.applySnapshot(image.findSnapshot("big").orElseThrow().id());
            assertEquals(64 * MIB, image.size());
            byte[] now = new byte[(int) (64 * MIB)];
            image.read(0, ByteBuffer.wrap(now));
            assertNull(SelfDescribingData.firstDifference(big, now, 0));
        }
        assertQemuClean(img, "after apply of the larger snapshot");
    }

    /**
     * lazy_refcounts=on images: jtap keeps refcounts exact and never sets the dirty bit, so snapshot operations and
     * the writes between them leave the bit clear and qemu-img check clean. An image a lazy-refcounts writer left
     * dirty is refused for writing (its refcounts may be stale), snapshots included.
     */
    @Test
    void lazyRefcountImagesStayClean() throws Exception {
        Path img = dir.resolve("lazy.qcow2");
        run("qemu-img", "create", "-f", "qcow2", "-o", "lazy_refcounts=on,cluster_size=4096", img.toString(), "4M");
        run("qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 1M", img.toString());
        byte[] model = qemuRaw(img, null);
        Map<String, byte[]> taken = new LinkedHashMap<>();
        try (Qcow2Image image = (Qcow2Image) qcow2.open(img, OpenOptions.defaults())) {
            image.createSnapshot("a");
            taken.put("a", model.clone());
            image.write(100_000, SelfDescribingData.buffer(100_000, 300_000, 2));
            SelfDescribingData.fill(model, 100_000, 300_000, 100_000, 2);
            image.createSnapshot("b");
            taken.put("b", model.clone());
            image.deleteSnapshot(image.findSnapshot("a").orElseThrow().id());
            taken.remove("a");
            image.write(3 * MIB, SelfDescribingData.buffer(3 * MIB, 5000, 3));
            image.applySnapshot(image.findSnapshot("b").orElseThrow().id());
            model = taken.get("b").clone();
        }
        Qcow2Header h = Qcow2Header.parse(ByteBuffer.wrap(Files.readAllBytes(img), 0, 4096));
        assertEquals(0, h.incompatible & Qcow2Header.INCOMPAT_DIRTY, "dirty bit");
        assertEquals(Qcow2Header.COMPAT_LAZY_REFCOUNTS, h.compatible & Qcow2Header.COMPAT_LAZY_REFCOUNTS);
        assertSnapshots(img, taken, model, "lazy refcounts");

        Path dirty = dir.resolve("dirty.qcow2");
        run("qemu-img", "create", "-f", "qcow2", "-o", "lazy_refcounts=on,cluster_size=4096", dirty.toString(), "4M");
        QemuTools.Result killed = QemuTools.runAllowingFailure("qemu-io", "-f", "qcow2", "-c", "write -P 0x55 0 200k",
                "-c", "sigraise 9", dirty.toString());
        assertTrue(killed.exit() != 0, killed.output());
        IOException e = assertThrows(IOException.class, () -> qcow2.open(dirty, OpenOptions.defaults()));
        assertTrue(e.getMessage().contains("dirty"), e.getMessage());
    }

    /** Refusals that change nothing: a duplicate name, an unknown id, writes in flight, refcounts that overflow. */
    @Test
    void refusalsLeaveTheImageAsItWas() throws Exception {
        Path img = dir.resolve("refuse.qcow2");
        qcow2.create(img, CreateOptions.ofSize(MIB).with("cluster_size", "4096"));
        try (Qcow2Image image = (Qcow2Image) qcow2.open(img, OpenOptions.defaults())) {
            image.write(0, SelfDescribingData.buffer(0, 50_000, 2));
            image.createSnapshot("one");
            byte[] before = Files.readAllBytes(img);
            assertThrows(FileAlreadyExistsException.class, () -> image.createSnapshot("one"));
            assertThrows(NoSuchFileException.class, () -> image.deleteSnapshot("7"));
            assertThrows(NoSuchFileException.class, () -> image.applySnapshot("one"));
            image.flush();
            assertTrue(Arrays.equals(before, Files.readAllBytes(img)), "a refused operation changed the file");
            try (WriteMapping m = image.mapForWrite(0, 512)) {
                IOException e = assertThrows(IOException.class, () -> image.createSnapshot("two"));
                assertTrue(e.getMessage().contains("in flight"), e.getMessage());
                m.abort();
            }
            assertEquals(List.of("one"), image.snapshots().stream().map(Qcow2Snapshot::name).toList());
            image.createSnapshot("two");
        }
        assertQemuClean(img, "after refusals");
        // 1-bit refcounts cannot count two references: QEMU refuses too
        Path narrow = dir.resolve("refcount1.qcow2");
        qcow2.create(narrow, CreateOptions.ofSize(MIB).with("cluster_size", "4096").with("refcount_bits", "1"));
        try (Qcow2Image image = (Qcow2Image) qcow2.open(narrow, OpenOptions.defaults())) {
            image.write(0, SelfDescribingData.buffer(0, 50_000, 2));
            image.flush();
            IOException e = assertThrows(IOException.class, () -> image.createSnapshot("x"));
            assertTrue(e.getMessage().contains("refcount overflow"), e.getMessage());
            assertEquals(List.of(), image.snapshots());
            image.write(60_000, SelfDescribingData.buffer(60_000, 5000, 3));
        }
        assertQemuClean(narrow, "refcount_bits=1 after a refused snapshot");
        assertTrue(QemuTools.runAllowingFailure("qemu-img", "snapshot", "-c", "x", narrow.toString()).exit() != 0,
                "qemu-img should refuse a snapshot with refcount_bits=1 too");
    }

    /**
     * jtap's checker on images with jtap-made snapshots agrees with qemu-img's: clean; a leak in a shared cluster;
     * a COPIED flag set on a shared data cluster (the flag that would let a write change the snapshot).
     */
    @Test
    void checkAgreesWithQemuOnSnapshotImages() throws Exception {
        Path img = dir.resolve("check.qcow2");
        qcow2.create(img, CreateOptions.ofSize(4 * MIB).with("cluster_size", "4096"));
        try (Qcow2Image image = (Qcow2Image) qcow2.open(img, OpenOptions.defaults())) {
            image.write(0, SelfDescribingData.buffer(0, 200_000, 2));
            image.createSnapshot("a");
            image.write(8192, SelfDescribingData.buffer(8192, 10_000, 3));
            image.createSnapshot("b");
            image.write(3 * MIB, SelfDescribingData.buffer(3 * MIB, 10_000, 4));
        }
        assertAgree(img, "clean", 0, 0);
        Qcow2Header h = Qcow2Header.parse(ByteBuffer.wrap(Files.readAllBytes(img), 0, 4096));
        long l2;
        long entry;
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.seek(h.l1TableOffset);
            l2 = f.readLong() & ClusterMap.L1_OFFSET_MASK;
            f.seek(l2 + 20 * 8);
            entry = f.readLong();
            assertEquals(0, entry & L2Entry.COPIED, "guest cluster 20 is shared with both snapshots");
        }
        Path leak = dir.resolve("leak.qcow2");
        Files.copy(img, leak);
        setRefcount16(leak, h, L2Entry.hostOffset(entry) >> 12, 4);
        assertAgree(leak, "leak", 1, 0);
        Path copied = dir.resolve("copied.qcow2");
        Files.copy(img, copied);
        try (RandomAccessFile f = new RandomAccessFile(copied.toFile(), "rw")) {
            f.seek(l2 + 20 * 8);
            f.writeLong(entry | L2Entry.COPIED);
        }
        assertAgree(copied, "COPIED on a shared cluster", 0, 1);
    }

    private static void assertAgree(Path img, String what, long leaks, long corruptions) throws Exception {
        Qcow2CheckTest.QemuVerdict qemu = Qcow2CheckTest.QemuVerdict.of(img);
        ImageCheck jtap;
        try (Image image = ImageFormats.defaults().get("qcow2").open(img,
                OpenOptions.defaults().withReadOnly(true).withCheck(true))) {
            jtap = ((Checkable) image).check(false, false);
        }
        String context = what + ": qemu=" + qemu + ", jtap=" + jtap;
        assertEquals(leaks, qemu.leaks(), context);
        assertEquals(corruptions, qemu.corruptions(), context);
        assertEquals(qemu.leaks(), jtap.leaks(), context);
        assertEquals(qemu.corruptions(), jtap.corruptions(), context);
        assertEquals(qemu.exit(), jtap.qemuExitCode(), context);
        assertEquals(qemu.allocated(), jtap.allocatedClusters(), context);
    }

    private static void setRefcount16(Path img, Qcow2Header h, long cluster, int value) throws IOException {
        long perBlock = h.clusterSize() / 2;
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.seek(h.refcountTableOffset + cluster / perBlock * 8);
            long block = f.readLong();
            f.seek(block + cluster % perBlock * 2);
            f.writeShort(value);
        }
    }

    /**
     * qemu-img check is clean, jtap's check too, the snapshot list is {@code taken}'s names in order, each
     * snapshot reads as its model (convert -l, and snapshot -a on a copy), and the active state as {@code model}.
     */
    static void assertSnapshots(Path img, Map<String, byte[]> taken, byte[] model, String context) throws Exception {
        assertQemuClean(img, context);
        assertJtapClean(img, context);
        JsonNode info = JSON.readTree(run("qemu-img", "info", "--output=json", img.toString()));
        List<String> names = new ArrayList<>();
        info.path("snapshots").forEach(s -> names.add(s.get("name").asText()));
        assertEquals(new ArrayList<>(taken.keySet()), names, context + ": qemu-img's snapshot list");
        assertNull(SelfDescribingData.firstDifference(model, qemuRaw(img, null), 0), context + ": active state");
        for (Map.Entry<String, byte[]> e : taken.entrySet()) {
            assertNull(SelfDescribingData.firstDifference(e.getValue(), qemuRaw(img, e.getKey()), 0),
                    context + ": snapshot " + e.getKey() + " (convert -l)");
        }
        if (!taken.isEmpty()) {
            String first = taken.keySet().iterator().next();
            assertNull(SelfDescribingData.firstDifference(taken.get(first), appliedRaw(img, first), 0),
                    context + ": snapshot " + first + " (snapshot -a on a copy)");
        }
    }
}
