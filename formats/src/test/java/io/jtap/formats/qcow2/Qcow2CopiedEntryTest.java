package io.jtap.formats.qcow2;

import static io.jtap.formats.QemuTools.run;
import static io.jtap.formats.QemuTools.runAllowingFailure;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.formats.Checkable;
import io.jtap.formats.CorruptImageException;
import io.jtap.formats.CreateOptions;
import io.jtap.formats.Image;
import io.jtap.formats.ImageCheck;
import io.jtap.formats.ImageFormat;
import io.jtap.formats.ImageFormats;
import io.jtap.formats.OpenOptions;
import io.jtap.formats.QemuTools;
import io.jtap.formats.SelfDescribingData;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * An L2 entry with COPIED set claims "refcount exactly 1, write in place". A damaged image whose claim the refcount
 * structures contradict (the host cluster beyond the refcount table, without a refcount block, beyond every cluster
 * in use, with a refcount other than 1, or holding metadata) must not be written through: found by
 * {@link Qcow2FuzzTest} (seed 17526858004629, case 734), where a COPIED entry pointing at 1 TiB made a guest write
 * grow the file sparsely to 1 TiB. Each such write is refused before anything is written, with a
 * {@link CorruptImageException} naming the guest offset, the entry and the reason, and the image is marked corrupt
 * (header bit set, later writes refused, reads still served). Writes the refcounts do back still go in place.
 */
class Qcow2CopiedEntryTest {
    private static final long TIB = 1L << 40;
    /** The guest cluster the tests damage; clusters 0..7 hold data. */
    private static final long DAMAGED = 3;
    /** A guest cluster without data, in the same L2 table. */
    private static final long UNALLOCATED = 12;

    @TempDir
    Path dir;

    private final ImageFormat qcow2 = ImageFormats.defaults().get("qcow2");

    Qcow2CopiedEntryTest() throws Exception {
    }

    /**
     * The case the fuzz test found, on a default (64 KiB clusters) image: the write is refused, the file does not
     * grow, the corrupt bit is set (qemu-img agrees it is corrupt), later writes are refused, reads and the other
     * clusters' data survive.
     */
    @Test
    void copiedEntryAtOneTebibyteIsRefusedNotWrittenThere() throws Exception {
        int cs = 65536;
        Path img = image("tib.qcow2", cs);
        long entryAt = l2EntryPosition(img, DAMAGED);
        putLong(img, entryAt, L2Entry.COPIED | TIB);
        long length = Files.size(img);
        try (Image image = qcow2.open(img, OpenOptions.defaults())) {
            CorruptImageException e = assertThrows(CorruptImageException.class,
                    () -> image.write(DAMAGED * cs + 100, ByteBuffer.allocate(4096)));
            String m = e.getMessage();
            assertTrue(m.contains("guestOffset=" + DAMAGED * cs), m);
            assertTrue(m.contains("entry=0x" + Long.toHexString(L2Entry.COPIED | TIB)), m);
            assertTrue(m.contains("hostOffset=" + TIB), m);
            assertTrue(m.contains("no refcount block"), m);
            assertEquals(length, Files.size(img), "the file must not grow");
            CorruptImageException later = assertThrows(CorruptImageException.class,
                    () -> image.write(0, ByteBuffer.allocate(512)));
            assertTrue(later.getMessage().contains("marked corrupt"), later.getMessage());
            assertData(image, 0, cs);
        }
        assertEquals(length, Files.size(img), "the file must not grow");
        assertTrue((getLong(img, Qcow2Header.OFFSET_INCOMPATIBLE) & Qcow2Header.INCOMPAT_CORRUPT) != 0,
                "corrupt bit set");
        IOException reopen = assertThrows(IOException.class, () -> qcow2.open(img, OpenOptions.defaults()));
        assertTrue(reopen.getMessage().contains("marked corrupt"), reopen.getMessage());
        QemuTools.require("qemu-img");
        assertTrue(run("qemu-img", "info", img.toString()).contains("corrupt: true"));
        assertEquals(2, runAllowingFailure("qemu-img", "check", img.toString()).exit(), "qemu-img: corruptions");
    }

    /**
     * Every way the refcounts can contradict an entry that a write, discard or zero write would trust. {@code mutation}
     * damages guest cluster {@link #DAMAGED} (or, for {@code l2-refcount-0}, its L2 table), {@code step} is what is
     * then asked, {@code reason} what the error must say.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        "4k-copied-1tib-beyond-refcount-table | 4096  | copied-1tib    | write   | beyond the refcount table",
        "64k-copied-1tib-no-refcount-block   | 65536 | copied-1tib    | write   | no refcount block",
        "4k-zero-copied-1tib-reused          | 4096  | zero-copied-1tib | write | beyond the refcount table",
        "4k-copied-refcount-0                | 4096  | refcount-0     | write   | refcount=0",
        "4k-copied-refcount-2                | 4096  | refcount-2     | write   | refcount=2",
        "4k-copied-beyond-used-clusters      | 4096  | copied-past-end | write  | refcount=0",
        "4k-copied-unaligned                 | 4096  | unaligned      | write   | not cluster-aligned",
        "4k-copied-onto-l1-table             | 4096  | onto-l1        | write   | metadata",
        "4k-copied-onto-refcount-table       | 4096  | onto-reftable  | write   | metadata",
        "4k-l1-copied-l2-refcount-0          | 4096  | l2-refcount-0  | alloc   | refcount=0",
        "4k-copied-1tib-zero-write-partial   | 4096  | copied-1tib    | zeroes-part | beyond the refcount table",
        "4k-copied-1tib-zero-write-whole     | 4096  | copied-1tib    | zeroes  | beyond the refcount table",
        "4k-shared-1tib-discard              | 4096  | shared-1tib    | discard | beyond the refcount table",
        "4k-shared-1tib-copy-on-write        | 4096  | shared-1tib    | write   | beyond the refcount table",
        "64k-shared-1tib-discard             | 65536 | shared-1tib    | discard | no refcount block",
        "4k-copied-unaligned-discard         | 4096  | unaligned      | discard | not cluster-aligned",
    })
    void entryTheRefcountsContradictIsRefused(String name, int cs, String mutation, String step, String reason)
            throws Exception {
        Path img = image(name + ".qcow2", cs);
        damage(img, cs, mutation);
        long length = Files.size(img);
        try (Image image = qcow2.open(img, OpenOptions.defaults())) {
            CorruptImageException e = assertThrows(CorruptImageException.class, () -> {
                switch (step) {
                    case "write" -> image.write(DAMAGED * cs + 100, ByteBuffer.allocate(200));
                    case "alloc" -> image.write(UNALLOCATED * cs, ByteBuffer.allocate(200));
                    case "zeroes-part" -> image.writeZeroes(DAMAGED * cs + 100, 200);
                    case "zeroes" -> image.writeZeroes(DAMAGED * cs, cs);
                    case "discard" -> image.discard(DAMAGED * cs, cs);
                    default -> throw new AssertionError(step);
                }
                image.flush();
            });
            String m = e.getMessage();
            long g = step.equals("alloc") ? UNALLOCATED : DAMAGED;
            assertTrue(m.contains("guestOffset=" + g * cs), m);
            assertTrue(m.contains(reason), m);
            assertTrue(assertThrows(CorruptImageException.class, () -> image.write(0, ByteBuffer.allocate(512)))
                    .getMessage().contains("marked corrupt"));
            assertData(image, 0, cs);
        }
        assertEquals(length, Files.size(img), "the file must not grow");
        assertTrue((getLong(img, Qcow2Header.OFFSET_INCOMPATIBLE) & Qcow2Header.INCOMPAT_CORRUPT) != 0,
                "corrupt bit set");
        try (Image image = qcow2.open(img, OpenOptions.defaults().withReadOnly(true))) {
            ImageCheck check = ((Checkable) image).check(false, false);
            assertTrue(check.corruptions() > 0, "jtap's check finds the damage too: " + check);
            assertData(image, 0, cs);
        }
    }

    /**
     * The hot path reads no refcount block: with the block that covers the damaged cluster evicted from a small
     * cache (discards elsewhere loaded four others), a COPIED entry past every cluster in use is still refused, from
     * what the refcount table keeps in memory.
     */
    @Test
    void copiedEntryPastEveryClusterInUseIsRefusedWithItsRefcountBlockUncached() throws Exception {
        int cs = 512;
        Path img = dir.resolve("uncached.qcow2");
        qcow2.create(img, CreateOptions.ofSize(4 << 20).with("cluster_size", String.valueOf(cs)));
        try (Image image = qcow2.open(img, OpenOptions.defaults())) {
            image.write(0, SelfDescribingData.buffer(0, 4 << 20, 1));
        }
        long damaged = (3 << 20) / cs;
        long length = Files.size(img);
        long perBlock = cs / 2;
        long past = (length + cs - 1) / cs;
        assertTrue(past % perBlock != perBlock - 1, "the next cluster is in the last block");
        putLong(img, l2EntryPosition(img, damaged), L2Entry.COPIED | (past + 1) * cs);
        try (Image image = qcow2.open(img, OpenOptions.defaults().withCacheBytes(1))) {
            for (long g = 0; g < 6; g++) {
                image.discard(g * perBlock * cs, cs);
            }
            image.flush();
            CorruptImageException e = assertThrows(CorruptImageException.class,
                    () -> image.write(damaged * cs, ByteBuffer.allocate(cs)));
            assertTrue(e.getMessage().contains("guestOffset=" + damaged * cs), e.getMessage());
            assertTrue(e.getMessage().contains("beyond every cluster in use"), e.getMessage());
        }
        assertEquals(length, Files.size(img), "the file must not grow");
    }

    /**
     * A release the in-memory check cannot refute (refcount block not cached) still fails when applied: a refcount
     * underflow at flush, which marks the image corrupt. The releases queued with it are not applied twice by the
     * next flush: a data cluster a snapshot still uses keeps its reference and its data (it used to be freed).
     */
    @Test
    void refcountUnderflowAtFlushNeverFreesAClusterTwice() throws Exception {
        int cs = 512;
        Path img = dir.resolve("underflow.qcow2");
        qcow2.create(img, CreateOptions.ofSize(4 << 20).with("cluster_size", String.valueOf(cs)));
        try (Qcow2Image image = (Qcow2Image) qcow2.open(img, OpenOptions.defaults())) {
            image.write(0, SelfDescribingData.buffer(0, 4 << 20, 1));
            image.createSnapshot("s");
        }
        long shared = L2Entry.hostOffset(getLong(img, l2EntryPosition(img, 0)));
        assertEquals(2, getShort(img, refcountPosition(img, shared)), "shared with the snapshot");
        long damaged = (2 << 20) / cs;
        putShort(img, refcountPosition(img, L2Entry.hostOffset(getLong(img, l2EntryPosition(img, damaged)))), 0);
        try (Image image = qcow2.open(img, OpenOptions.defaults().withCacheBytes(1))) {
            image.discard(0, cs);
            image.discard(damaged * cs, cs);
            CorruptImageException e = assertThrows(CorruptImageException.class, image::flush);
            assertTrue(e.getMessage().contains("refcount underflow"), e.getMessage());
            image.flush();
        }
        assertEquals(1, getShort(img, refcountPosition(img, shared)), "decremented once");
        try (Image snapshot = qcow2.open(img, OpenOptions.defaults().withReadOnly(true).withSnapshot("s"))) {
            assertData(snapshot, 0, cs);
        }
        assertTrue((getLong(img, Qcow2Header.OFFSET_INCOMPATIBLE) & Qcow2Header.INCOMPAT_CORRUPT) != 0,
                "corrupt bit set");
    }

    /**
     * Clusters the refcounts back are written in place as before: clusters jtap allocated this session ahead of the
     * file's end (allocation ahead, syncs deferred, as convert runs), before and after the flush.
     */
    @Test
    void clustersAllocatedAheadOfTheEndAreWrittenInPlace() throws Exception {
        int cs = 4096;
        Path img = dir.resolve("ahead.qcow2");
        qcow2.create(img, CreateOptions.ofSize(8 << 20).with("cluster_size", String.valueOf(cs)));
        try (Qcow2Image image = (Qcow2Image) qcow2.open(img, OpenOptions.defaults())) {
            image.deferSyncsUntilFlush();
            image.allocateBeforeWrites();
            for (long off = 0; off < 4 << 20; off += 65536) {
                image.write(off, SelfDescribingData.buffer(off, 65536, 1));
            }
            for (long off = 100; off < 4 << 20; off += 3 * cs) {
                image.write(off, SelfDescribingData.buffer(off, 1000, 1));
            }
            image.flush();
            long length = Files.size(img);
            for (long off = 0; off < 4 << 20; off += 65536) {
                image.write(off, SelfDescribingData.buffer(off, 65536, 2));
            }
            assertEquals(length, Files.size(img), "rewrites go in place");
            assertData(image, 0, 4 << 20, 2);
        }
        QemuTools.require("qemu-img");
        run("qemu-img", "check", img.toString());
    }

    /**
     * Images made by qemu, every data cluster rewritten in place (a partial write into each, so a cluster not written
     * in place would grow the file): a lazy-refcounts image qemu left clean, one preallocated with
     * {@code preallocation=metadata} (COPIED entries over a file that is all hole), one with preallocated zero clusters
     * ({@code write -z}: ZERO and COPIED, host cluster kept, reused), and one whose internal snapshot jtap deleted
     * (the clusters it shared become COPIED again). qemu-img check stays clean.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource({
        "lazy-refcounts,       lazy_refcounts=on",
        "preallocated,         preallocation=metadata",
        "zero-preallocated,    lazy_refcounts=off",
        "snapshot-deleted,     lazy_refcounts=off",
    })
    void qemuImagesAreWrittenInPlace(String name, String options) throws Exception {
        QemuTools.require("qemu-img");
        QemuTools.require("qemu-io");
        Path img = dir.resolve(name + ".qcow2");
        run("qemu-img", "create", "-f", "qcow2", "-o", options + ",cluster_size=4096", img.toString(), "4M");
        if (!name.equals("preallocated")) {
            run("qemu-io", "-f", "qcow2", "-c", "write -P 0x61 0 2M", img.toString());
        }
        if (name.equals("zero-preallocated")) {
            run("qemu-io", "-f", "qcow2", "-c", "write -z 0 2M", img.toString());
        }
        if (name.equals("snapshot-deleted")) {
            run("qemu-img", "snapshot", "-c", "one", img.toString());
            try (Qcow2Image image = (Qcow2Image) qcow2.open(img, OpenOptions.defaults())) {
                image.deleteSnapshot(image.snapshots().get(0).id());
            }
        }
        long length = Files.size(img);
        try (Image image = qcow2.open(img, OpenOptions.defaults())) {
            for (long off = 0; off < 2 << 20; off += 4096) {
                image.write(off + 8, SelfDescribingData.buffer(off + 8, 4000, 3));
            }
            image.flush();
            assertEquals(length, Files.size(img), "rewrites go in place");
            for (long off = 0; off < 2 << 20; off += 4096) {
                assertData(image, off + 8, 4000, 3);
            }
        }
        run("qemu-img", "check", img.toString());
    }

    // ---------------------------------------------------------------- the crafted images

    /** A jtap image of 1 MiB with {@code cs}-byte clusters, 16-bit refcounts, guest clusters 0..7 written. */
    private Path image(String name, int cs) throws IOException {
        Path img = dir.resolve(name);
        qcow2.create(img, CreateOptions.ofSize(1 << 20).with("cluster_size", String.valueOf(cs)));
        try (Image image = qcow2.open(img, OpenOptions.defaults())) {
            image.write(0, SelfDescribingData.buffer(0, 8 * cs, 1));
        }
        return img;
    }

    private void damage(Path img, int cs, String mutation) throws IOException {
        Qcow2Header h = header(img);
        long entryAt = l2EntryPosition(img, DAMAGED);
        long host = L2Entry.hostOffset(getLong(img, entryAt));
        switch (mutation) {
            case "copied-1tib" -> putLong(img, entryAt, L2Entry.COPIED | TIB);
            case "zero-copied-1tib" -> putLong(img, entryAt, L2Entry.COPIED | TIB | L2Entry.ZERO);
            case "shared-1tib" -> putLong(img, entryAt, TIB);
            case "refcount-0" -> putShort(img, refcountPosition(img, host), 0);
            case "refcount-2" -> putShort(img, refcountPosition(img, host), 2);
            case "copied-past-end" -> putLong(img, entryAt, L2Entry.COPIED | (Files.size(img) + 64L * cs));
            case "unaligned" -> putLong(img, entryAt, L2Entry.COPIED | (host + 512));
            case "onto-l1" -> putLong(img, entryAt, L2Entry.COPIED | h.l1TableOffset / cs * cs);
            case "onto-reftable" -> putLong(img, entryAt, L2Entry.COPIED | h.refcountTableOffset);
            case "l2-refcount-0" -> putShort(img, refcountPosition(img, entryAt / cs * cs), 0);
            default -> throw new AssertionError(mutation);
        }
    }

    private static Qcow2Header header(Path img) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(4096);
        try (FileChannel ch = FileChannel.open(img)) {
            ch.read(b, 0);
        }
        return Qcow2Header.parse(b.clear());
    }

    /** File position of the L2 entry of guest cluster {@code g}. */
    private static long l2EntryPosition(Path img, long g) throws IOException {
        Qcow2Header h = header(img);
        long perL2 = Qcow2Header.l2Entries(h.clusterBits, false);
        long l2 = getLong(img, h.l1TableOffset + g / perL2 * 8) & ClusterMap.L1_OFFSET_MASK;
        assertTrue(l2 != 0, "guest cluster " + g + " has an L2 table");
        return l2 + g % perL2 * 8;
    }

    /** File position of the (16-bit) refcount of the host cluster at {@code hostOffset}. */
    private static long refcountPosition(Path img, long hostOffset) throws IOException {
        Qcow2Header h = header(img);
        assertEquals(16, h.refcountBits());
        long perBlock = h.clusterSize() / 2;
        long cluster = hostOffset >> h.clusterBits;
        long block = getLong(img, h.refcountTableOffset + cluster / perBlock * 8);
        assertTrue(block != 0, "host offset " + hostOffset + " has a refcount block");
        return block + cluster % perBlock * 2;
    }

    private static long getLong(Path img, long at) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(8);
        try (FileChannel ch = FileChannel.open(img)) {
            ch.read(b, at);
        }
        return b.getLong(0);
    }

    private static void putLong(Path img, long at, long value) throws IOException {
        try (FileChannel ch = FileChannel.open(img, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.allocate(8).putLong(0, value), at);
        }
    }

    private static int getShort(Path img, long at) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(2);
        try (FileChannel ch = FileChannel.open(img)) {
            ch.read(b, at);
        }
        return b.getShort(0) & 0xffff;
    }

    private static void putShort(Path img, long at, int value) throws IOException {
        try (FileChannel ch = FileChannel.open(img, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.allocate(2).putShort(0, (short) value), at);
        }
    }

    /** Guest range {@code [offset, offset+length)} holds the data {@link #image} wrote (tag 1). */
    private static void assertData(Image image, long offset, int length) throws IOException {
        assertData(image, offset, length, 1);
    }

    private static void assertData(Image image, long offset, int length, int tag) throws IOException {
        ByteBuffer got = ByteBuffer.allocate(length);
        image.read(offset, got);
        assertArrayEquals(SelfDescribingData.buffer(offset, length, tag).array(), got.array(),
                () -> SelfDescribingData.firstDifference(SelfDescribingData.buffer(offset, length, tag).array(),
                        got.array(), offset));
    }
}
