package io.jtap.bench.img;

import io.jtap.formats.CompressedWrites;
import io.jtap.formats.CreateOptions;
import io.jtap.formats.Image;
import io.jtap.formats.ImageFormat;
import io.jtap.formats.OpenOptions;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
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
 * Sequential reads of a compressed qcow2 image in 4 KiB pieces, as blkback serves a guest's segments (each a separate
 * {@link Image#read} on a worker), against the same reads of the same data in a raw image. The unit is one 64 KiB
 * cluster read as 16 pieces; {@code whole} reads the cluster in one call, which inflates it once by construction.
 *
 * <p>The images ({@code ${jtap.bench.dir:-/var/tmp}/jtap-bench-compressed-{raw,qcow2}}, 64 MiB of compressible
 * text-like data, every cluster compressed) are created once and read through before measuring.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Xms512m", "-Xmx512m"})
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
public class CompressedReadBenchmark {
    static final int PIECE = 4096;
    static final int CLUSTER = 64 * 1024;
    static final long SIZE = 64L << 20;

    /** One image per trial. */
    @State(Scope.Benchmark)
    public static class Images {
        @Param({"raw", "qcow2"})
        public String format;

        Image image;
        long next;

        @Setup(Level.Trial)
        public void open() throws IOException {
            image = PairedImages.openWarm("compressed", SIZE, format, Images::create);
        }

        private static void create(ImageFormat rawFormat, Path raw, ImageFormat qcow2Format, Path qcow2)
                throws IOException {
            rawFormat.create(raw, CreateOptions.ofSize(SIZE));
            qcow2Format.create(qcow2, CreateOptions.ofSize(SIZE).with("cluster_size", String.valueOf(CLUSTER)));
            byte[] cluster = new byte[CLUSTER];
            try (Image r = rawFormat.open(raw, OpenOptions.defaults());
                 Image q = qcow2Format.open(qcow2, OpenOptions.defaults())) {
                CompressedWrites cw = (CompressedWrites) q;
                for (long off = 0; off < SIZE; off += CLUSTER) {
                    ImageContentGenerator.fillText(cluster, off);
                    r.write(off, ByteBuffer.wrap(cluster));
                    ByteBuffer c = cw.compress(ByteBuffer.wrap(cluster))
                            .orElseThrow(() -> new IOException("bench data did not compress"));
                    cw.writeCompressedData(off, c);
                }
                r.flush();
                q.flush();
            }
        }

        long nextCluster() {
            long at = next;
            next = next + CLUSTER >= SIZE ? 0 : next + CLUSTER;
            return at;
        }

        @TearDown(Level.Trial)
        public void close() throws IOException {
            image.close();
        }
    }

    /** One cluster as 16 reads of 4 KiB, in order. */
    @Benchmark
    public ByteBuffer pieces(Images images, Buffer b) throws IOException {
        long at = images.nextCluster();
        for (int p = 0; p < CLUSTER; p += PIECE) {
            images.image.read(at + p, b.buf.clear().position(p).limit(p + PIECE));
        }
        return b.buf;
    }

    /** One cluster in one read. */
    @Benchmark
    public ByteBuffer whole(Images images, Buffer b) throws IOException {
        images.image.read(images.nextCluster(), b.buf.clear());
        return b.buf;
    }

    /** The reader's buffer. */
    @State(Scope.Thread)
    public static class Buffer {
        final ByteBuffer buf = ByteBuffer.allocateDirect(CLUSTER);
    }
}
