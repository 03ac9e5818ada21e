package io.jtap.bench.blk;

import io.jtap.blkback.BlkbackConfig;
import io.jtap.blkback.BlkbackDevice;
import io.jtap.blkback.GrantMode;
import io.jtap.formats.CreateOptions;
import io.jtap.formats.Image;
import io.jtap.formats.ImageFormats;
import io.jtap.formats.OpenOptions;
import io.jtap.testkit.blkfront.SimulatedBlkfront;
import io.jtap.testkit.blkfront.SimulatedToolstack;
import io.jtap.xen.XenStore;
import io.jtap.xen.sim.SimulatedDomain;
import io.jtap.xen.sim.SimulatedXen;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadInfo;
import java.lang.management.ThreadMXBean;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * End-to-end block backend benchmark: a {@link SimulatedBlkfront} drives a {@link BlkbackDevice} through the
 * simulated Xen (grants, event channels, xenstore), serving a raw or fully allocated qcow2 image from the page cache,
 * and each timed repetition is paired with a repetition of the baseline, the same IO done directly on the raw image
 * file with {@link FileChannel} positional reads and writes ({@code pread}/{@code pwrite}) in this JVM. The figure
 * is the ratio of the two throughputs, per pair; the table shows the median and the spread over pairs, and CPU time
 * per request (whole process, frontend thread, backend threads).
 *
 * <p>Why a plain driver and not JMH: the measured system is three kinds of threads (the frontend, one ring thread per
 * queue, the worker pool) that must be set up through a xenstore handshake and torn down per configuration, and the
 * figure wanted is a ratio to a baseline measured in the same process interleaved with it. JMH measures one
 * benchmark method per iteration, forks per benchmark (the baseline would run in another JVM) and has no per-thread
 * CPU accounting of threads it did not start.
 *
 * <p>The baseline: the page cache has no device latency, so a synchronous {@code pread} never waits and queue depth
 * adds nothing to one thread; the baseline therefore runs one thread per blkif queue (the ring thread is the one
 * that does the IO in blkback: io_uring completes page-cache reads inline in {@code io_uring_enter}). Both sides read
 * into (write from) direct buffers, so each moves the data once (kernel ↔ user), and the baseline cycles through as
 * many buffers as the frontend keeps requests in flight, so that both touch the same amount of memory.
 *
 * <p>System properties: {@code jtap.bench.sizeMiB} (image size, default 512), {@code jtap.bench.reps} (paired
 * repetitions, default 10), {@code jtap.bench.seconds} (per repetition, default 0.5: short pairs follow the load of a
 * shared machine more closely), {@code jtap.bench.warmup}
 * (seconds, default 1), {@code jtap.bench.dir} (where the images go, default a temporary directory),
 * {@code jtap.bench.cases} (comma-separated substrings of case names to run, default all),
 * {@code jtap.bench.maxPersistentGrants} (the backend's persistent grants per ring, default
 * {@link BlkbackConfig#DEFAULT_MAX_PERSISTENT_GRANTS}; below the frontend's working set of 2056 pages per queue in the
 * 1 MiB cases, it measures a cache that cannot hold them all).
 */
public final class BlkbackEndToEnd {
    /** One kind of IO: block size, random or sequential, read or write, and requests kept in flight. */
    record Workload(String name, int blockBytes, boolean random, boolean write, int queueDepth) {
    }

    /** A measured configuration. */
    record Case(String format, Workload workload, GrantMode mode, int queues) {
        String name() {
            return workload.name + " " + format + " " + mode.name().toLowerCase(Locale.ROOT) + " q" + queues;
        }
    }

    /** One repetition's figures. */
    record Sample(double opsPerSec, double cpuUsPerOp, double frontendUsPerOp, double backendUsPerOp) {
    }

    static final Workload RAND_4K_READ = new Workload("4k-randread-qd32", 4096, true, false, 32);
    /** 1 MiB requests, 8 in flight as fio's {@code iodepth=8} in {@code bench/xen-bench.sh}. */
    static final Workload SEQ_1M_READ = new Workload("1m-seqread-qd8", 1 << 20, false, false, 8);
    static final Workload SEQ_1M_WRITE = new Workload("1m-seqwrite-qd8", 1 << 20, false, true, 8);

    /** The frontend's pages per queue: the workload's requests in flight with their indirect pages. */
    static int poolPages(Workload w) {
        int pages = w.blockBytes / 4096;
        int perRequest = pages + (pages > 11 ? (pages + 511) / 512 : 0);
        return Math.max(SimulatedBlkfront.Features.DEFAULT_POOL_PAGES, w.queueDepth * perRequest);
    }

    private static final ThreadMXBean THREADS = ManagementFactory.getThreadMXBean();
    private static final com.sun.management.OperatingSystemMXBean OS =
            (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();

    private final long size;
    private final int reps;
    private final long repNs;
    private final long warmupNs;
    private final Path dir;

    BlkbackEndToEnd(long size, int reps, double seconds, double warmup, Path dir) {
        this.size = size;
        this.reps = reps;
        this.repNs = (long) (seconds * 1e9);
        this.warmupNs = (long) (warmup * 1e9);
        this.dir = dir;
    }

    public static void main(String[] args) throws Exception {
        long size = Long.getLong("jtap.bench.sizeMiB", 512) << 20;
        int reps = Integer.getInteger("jtap.bench.reps", 10);
        double seconds = Double.parseDouble(System.getProperty("jtap.bench.seconds", "0.5"));
        double warmup = Double.parseDouble(System.getProperty("jtap.bench.warmup", "1"));
        String dirProp = System.getProperty("jtap.bench.dir");
        Path dir = dirProp != null ? Files.createDirectories(Path.of(dirProp)) : Files.createTempDirectory("jtap-blk");
        String filter = System.getProperty("jtap.bench.cases", "");
        THREADS.setThreadCpuTimeEnabled(true);

        List<Case> cases = new ArrayList<>();
        for (Workload w : List.of(RAND_4K_READ, SEQ_1M_READ, SEQ_1M_WRITE)) {
            for (String format : List.of("raw", "qcow2")) {
                cases.add(new Case(format, w, GrantMode.PERSISTENT, 1));
            }
        }
        for (Workload w : List.of(RAND_4K_READ, SEQ_1M_READ)) {
            cases.add(new Case("raw", w, GrantMode.COPY, 1));
            cases.add(new Case("raw", w, GrantMode.MAP, 1));
            cases.add(new Case("raw", w, GrantMode.PERSISTENT, 4));
        }
        if (!filter.isEmpty()) {
            List<String> wanted = Arrays.asList(filter.split(","));
            cases.removeIf(c -> wanted.stream().noneMatch(s -> c.name().contains(s)));
        }

        BlkbackEndToEnd b = new BlkbackEndToEnd(size, reps, seconds, warmup, dir);
        System.out.printf(Locale.ROOT, "# blkback end to end: image %d MiB, %d paired repetitions of %.1f s, dir %s%n",
                size >> 20, reps, seconds, dir);
        b.prepareImages();
        System.out.println("| case | blkback ops/s | baseline ops/s | ratio median (min–max) | CPU µs/op blkback"
                + " (frontend + backend) | CPU µs/op baseline |");
        System.out.println("|---|---|---|---|---|---|");
        for (Case c : cases) {
            b.run(c);
        }
        if (dirProp == null) {
            for (String f : List.of("disk.raw", "disk.qcow2")) {
                Files.deleteIfExists(dir.resolve(f));
            }
            Files.deleteIfExists(dir);
        }
    }

    private Path image(String format) {
        return dir.resolve("disk." + format);
    }

    /** A raw image full of non-zero data, and a fully allocated qcow2 with the same contents. */
    void prepareImages() throws IOException {
        ByteBuffer chunk = ByteBuffer.allocateDirect(1 << 20);
        Path raw = image("raw");
        if (!Files.exists(raw) || Files.size(raw) != size) {
            try (FileChannel ch = FileChannel.open(raw, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                    StandardOpenOption.TRUNCATE_EXISTING)) {
                for (long off = 0; off < size; off += chunk.capacity()) {
                    fill(chunk, off);
                    ch.write(chunk, off);
                }
            }
        }
        Path qcow2 = image("qcow2");
        Files.deleteIfExists(qcow2);
        ImageFormats.defaults().get("qcow2").create(qcow2, CreateOptions.ofSize(size));
        try (Image img = ImageFormats.defaults().get("qcow2").open(qcow2, OpenOptions.defaults())) {
            for (long off = 0; off < size; off += chunk.capacity()) {
                fill(chunk, off);
                img.write(off, chunk);
            }
            img.flush();
        }
    }

    /** Self-describing data: each 8-byte word is its own offset on the disk. */
    private static void fill(ByteBuffer chunk, long offset) {
        chunk.clear();
        for (int i = 0; i < chunk.capacity(); i += 8) {
            chunk.putLong(i, offset + i + 1);
        }
    }

    void run(Case c) throws Exception {
        SimulatedXen xen = new SimulatedXen();
        ExecutorService workers = new ThreadPoolExecutor(4, 4, 0, TimeUnit.SECONDS, new LinkedBlockingQueue<>(),
                r -> {
                    Thread t = new Thread(r, "jtap-blkback-bench-worker");
                    t.setDaemon(true);
                    return t;
                });
        XenStore xs = xen.platform(SimulatedXen.DOM0).openXenStore();
        SimulatedDomain guest = xen.createDomain("bench");
        int devid = 51712;
        String be = SimulatedToolstack.addVbd(xs, guest.domid(), devid, c.format + ":" + image(c.format), "w", "disk");
        BlkbackConfig config = BlkbackConfig.defaults().withGrantMode(c.mode).withMaxQueues(Math.max(c.queues, 1))
                .withMaxPersistentGrants(Integer.getInteger("jtap.bench.maxPersistentGrants",
                        BlkbackConfig.DEFAULT_MAX_PERSISTENT_GRANTS))
                .withIoEngine(System.getProperty("jtap.bench.ioEngine", BlkbackConfig.defaults().ioEngine()));
        BlkbackDevice device = new BlkbackDevice(xen.platform(SimulatedXen.DOM0), xs, be, config,
                ImageFormats.defaults(), workers);
        List<Sample> blk = new ArrayList<>();
        List<Sample> base = new ArrayList<>();
        try {
            device.start();
            SimulatedBlkfront f = new SimulatedBlkfront(xen, guest, devid, SimulatedBlkfront.Features.defaults()
                    .withPersistent(c.mode == GrantMode.PERSISTENT).withQueues(c.queues)
                    .withPoolPages(poolPages(c.workload)));
            try {
                f.connect();
                FrontendDriver driver = new FrontendDriver(f, c.workload, c.queues, size);
                driver.run(warmupNs);
                baseline(c.workload, c.queues, warmupNs);
                for (int i = 0; i < reps; i++) {
                    base.add(baseline(c.workload, c.queues, repNs));
                    blk.add(driver.run(repNs));
                }
                driver.drain();
                f.disconnect();
            } finally {
                f.close();
            }
        } finally {
            device.close();
            workers.shutdownNow();
            workers.awaitTermination(10, TimeUnit.SECONDS);
            xs.close();
            xen.close();
        }
        report(c, blk, base);
    }

    private static void report(Case c, List<Sample> blk, List<Sample> base) {
        double[] ratios = new double[blk.size()];
        for (int i = 0; i < ratios.length; i++) {
            ratios[i] = blk.get(i).opsPerSec / base.get(i).opsPerSec;
        }
        System.out.printf(Locale.ROOT, "| %s | %s | %s | %.2f (%.2f–%.2f) | %.1f (%.1f + %.1f) | %.1f |%n", c.name(),
                ops(median(blk, Sample::opsPerSec)), ops(median(base, Sample::opsPerSec)), median(ratios),
                Arrays.stream(ratios).min().orElse(0), Arrays.stream(ratios).max().orElse(0),
                median(blk, Sample::cpuUsPerOp), median(blk, Sample::frontendUsPerOp),
                median(blk, Sample::backendUsPerOp), median(base, Sample::cpuUsPerOp));
    }

    private static String ops(double v) {
        if (v >= 1e6) {
            return String.format(Locale.ROOT, "%.2f M", v / 1e6);
        }
        return v >= 1e4 ? String.format(Locale.ROOT, "%.0f k", v / 1e3) : String.format(Locale.ROOT, "%.1f k", v / 1e3);
    }

    private static double median(List<Sample> samples, java.util.function.ToDoubleFunction<Sample> f) {
        return median(samples.stream().mapToDouble(f).toArray());
    }

    private static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s.length == 0 ? 0 : s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }

    /** The same IO straight on the raw image file, one thread per queue, for {@code durationNs}. */
    Sample baseline(Workload w, int threads, long durationNs) throws Exception {
        AtomicBoolean stop = new AtomicBoolean();
        long[] counts = new long[threads];
        Throwable[] failure = new Throwable[1];
        Path file = image("raw");
        List<Thread> ts = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            int id = t;
            Thread th = new Thread(() -> {
                // As many buffers as the frontend keeps requests in flight, used in turn: the same memory footprint.
                ByteBuffer all = ByteBuffer.allocateDirect(w.blockBytes * w.queueDepth);
                ByteBuffer[] bufs = new ByteBuffer[w.queueDepth];
                for (int i = 0; i < bufs.length; i++) {
                    bufs[i] = all.slice(i * w.blockBytes, w.blockBytes);
                }
                long blocks = size / w.blockBytes;
                long seed = 0x9E3779B97F4A7C15L * (id + 1);
                long next = blocks * id / threads;
                try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                    long n = 0;
                    while (!stop.get()) {
                        long block;
                        if (w.random) {
                            seed = xorshift(seed);
                            block = Long.remainderUnsigned(seed, blocks);
                        } else {
                            block = next;
                            next = next + 1 == blocks ? 0 : next + 1;
                        }
                        ByteBuffer buf = bufs[(int) (n % bufs.length)];
                        buf.clear();
                        long at = block * w.blockBytes;
                        while (buf.hasRemaining()) {
                            int k = w.write ? ch.write(buf, at + buf.position()) : ch.read(buf, at + buf.position());
                            if (k < 0) {
                                throw new IOException("end of file: offset=" + at);
                            }
                        }
                        n++;
                        if ((n & 15) == 0) {
                            counts[id] = n;
                        }
                    }
                    counts[id] = n;
                } catch (Throwable e) {
                    failure[0] = e;
                }
            }, "baseline-" + t);
            ts.add(th);
        }
        long cpu0 = OS.getProcessCpuTime();
        long t0 = System.nanoTime();
        for (Thread th : ts) {
            th.start();
        }
        Thread.sleep(durationNs / 1_000_000);
        stop.set(true);
        for (Thread th : ts) {
            th.join();
        }
        long t1 = System.nanoTime();
        long cpu1 = OS.getProcessCpuTime();
        if (failure[0] != null) {
            throw new IOException("baseline failed: " + failure[0], failure[0]);
        }
        long ops = Arrays.stream(counts).sum();
        return new Sample(ops * 1e9 / (t1 - t0), (cpu1 - cpu0) / 1e3 / ops, 0, 0);
    }

    static long xorshift(long x) {
        x ^= x << 13;
        x ^= x >>> 7;
        x ^= x << 17;
        return x;
    }

    /** Keeps {@code queueDepth} requests in flight per queue from the calling thread (the guest's one vCPU). */
    static final class FrontendDriver {
        private final SimulatedBlkfront f;
        private final Workload w;
        private final int queues;
        private final long blocks;
        private final int sectorsPerBlock;
        private long seed = 0x2545F4914F6CDD1DL;
        private long next;
        private long submitted;
        private int queue;
        /** Every 1024th request, checked for OKAY after each repetition. */
        private final List<SimulatedBlkfront.Request> sampled = new ArrayList<>();

        FrontendDriver(SimulatedBlkfront f, Workload w, int queues, long size) {
            this.f = f;
            this.w = w;
            this.queues = queues;
            this.blocks = size / w.blockBytes;
            this.sectorsPerBlock = w.blockBytes / 512;
        }

        Sample run(long durationNs) throws Exception {
            List<Long> backendThreads = backendThreadIds();
            long be0 = cpu(backendThreads);
            long fe0 = THREADS.getCurrentThreadCpuTime();
            long cpu0 = OS.getProcessCpuTime();
            long t0 = System.nanoTime();
            long done0 = submitted - f.inFlight();
            long deadline = t0 + durationNs;
            int depth = w.queueDepth * queues;
            while (true) {
                while (f.inFlight() < depth) {
                    submitOne();
                }
                f.awaitResponses();
                if (System.nanoTime() - deadline > 0) {
                    break;
                }
            }
            long t1 = System.nanoTime();
            long done1 = submitted - f.inFlight();
            long cpu1 = OS.getProcessCpuTime();
            long fe1 = THREADS.getCurrentThreadCpuTime();
            long be1 = cpu(backendThreads);
            for (SimulatedBlkfront.Request r : sampled) {
                f.await(r);
                if (r.status() != 0) {
                    throw new IOException("request failed: id=" + r.id() + ", status=" + r.status());
                }
            }
            sampled.clear();
            double ops = done1 - done0;
            return new Sample(ops * 1e9 / (t1 - t0), (cpu1 - cpu0) / 1e3 / ops, (fe1 - fe0) / 1e3 / ops,
                    (be1 - be0) / 1e3 / ops);
        }

        private void submitOne() throws Exception {
            long block;
            if (w.random) {
                seed = xorshift(seed);
                block = Long.remainderUnsigned(seed, blocks);
            } else {
                block = next;
                next = next + 1 == blocks ? 0 : next + 1;
            }
            long sector = block * sectorsPerBlock;
            int q = queue;
            queue = queue + 1 == queues ? 0 : queue + 1;
            SimulatedBlkfront.Request r = w.write ? f.submitWriteInPlace(q, sector, sectorsPerBlock)
                    : f.submitReadInPlace(q, sector, sectorsPerBlock);
            if ((submitted++ & 1023) == 0) {
                sampled.add(r);
            }
        }

        void drain() throws Exception {
            f.awaitAll();
        }

        private static List<Long> backendThreadIds() {
            List<Long> ids = new ArrayList<>();
            for (ThreadInfo ti : THREADS.getThreadInfo(THREADS.getAllThreadIds())) {
                if (ti != null && (ti.getThreadName().startsWith("jtap-blkif-")
                        || ti.getThreadName().startsWith("jtap-blkback-bench-worker"))) {
                    ids.add(ti.getThreadId());
                }
            }
            return ids;
        }

        private static long cpu(List<Long> ids) {
            long n = 0;
            for (long id : ids) {
                long t = THREADS.getThreadCpuTime(id);
                if (t > 0) {
                    n += t;
                }
            }
            return n;
        }
    }
}
