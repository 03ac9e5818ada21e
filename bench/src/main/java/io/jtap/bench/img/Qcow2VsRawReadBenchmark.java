package io.jtap.bench.img;

import io.jtap.formats.CreateOptions;
import io.jtap.formats.Extent;
import io.jtap.formats.Image;
import io.jtap.formats.ImageFormat;
import io.jtap.formats.OpenOptions;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Random 4 KiB reads from a fully allocated qcow2 image against the same data in a raw image, in one process,
 * through the {@link Image} API as blkback uses it: {@code map} is {@link Image#mapForRead} and a {@code pread} at the
 * DATA extent's host offset (blkback's zero-copy path); {@code read} is {@link Image#read} (the copy-through path).
 * The goal: qcow2 at least 0.9x raw.
 *
 * <p>The images ({@code ${jtap.bench.dir:-/var/tmp}/jtap-bench-read-{raw,qcow2}}, 1 GiB of seeded random data,
 * qcow2 with 64 KiB clusters, written in a scrambled cluster order so that host and guest order differ as in a used
 * image) are created once and read through before measuring, so every read is a page-cache hit: this compares
 * per-request overhead, which is what the format adds. Run with {@code -t 2} to see contention between threads.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Xms1g", "-Xmx1g"})
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 2)
public class Qcow2VsRawReadBenchmark {
    static final int BLOCK = 4096;
    static final long SIZE = 1L << 30;
    static final int CLUSTER = 64 * 1024;

    /** One image shared by all benchmark threads. */
    @State(Scope.Benchmark)
    public static class Images {
        @Param({"raw", "qcow2"})
        public String format;

        Image image;

        @Setup(Level.Trial)
        public void open() throws IOException {
            image = PairedImages.openWarm("read", SIZE, format, Images::create);
        }

        private static void create(ImageFormat rawFormat, Path raw, ImageFormat qcow2Format, Path qcow2)
                throws IOException {
            rawFormat.create(raw, CreateOptions.ofSize(SIZE));
            qcow2Format.create(qcow2, CreateOptions.ofSize(SIZE));
            SplittableRandom rnd = new SplittableRandom(7);
            int clusters = (int) (SIZE / CLUSTER);
            int[] order = new int[clusters];
            for (int i = 0; i < clusters; i++) {
                order[i] = i;
            }
            for (int i = clusters - 1; i > 0; i--) {
                int j = rnd.nextInt(i + 1);
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
            ByteBuffer cluster = ByteBuffer.allocateDirect(CLUSTER);
            try (Image r = rawFormat.open(raw, OpenOptions.defaults());
                 Image q = qcow2Format.open(qcow2, OpenOptions.defaults())) {
                for (int c : order) {
                    cluster.clear();
                    while (cluster.hasRemaining()) {
                        cluster.putLong(rnd.nextLong());
                    }
                    r.write((long) c * CLUSTER, cluster.flip());
                    q.write((long) c * CLUSTER, cluster.rewind());
                }
                r.flush();
                q.flush();
            }
        }

        @TearDown(Level.Trial)
        public void close() throws IOException {
            image.close();
        }
    }

    /** Each thread's buffer and offsets. */
    @State(Scope.Thread)
    public static class Reader {
        final ByteBuffer buf = ByteBuffer.allocateDirect(2 * BLOCK).alignedSlice(BLOCK);
        final SplittableRandom random = new SplittableRandom(Thread.currentThread().getId());

        long nextOffset() {
            return random.nextLong(SIZE / BLOCK) * BLOCK;
        }
    }

    /** blkback's path: translate, then read the DATA extent from the host file at its host offset. */
    @Benchmark
    public int map(Images images, Reader reader) throws IOException {
        long offset = reader.nextOffset();
        List<Extent> extents = images.image.mapForRead(offset, BLOCK);
        int n = 0;
        for (Extent e : extents) {
            if (e.kind() != Extent.Kind.DATA) {
                throw new IllegalStateException("image not fully allocated: " + e);
            }
            int at = (int) (e.offset() - offset);
            ByteBuffer part = reader.buf.clear().limit(at + (int) e.length()).position(at);
            n += e.file().channel().read(part, e.hostOffset());
        }
        return n;
    }

    /** The copy-through path. */
    @Benchmark
    public ByteBuffer read(Images images, Reader reader) throws IOException {
        images.image.read(reader.nextOffset(), reader.buf.clear().limit(BLOCK));
        return reader.buf;
    }
}
