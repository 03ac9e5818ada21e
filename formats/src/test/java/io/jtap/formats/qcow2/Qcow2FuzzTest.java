package io.jtap.formats.qcow2;

import static io.jtap.formats.QemuTools.run;
import static org.junit.jupiter.api.Assertions.fail;

import io.jtap.formats.BlockStatus;
import io.jtap.formats.Checkable;
import io.jtap.formats.CreateOptions;
import io.jtap.formats.Image;
import io.jtap.formats.ImageFormat;
import io.jtap.formats.ImageFormats;
import io.jtap.formats.OpenOptions;
import io.jtap.formats.SelfDescribingData;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bad input never crashes, hangs or exhausts memory: seeded mutations (bit flips, field-targeted values in the
 * header, L1, L2 and refcount tables, truncations) of valid images made by qemu-img and by jtap are opened, read,
 * mapped, checked, repaired and written, and have snapshots created, deleted and applied. Every operation must
 * succeed or throw an {@link IOException} (such as {@link io.jtap.formats.CorruptImageException}); anything else, a
 * case running longer than {@link #CASE_TIMEOUT_SECONDS}, or one growing the file by more than {@link #MAX_GROWTH}
 * fails the test and leaves the mutated image in {@code target/fuzz-failures}. Bugs it found are pinned by the
 * fixtures {@link Qcow2GoldenFixturesTest} replays.
 */
class Qcow2FuzzTest {
    private static final long SEED = Long.getLong("jtap.seed", System.nanoTime());
    private static final int CASES = Integer.getInteger("jtap.fuzz.cases", 1000);
    /**
     * What counts as a hang. Most cases take milliseconds; the slowest seen took 8.6 s on the loaded 2-core machine
     * (seed 9424154090284, case 574: a mutation whose check and repair walk a large table), so the limit leaves room
     * for a slow CI machine while still catching a loop that never ends.
     */
    static final long CASE_TIMEOUT_SECONDS = 60;
    /**
     * How much a case may grow the file: the writes add a few MiB at most, a snapshot copies an L1 table (at most
     * 32 MiB) and the refcount table may grow; a damaged entry that makes jtap write far beyond (a COPIED entry at
     * 1 TiB, seed 17526858004629, case 734) grows it by orders of magnitude more.
     */
    private static final long MAX_GROWTH = 256L << 20;

    @TempDir
    Path dir;

    /** Where a seed image's metadata lives, for targeted mutations: 8-byte entry positions by table. */
    private record Layout(List<Long> l1, List<Long> l2, List<Long> reftable, List<Long> refblocks, int clusterSize,
                          int headerLength) {
        static Layout of(byte[] image) throws IOException {
            Qcow2Header h = Qcow2Header.parse(ByteBuffer.wrap(image, 0, Math.min(image.length, 1 << 21)).slice());
            ByteBuffer b = ByteBuffer.wrap(image);
            List<Long> l1 = new ArrayList<>();
            List<Long> l2 = new ArrayList<>();
            for (int i = 0; i < h.l1Size; i++) {
                long at = h.l1TableOffset + i * 8L;
                l1.add(at);
                long t = b.getLong((int) at) & ClusterMap.L1_OFFSET_MASK;
                for (int k = 0; t != 0 && k < h.clusterSize(); k += 8) {
                    l2.add(t + k);
                }
            }
            List<Long> reftable = new ArrayList<>();
            List<Long> refblocks = new ArrayList<>();
            for (int i = 0; i < h.refcountTableClusters * h.clusterSize() / 8; i++) {
                long at = h.refcountTableOffset + i * 8L;
                reftable.add(at);
                long blk = b.getLong((int) at);
                for (int k = 0; blk != 0 && k < h.clusterSize(); k += 8) {
                    refblocks.add(blk + k);
                }
            }
            return new Layout(l1, l2, reftable, refblocks, h.clusterSize(), h.version == 2 ? 72 : h.headerLength);
        }
    }

    /** Header fields as {offset, width}. */
    private static final int[][] HEADER_FIELDS = {
        {4, 4}, {8, 8}, {16, 4}, {20, 4}, {24, 8}, {32, 4}, {36, 4}, {40, 8}, {48, 8}, {56, 4}, {60, 4}, {64, 8},
        {72, 8}, {80, 8}, {88, 8}, {96, 4}, {100, 4}, {104, 1},
    };

    private Map<String, byte[]> seeds() throws Exception {
        Map<String, byte[]> seeds = new LinkedHashMap<>();
        Random rnd = new Random(1);
        Path src = dir.resolve("src.raw");
        Qcow2ReadInteropTest.writeSource(src, 1 << 20, rnd);
        Files.copy(src, dir.resolve("base.raw"));
        String[][] qemu = {
            {"qemu-v3-4k", "compat=1.1,cluster_size=4096", ""},
            {"qemu-v2-4k", "compat=0.10,cluster_size=4096", ""},
            {"qemu-compressed-4k", "cluster_size=4096", "-c"},
            {"qemu-zstd-4k", "cluster_size=4096,compression_type=zstd", "-c"},
            {"qemu-512-refcount1", "cluster_size=512,refcount_bits=1", ""},
            {"qemu-extl2-16k", "cluster_size=16384,extended_l2=on", ""},
        };
        for (String[] q : qemu) {
            Path img = dir.resolve(q[0] + ".qcow2");
            List<String> args = new ArrayList<>(List.of("convert", "-f", "raw", "-O", "qcow2", "-o", q[1]));
            if (!q[2].isEmpty()) {
                args.add(q[2]);
            }
            args.add(src.toString());
            args.add(img.toString());
            run("qemu-img", args.toArray(new String[0]));
            if (q[2].isEmpty()) {
                run("qemu-io", "-f", "qcow2", "-c", "write -z 262144 65536", img.toString());
            }
            seeds.put(q[0], Files.readAllBytes(img));
        }
        Path snap = dir.resolve("qemu-snapshots.qcow2");
        run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=4096", src.toString(),
                snap.toString());
        run("qemu-img", "snapshot", "-c", "one", snap.toString());
        run("qemu-io", "-f", "qcow2", "-c", "write -P 0x41 0 20000", snap.toString());
        seeds.put("qemu-snapshots", Files.readAllBytes(snap));
        Path bitmaps = dir.resolve("qemu-bitmaps.qcow2");
        run("qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=4096", bitmaps.toString(), "1M");
        run("qemu-img", "bitmap", "--add", bitmaps.toString(), "b0");
        run("qemu-io", "-f", "qcow2", "-c", "write -P 0x43 0 30000", bitmaps.toString());
        seeds.put("qemu-bitmaps", Files.readAllBytes(bitmaps));
        Path backed = dir.resolve("qemu-backed.qcow2");
        run("qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=4096", "-b", "base.raw", "-F", "raw",
                backed.toString(), "1M");
        run("qemu-io", "-f", "qcow2", "-c", "write -P 0x42 5000 9000", backed.toString());
        seeds.put("qemu-backed", Files.readAllBytes(backed));

        ImageFormat qcow2 = ImageFormats.defaults().get("qcow2");
        String[][] jtap = {{"jtap-v3-4k", "1.1", "4096", "16", "zlib"}, {"jtap-v2-512", "0.10", "512", "16", "zlib"},
            {"jtap-v3-1k-refcount8", "1.1", "1024", "8", "zlib"}, {"jtap-v3-4k-zstd", "1.1", "4096", "16", "zstd"}};
        for (String[] j : jtap) {
            Path img = dir.resolve(j[0] + ".qcow2");
            qcow2.create(img, CreateOptions.ofSize(1 << 20).with("compat", j[1]).with("cluster_size", j[2])
                    .with("refcount_bits", j[3]).with("compression_type", j[4]));
            try (Image image = qcow2.open(img, OpenOptions.defaults())) {
                for (int i = 0; i < 20; i++) {
                    long off = rnd.nextInt(1 << 20);
                    int len = (int) Math.min((1 << 20) - off, 1 + rnd.nextInt(20000));
                    image.write(off, SelfDescribingData.buffer(off, len, i + 2));
                }
                image.discard(0, 65536);
                // compressed clusters too (deflate or zstd, packed)
                int cs = Integer.parseInt(j[2]);
                for (int i = 0; i < 12; i++) {
                    long off = (long) rnd.nextInt((1 << 20) / cs) * cs;
                    byte[] cluster = new byte[cs];
                    SelfDescribingData.fill(cluster, 0, cs, off, 50 + i);
                    ((io.jtap.formats.CompressedWrites) image).writeCompressed(off, ByteBuffer.wrap(cluster));
                }
            }
            seeds.put(j[0], Files.readAllBytes(img));
        }
        return seeds;
    }

    @Test
    void mutatedImagesFailCleanly() throws Exception {
        System.out.println("Qcow2FuzzTest seed=" + SEED + " (rerun with -Djtap.seed=" + SEED + "), cases=" + CASES);
        Map<String, byte[]> seeds = seeds();
        Map<String, Layout> layouts = new LinkedHashMap<>();
        for (Map.Entry<String, byte[]> e : seeds.entrySet()) {
            layouts.put(e.getKey(), Layout.of(e.getValue()));
        }
        List<String> names = new ArrayList<>(seeds.keySet());
        Random rnd = new Random(SEED);
        ExecutorService pool = Executors.newSingleThreadExecutor(daemon());
        long started = System.nanoTime();
        List<String> failures = new ArrayList<>();
        long slowestMs = 0;
        String slowest = "";
        try {
            for (int c = 0; c < CASES && failures.size() < 5; c++) {
                String seedName = names.get(rnd.nextInt(names.size()));
                byte[] image = seeds.get(seedName).clone();
                StringBuilder what = new StringBuilder("case " + c + " of seed " + SEED + ": " + seedName);
                image = mutate(image, layouts.get(seedName), rnd, what);
                Path p = dir.resolve("case.qcow2");
                Files.write(p, image);
                long caseSeed = rnd.nextLong();
                Future<?> f = pool.submit(() -> {
                    exercise(p, new Random(caseSeed));
                    return null;
                });
                String failure = null;
                long caseStart = System.nanoTime();
                try {
                    f.get(CASE_TIMEOUT_SECONDS, TimeUnit.SECONDS);
                    long ms = (System.nanoTime() - caseStart) / 1_000_000;
                    if (ms > slowestMs) {
                        slowestMs = ms;
                        slowest = what.toString();
                    }
                    if (Files.size(p) > image.length + MAX_GROWTH) {
                        failure = "file blown up: from " + image.length + " to " + Files.size(p) + " bytes";
                    }
                } catch (TimeoutException e) {
                    failure = "hang (over " + CASE_TIMEOUT_SECONDS + " s)";
                    f.cancel(true);
                    pool.shutdownNow();
                    pool = Executors.newSingleThreadExecutor(daemon());
                } catch (java.util.concurrent.ExecutionException e) {
                    java.io.StringWriter sw = new java.io.StringWriter();
                    e.getCause().printStackTrace(new java.io.PrintWriter(sw));
                    failure = sw.toString();
                }
                if (failure != null) {
                    Path keep = Path.of("target", "fuzz-failures", "case-" + SEED + "-" + c + ".qcow2");
                    Files.createDirectories(keep.getParent());
                    Files.write(keep, image);
                    failures.add(what + " (saved as " + keep + "): " + failure);
                }
            }
        } finally {
            pool.shutdownNow();
        }
        System.out.printf("Qcow2FuzzTest: %d cases, %.1f s; slowest %d ms: %s%n", CASES,
                (System.nanoTime() - started) / 1e9, slowestMs, slowest);
        if (!failures.isEmpty()) {
            fail("seed=" + SEED + ": " + failures.size() + " failing cases:\n" + String.join("\n\n", failures));
        }
    }

    private static java.util.concurrent.ThreadFactory daemon() {
        return r -> {
            Thread t = new Thread(r, "qcow2-fuzz-case");
            t.setDaemon(true);
            return t;
        };
    }

    private static byte[] mutate(byte[] image, Layout layout, Random rnd, StringBuilder what) {
        int rounds = 1 + rnd.nextInt(3);
        for (int r = 0; r < rounds; r++) {
            int kind = rnd.nextInt(100);
            if (kind < 25) {
                int flips = 1 + rnd.nextInt(8);
                // bias towards the first clusters, where the metadata of these small images lives
                int range = rnd.nextBoolean() ? Math.min(image.length, 4 * layout.clusterSize()) : image.length;
                for (int i = 0; i < flips; i++) {
                    int at = rnd.nextInt(range);
                    int bit = rnd.nextInt(8);
                    image[at] ^= (byte) (1 << bit);
                    what.append(", flip byte ").append(at).append(" bit ").append(bit);
                }
            } else if (kind < 50) {
                int[] field = rnd.nextInt(8) == 0 ? new int[] {layout.headerLength() + rnd.nextInt(3) * 4, 4}
                        : HEADER_FIELDS[rnd.nextInt(HEADER_FIELDS.length)];
                long value = interesting(rnd, get(image, field[0], field[1]), image.length, layout.clusterSize());
                put(image, field[0], field[1], value);
                what.append(", header field at ").append(field[0]).append(" = 0x").append(Long.toHexString(value));
            } else if (kind < 90) {
                List<List<Long>> tables = List.of(layout.l1(), layout.l2(), layout.reftable(), layout.refblocks());
                int t = rnd.nextInt(tables.size());
                List<Long> entries = tables.get(t);
                if (entries.isEmpty()) {
                    continue;
                }
                long at = entries.get(rnd.nextInt(entries.size()));
                if (at + 8 > image.length) {
                    continue;
                }
                long value = interestingEntry(rnd, get(image, (int) at, 8), image.length, layout);
                put(image, (int) at, 8, value);
                what.append(", ").append(new String[] {"L1", "L2", "reftable", "refblock"}[t]).append(" entry at ")
                        .append(at).append(" = 0x").append(Long.toHexString(value));
            } else {
                int length = rnd.nextInt(image.length);
                image = java.util.Arrays.copyOf(image, length);
                what.append(", truncated to ").append(length);
                return image;
            }
        }
        return image;
    }

    private static long get(byte[] b, int at, int width) {
        long v = 0;
        for (int i = 0; i < width && at + i < b.length; i++) {
            v = (v << 8) | (b[at + i] & 0xff);
        }
        return v;
    }

    private static void put(byte[] b, int at, int width, long value) {
        for (int i = width - 1; i >= 0; i--) {
            if (at + i < b.length) {
                b[at + i] = (byte) value;
            }
            value >>>= 8;
        }
    }

    private static long interesting(Random rnd, long old, long fileLength, int clusterSize) {
        long[] values = {0, 1, -1, Integer.MAX_VALUE, 0x80000000L, 0xffffffffL, fileLength, fileLength + clusterSize,
            clusterSize, clusterSize + 512, 1L << 40, Long.MAX_VALUE, old + 1, old - 1, old ^ (1L << rnd.nextInt(64)),
            old << 1, rnd.nextLong(), 8, 21, 22, 7, 64, 2 * clusterSize, 3 * clusterSize};
        return values[rnd.nextInt(values.length)];
    }

    private static long interestingEntry(Random rnd, long old, long fileLength, Layout layout) {
        long copied = L2Entry.COPIED;
        long cs = layout.clusterSize();
        long[] values = {0, copied, copied | (fileLength + cs - 1) / cs * cs, copied | (1L << 40), old + 512,
            old | 4, old | L2Entry.COMPRESSED, old ^ L2Entry.COPIED, copied | 0, copied | layout.l1().get(0) / cs * cs,
            copied | layout.reftable().get(0) / cs * cs, rnd.nextLong(), old ^ (1L << rnd.nextInt(64)), -1,
            old | 1, L2Entry.COMPRESSED | rnd.nextInt(1 << 20)};
        return values[rnd.nextInt(values.length)];
    }

    /**
     * Opens, reads, maps, checks, repairs and writes; only IOExceptions may come out of each step. Bounded: reads
     * the first 2 MiB and a few random ranges, walks at most 256 block-status runs, writes a few small ranges.
     */
    static void exercise(Path p, Random rnd) throws Exception {
        ImageFormat qcow2 = ImageFormats.defaults().get("qcow2");
        try (Image image = qcow2.open(p, OpenOptions.defaults().withReadOnly(true))) {
            readSome(image, rnd);
        } catch (IOException expected) {
            // a clean refusal
        }
        try (Image image = qcow2.open(p, OpenOptions.defaults().withReadOnly(true).withCheck(true))) {
            ((Checkable) image).check(false, false);
        } catch (IOException expected) {
            // a clean refusal
        }
        try (Image image = qcow2.open(p, OpenOptions.defaults())) {
            writeSome(image, rnd);
        } catch (IOException expected) {
            // a clean refusal
        }
        try (Image image = qcow2.open(p, OpenOptions.defaults().withCheck(true))) {
            ((Checkable) image).check(true, true);
            writeSome(image, rnd);
            readSome(image, rnd);
        } catch (IOException expected) {
            // a clean refusal
        }
    }

    private static void readSome(Image image, Random rnd) throws IOException {
        long size = image.size();
        ByteBuffer buf = ByteBuffer.allocate(65536);
        for (long off = 0; off < Math.min(size, 2 << 20); off += 65536) {
            buf.clear().limit((int) Math.min(65536, size - off));
            image.read(off, buf);
        }
        for (int i = 0; i < 8 && size > 0; i++) {
            long off = Math.floorMod(rnd.nextLong(), size);
            buf.clear().limit((int) Math.min(4096, size - off));
            image.read(off, buf);
            image.mapForRead(off, buf.capacity() > size - off ? size - off : 4096);
        }
        long off = 0;
        for (int i = 0; i < 256 && off < size; i++) {
            BlockStatus st = image.blockStatus(off, size - off);
            off += st.length();
        }
    }

    private static void writeSome(Image image, Random rnd) throws IOException {
        long size = image.size();
        for (int i = 0; i < 6 && size > 0; i++) {
            long off = Math.floorMod(rnd.nextLong(), Math.min(size, 4 << 20));
            int len = (int) Math.min(size - off, 1 + rnd.nextInt(20000));
            switch (rnd.nextInt(4)) {
                case 0, 1 -> image.write(off, SelfDescribingData.buffer(off, len, 77));
                case 2 -> image.discard(off, len);
                default -> image.writeZeroes(off, len);
            }
        }
        if (image instanceof Qcow2Image q) {
            // snapshot operations walk every L1/L2 table of the image and of a snapshot
            List<Qcow2Snapshot> snapshots = q.snapshots();
            switch (rnd.nextInt(4)) {
                case 0 -> q.createSnapshot("fuzz-" + snapshots.size());
                case 1 -> {
                    if (!snapshots.isEmpty()) {
                        q.deleteSnapshot(snapshots.get(rnd.nextInt(snapshots.size())).id());
                    }
                }
                case 2 -> {
                    if (!snapshots.isEmpty()) {
                        q.applySnapshot(snapshots.get(rnd.nextInt(snapshots.size())).id());
                    }
                }
                default -> {
                }
            }
        }
        image.flush();
    }
}
