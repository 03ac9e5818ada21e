package io.jtap.formats.qcow2;

import static io.jtap.formats.QemuTools.runAllowingFailure;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.jtap.formats.Checkable;
import io.jtap.formats.CompressedWrites;
import io.jtap.formats.CreateOptions;
import io.jtap.formats.HostFile;
import io.jtap.formats.Image;
import io.jtap.formats.ImageCheck;
import io.jtap.formats.ImageFormat;
import io.jtap.formats.ImageFormats;
import io.jtap.formats.OpenOptions;
import io.jtap.formats.QemuTools;
import io.jtap.formats.SelfDescribingData;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Crash consistency, proven by enumeration: a seeded workload (allocating and partial-cluster writes over a backing
 * file, discards, zero writes, compressed clusters packed into shared host clusters and overwritten, a resize that
 * moves the L1 table, refcount table growth, flushes) runs against a
 * qcow2 image while a {@link HostFile.WriteObserver} records every write, zeroing and sync the qcow2 layer issues.
 * Then, for every prefix of that stream (a crash at that point), and again for every prefix with the writes issued
 * since the last sync reduced to a random subset of their sectors in random order (what a disk may have kept, torn
 * writes included), the test builds the
 * file as it would be on disk and asserts: jtap's check finds no corruption (leaks are allowed), and every guest
 * byte written before the last flush that completed within the prefix, and not touched since, reads back exactly.
 * {@code qemu-img check} judges a sample of the same images.
 *
 * <p>The image is shaped so that metadata churns: 512-byte clusters (an L2 table per 32 KiB of disk), 64-bit
 * refcounts (a refcount block per 32 KiB of file, a one-cluster refcount table covering only 2 MiB of file, so it
 * must grow), and a metadata cache of a few tables (constant evictions).
 */
class Qcow2CrashTest {
    private static final long SEED = Long.getLong("jtap.seed", System.nanoTime());
    private static final int SIZE = 2 << 20;
    private static final int GROWN_SIZE = 3 << 20;
    private static final int QEMU_SAMPLES = 60;
    private static final int SECTOR = 512;

    @TempDir
    Path dir;

    /** One recorded event: a write (data), a zeroing (length, keepSize), a sync, or a test marker. */
    record Event(Kind kind, long position, long length, byte[] data, boolean keepSize, int marker) {
        enum Kind { WRITE, ZERO, SYNC, OP_BEGIN, FLUSHED }
    }

    /** The recording observer; markers are added by the test between operations (single-threaded). */
    static final class Recorder implements HostFile.WriteObserver {
        final List<Event> events = new ArrayList<>();

        @Override
        public void written(long position, ByteBuffer data) {
            byte[] copy = new byte[data.remaining()];
            data.duplicate().get(copy);
            events.add(new Event(Event.Kind.WRITE, position, copy.length, copy, false, -1));
        }

        @Override
        public void zeroed(long position, long length, boolean keepSize) {
            events.add(new Event(Event.Kind.ZERO, position, length, null, keepSize, -1));
        }

        @Override
        public void synced() {
            events.add(new Event(Event.Kind.SYNC, 0, 0, null, false, -1));
        }
    }

    /** The file's bytes as a crash would leave them. */
    static final class Disk {
        byte[] bytes;
        int length;

        Disk(byte[] initial) {
            bytes = initial.clone();
            length = initial.length;
        }

        Disk(Disk other) {
            bytes = Arrays.copyOf(other.bytes, other.length);
            length = other.length;
        }

        void apply(Event e) {
            switch (e.kind()) {
                case WRITE -> {
                    grow((int) (e.position() + e.length()));
                    System.arraycopy(e.data(), 0, bytes, (int) e.position(), e.data().length);
                }
                case ZERO -> {
                    int end = (int) (e.position() + e.length());
                    if (!e.keepSize()) {
                        grow(end);
                    }
                    if (e.position() < length) {
                        Arrays.fill(bytes, (int) e.position(), Math.min(end, length), (byte) 0);
                    }
                }
                default -> {
                }
            }
        }

        private void grow(int end) {
            if (end > bytes.length) {
                bytes = Arrays.copyOf(bytes, Math.max(end, bytes.length * 2));
            }
            length = Math.max(length, end);
        }

        void writeTo(Path p) throws IOException {
            Files.write(p, Arrays.copyOf(bytes, length));
        }

        /**
         * Applies what a disk may have kept of the unsynced writes and zeroings {@code events[from..to]} at a crash:
         * a random subset, in random order; with {@code tearWrites}, each sector of a multi-sector write lands or
         * not on its own.
         *
         * @return how many writes (sector pieces, when torn) and zeroings were applied
         */
        int applySomeOf(List<Event> events, int from, int to, boolean tearWrites, Random rnd) {
            List<Event> tail = new ArrayList<>();
            for (int i = from; i <= to; i++) {
                Event t = events.get(i);
                if (tearWrites && t.kind() == Event.Kind.WRITE && t.length() > SECTOR) {
                    for (int at = 0; at < t.length(); at += SECTOR) {
                        if (rnd.nextBoolean()) {
                            byte[] piece = Arrays.copyOfRange(t.data(), at, (int) Math.min(t.length(), at + SECTOR));
                            tail.add(new Event(Event.Kind.WRITE, t.position() + at, piece.length, piece, false, -1));
                        }
                    }
                } else if ((t.kind() == Event.Kind.WRITE || t.kind() == Event.Kind.ZERO) && rnd.nextBoolean()) {
                    tail.add(t);
                }
            }
            Collections.shuffle(tail, rnd);
            tail.forEach(this::apply);
            return tail.size();
        }
    }

    @Test
    void everyCutPointIsConsistentAndKeepsFlushedWrites() throws Exception {
        String context = "seed=" + SEED + " (rerun with -Djtap.seed=" + SEED + ")";
        System.out.println("Qcow2CrashTest " + context);
        Random rnd = new Random(SEED);
        ImageFormat qcow2 = ImageFormats.defaults().get("qcow2");
        Path base = dir.resolve("base.raw");
        Qcow2ReadInteropTest.writeSource(base, SIZE, rnd);
        Path img = dir.resolve("work.qcow2");
        qcow2.create(img, CreateOptions.ofSize(SIZE).withBacking("base.raw", "raw").with("cluster_size", "512")
                .with("refcount_bits", "64"));
        byte[] initial = Files.readAllBytes(img);

        // The workload, with the guest model at every completed flush.
        byte[] model = Arrays.copyOf(Files.readAllBytes(base), GROWN_SIZE);
        int modelSize = SIZE;
        List<byte[]> flushedModels = new ArrayList<>();
        List<long[]> opRanges = new ArrayList<>();
        Recorder rec = new Recorder();
        try (Image image = qcow2.open(img, OpenOptions.defaults().withCacheBytes(2048))) {
            ((Qcow2Image) image).hostFile().observe(rec);
            for (int op = 0; op < 170; op++) {
                int kind = rnd.nextInt(100);
                if (op == 90) {
                    begin(rec, opRanges, SIZE, GROWN_SIZE - SIZE);
                    image.resize(GROWN_SIZE);
                    modelSize = GROWN_SIZE;
                    continue;
                }
                long off = rnd.nextInt(3) == 0 ? rnd.nextInt(modelSize / 512) * 512L : rnd.nextInt(modelSize);
                int len = (int) Math.min(modelSize - off, 1 + rnd.nextInt(rnd.nextInt(3) == 0 ? 120_000 : 3000));
                if (op < 30) {
                    // a sequential fill first, unaligned to clusters, so that the file outgrows the refcount table
                    off = op * 65536L + 100;
                    len = 65536;
                    kind = 0;
                }
                if (kind < 70) {
                    begin(rec, opRanges, off, len);
                    image.write(off, SelfDescribingData.buffer(off, len, op + 2));
                    SelfDescribingData.fill(model, (int) off, len, off, op + 2);
                } else if (kind < 76) {
                    begin(rec, opRanges, off, len);
                    image.writeZeroes(off, len);
                    Arrays.fill(model, (int) off, (int) off + len, (byte) 0);
                } else if (kind < 84) {
                    begin(rec, opRanges, off, len);
                    image.discard(off, len);
                    image.read(off, ByteBuffer.wrap(model, (int) off, len));
                } else if (kind < 90) {
                    // compressed clusters, packed several to a host cluster; later writes copy-on-write from them
                    long at = off / 512 * 512;
                    int n = (int) Math.min(8, (modelSize - at) / 512);
                    begin(rec, opRanges, at, n * 512L);
                    for (int i = 0; i < n; i++) {
                        byte[] cluster = new byte[512];
                        SelfDescribingData.fill(cluster, 0, 512, at + i * 512L, op + 2);
                        ((CompressedWrites) image).writeCompressed(at + i * 512L, ByteBuffer.wrap(cluster));
                        System.arraycopy(cluster, 0, model, (int) at + i * 512, 512);
                    }
                } else {
                    image.flush();
                    rec.events.add(new Event(Event.Kind.FLUSHED, 0, modelSize, null, false, flushedModels.size()));
                    flushedModels.add(Arrays.copyOf(model, modelSize));
                }
            }
            image.flush();
            rec.events.add(new Event(Event.Kind.FLUSHED, 0, modelSize, null, false, flushedModels.size()));
            flushedModels.add(Arrays.copyOf(model, modelSize));
            ((Qcow2Image) image).hostFile().observe(null);
        }
        System.out.println("Qcow2CrashTest: final file length " + Files.size(img) + ", events " + rec.events.size());
        long growths = rec.events.stream().filter(e -> e.kind() == Event.Kind.WRITE
                && e.position() == Qcow2Header.OFFSET_REFCOUNT_TABLE).count();
        assertTrue(growths > 0, context + ": the workload should grow the refcount table");

        // Every cut point, twice: as issued, and with the unsynced tail reduced and shuffled.
        long started = System.nanoTime();
        Disk issued = new Disk(initial);
        Disk lastSynced = new Disk(initial);
        int lastSyncIndex = -1;
        int cuts = 0;
        int qemuChecked = 0;
        int every = Math.max(1, rec.events.size() / QEMU_SAMPLES);
        Path cut = dir.resolve("cut.qcow2");
        for (int k = 0; k < rec.events.size(); k++) {
            Event e = rec.events.get(k);
            issued.apply(e);
            if (e.kind() == Event.Kind.SYNC) {
                lastSynced = new Disk(issued);
                lastSyncIndex = k;
            }
            if (e.kind() != Event.Kind.WRITE && e.kind() != Event.Kind.ZERO && e.kind() != Event.Kind.SYNC) {
                continue;
            }
            String where = context + ", cut after event " + k + " of " + rec.events.size();
            issued.writeTo(cut);
            verify(cut, rec, k, flushedModels, opRanges, where + " (as issued)");
            if (k % every == 0 && QemuTools.require("qemu-img") != null) {
                assertQemuFindsNoCorruption(cut, where + " (as issued)");
                qemuChecked++;
            }
            Disk reordered = new Disk(lastSynced);
            int landed = reordered.applySomeOf(rec.events, lastSyncIndex + 1, k, true, rnd);
            reordered.writeTo(cut);
            verify(cut, rec, k, flushedModels, opRanges, where + " (unsynced tail reduced to " + landed
                    + " sector writes, shuffled)");
            cuts += 2;
        }
        System.out.printf("Qcow2CrashTest: %d events, %d cut points checked by jtap, %d by qemu-img, %.1f s%n",
                rec.events.size(), cuts, qemuChecked, (System.nanoTime() - started) / 1e9);
    }

    /** Sets a 16-bit refcount of a 512-byte-cluster image (256 entries per refcount block). */
    private static void setRefcount16(java.io.RandomAccessFile f, Qcow2Header h, long cluster, int value)
            throws IOException {
        f.seek(h.refcountTableOffset + cluster / 256 * 8);
        long block = f.readLong();
        f.seek(block + cluster % 256 * 2);
        f.writeShort(value);
    }

    private static void begin(Recorder rec, List<long[]> opRanges, long off, long len) {
        rec.events.add(new Event(Event.Kind.OP_BEGIN, off, len, null, false, opRanges.size()));
        opRanges.add(new long[] {off, off + len});
    }

    /** jtap's check finds no corruption; bytes flushed and not touched since read back. */
    private static void verify(Path cut, Recorder rec, int k, List<byte[]> flushedModels, List<long[]> opRanges,
                               String where) throws IOException {
        int flushed = -1;
        List<long[]> touched = new ArrayList<>();
        for (int i = k; i >= 0; i--) {
            Event e = rec.events.get(i);
            if (e.kind() == Event.Kind.FLUSHED) {
                flushed = e.marker();
                break;
            }
            if (e.kind() == Event.Kind.OP_BEGIN) {
                touched.add(opRanges.get(e.marker()));
            }
        }
        ImageFormat qcow2 = ImageFormats.defaults().get("qcow2");
        try (Image image = qcow2.open(cut, OpenOptions.defaults().withReadOnly(true).withCheck(true))) {
            ImageCheck c = ((Checkable) image).check(false, false);
            if (c.corruptions() != 0 || c.checkErrors() != 0) {
                fail(where + ": jtap check: " + c);
            }
            if (flushed < 0) {
                return;
            }
            byte[] expected = flushedModels.get(flushed);
            int n = (int) Math.min(expected.length, image.size());
            byte[] actual = new byte[n];
            image.read(0, ByteBuffer.wrap(actual));
            for (long[] r : touched) {
                for (int i = (int) r[0]; i < Math.min(n, r[1]); i++) {
                    actual[i] = expected[i];
                }
            }
            String diff = SelfDescribingData.firstDifference(Arrays.copyOf(expected, n), actual, 0);
            if (diff != null) {
                fail(where + ": flushed data lost (flush #" + flushed + "): " + diff);
            }
            assertTrue(image.size() >= expected.length, where + ": size shrank below the flushed size");
        }
    }

    private static void assertQemuFindsNoCorruption(Path cut, String where) throws Exception {
        QemuTools.Result r = runAllowingFailure("qemu-img", "check", "-f", "qcow2", cut.toString());
        // 0 = clean, 3 = leaks only
        if (r.exit() != 0 && r.exit() != 3) {
            fail(where + ": qemu-img check exit=" + r.exit() + ": " + r.output());
        }
        assertEquals(false, r.output().contains("ERROR"), where + ": " + r.output());
    }

    /**
     * The repair is crash-safe too: a damaged image (a data cluster with refcount 0, which needs a rebuild of the
     * refcount structure, and a leak) is repaired with {@code -r all} while the write stream is recorded; at every
     * cut point, as issued and with the unsynced tail reduced and shuffled, the image reads exactly as before and
     * jtap's check finds no more corruption than before the repair (the old structure stays in force until the
     * header switches to the new one).
     */
    @Test
    void everyCutPointOfARebuildKeepsTheData() throws Exception {
        String context = "seed=" + SEED + " (rerun with -Djtap.seed=" + SEED + ")";
        Random rnd = new Random(SEED);
        ImageFormat qcow2 = ImageFormats.defaults().get("qcow2");
        Path img = dir.resolve("damaged.qcow2");
        qcow2.create(img, CreateOptions.ofSize(SIZE).with("cluster_size", "512"));
        try (Image image = qcow2.open(img, OpenOptions.defaults())) {
            for (int i = 0; i < 40; i++) {
                long off = rnd.nextInt(SIZE);
                int len = (int) Math.min(SIZE - off, 1 + rnd.nextInt(20000));
                image.write(off, SelfDescribingData.buffer(off, len, i + 2));
            }
        }
        byte[] expected;
        try (Image image = qcow2.open(img, OpenOptions.defaults().withReadOnly(true))) {
            expected = new byte[SIZE];
            image.read(0, ByteBuffer.wrap(expected));
        }
        // damage: zero the refcount of the last cluster in use (needs a rebuild), and raise the one before (a leak)
        Qcow2Header h = Qcow2Header.parse(ByteBuffer.wrap(Files.readAllBytes(img), 0, 512));
        try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(img.toFile(), "rw")) {
            long clusters = f.length() / 512;
            setRefcount16(f, h, clusters - 1, 0);
            setRefcount16(f, h, clusters - 2, 2);
        }
        ImageCheck damaged;
        try (Image image = qcow2.open(img, OpenOptions.defaults().withReadOnly(true).withCheck(true))) {
            damaged = ((Checkable) image).check(false, false);
        }
        assertTrue(damaged.corruptions() > 0, context + ": " + damaged);
        byte[] initial = Files.readAllBytes(img);
        Recorder rec = new Recorder();
        try (Image image = qcow2.open(img, OpenOptions.defaults().withCheck(true))) {
            ((Qcow2Image) image).hostFile().observe(rec);
            ImageCheck repaired = ((Checkable) image).check(true, true);
            assertTrue(repaired.isClean(), context + ": " + repaired);
            ((Qcow2Image) image).hostFile().observe(null);
        }
        Disk issued = new Disk(initial);
        Disk lastSynced = new Disk(initial);
        int lastSyncIndex = -1;
        Path cut = dir.resolve("cut.qcow2");
        int cuts = 0;
        for (int k = 0; k < rec.events.size(); k++) {
            Event e = rec.events.get(k);
            issued.apply(e);
            if (e.kind() == Event.Kind.SYNC) {
                lastSynced = new Disk(issued);
                lastSyncIndex = k;
            }
            Disk reordered = new Disk(lastSynced);
            reordered.applySomeOf(rec.events, lastSyncIndex + 1, k, false, rnd);
            for (Disk d : List.of(issued, reordered)) {
                d.writeTo(cut);
                String where = context + ", rebuild cut after event " + k + " of " + rec.events.size()
                        + (d == issued ? " (as issued)" : " (tail reduced, shuffled)");
                try (Image image = qcow2.open(cut, OpenOptions.defaults().withReadOnly(true).withCheck(true))) {
                    ImageCheck c = ((Checkable) image).check(false, false);
                    assertTrue(c.checkErrors() == 0 && c.corruptions() <= damaged.corruptions(), where + ": " + c);
                    byte[] actual = new byte[SIZE];
                    image.read(0, ByteBuffer.wrap(actual));
                    assertNull(SelfDescribingData.firstDifference(expected, actual, 0), where);
                }
                cuts++;
            }
        }
        System.out.printf("Qcow2CrashTest: rebuild wrote %d events, %d cut points checked%n", rec.events.size(),
                cuts);
    }
}
