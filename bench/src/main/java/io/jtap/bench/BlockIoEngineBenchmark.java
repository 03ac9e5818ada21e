package io.jtap.bench;

import com.sun.jna.Memory;
import com.sun.jna.Pointer;
import io.jtap.aio.BlockIoEngine;
import io.jtap.aio.BlockIoEngines;
import io.jtap.aio.CompletionHandler;
import io.jtap.aio.IoVector;
import io.jtap.xen.linux.LibC;
import io.jtap.xen.linux.Syscalls;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.Blackhole;

/**
 * 4 KiB random reads from a 1 GiB file in the page cache at queue depth 32: io_uring and the thread pool keep 32 reads
 * in flight continuously (each completion is replaced at once, across invocations); the baseline is
 * {@code FileChannel.read} on one thread, one read at a time. One invocation is 32 completed reads.
 *
 * <p>The file is {@code ${jtap.bench.dir:-/var/tmp}/jtap-bench-1g.img}, created once and read through before
 * measuring. Run (the bench module builds no uber-jar): {@code mvn -pl bench dependency:build-classpath
 * -Dmdep.outputFile=cp.txt}, then {@code java -cp bench/target/jtap-bench-*.jar:$(cat cp.txt) org.openjdk.jmh.Main
 * BlockIoEngineBenchmark}.
 *
 * <p>What it measures: page-cache reads cost a copy and a syscall-ish overhead, no device latency, so this compares
 * per-operation overhead; io_uring's advantage over threads shows most when reads wait for a device.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(1)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
public class BlockIoEngineBenchmark {
    static final int QUEUE_DEPTH = 32;
    static final int BLOCK = 4096;
    static final long FILE_SIZE = 1L << 30;

    @Param({"io_uring", "threads", "filechannel"})
    public String engine;

    private Path file;
    private FileChannel channel;
    private int fd = -1;
    private BlockIoEngine io;
    private ByteBuffer buffers;
    private long buffersAddress;
    private final SplittableRandom random = new SplittableRandom(42);
    /** Buffer indices free for the next read. */
    private final int[] freeBuffers = new int[QUEUE_DEPTH];
    private int freeCount;
    private int completed;
    private long failures;
    private final CompletionHandler onCompletion = (userData, result) -> {
        if (result != BLOCK) {
            failures++;
        }
        freeBuffers[freeCount++] = (int) userData;
        completed++;
    };
    private Memory pollFd;

    @Setup(Level.Trial)
    public void setUp() throws IOException {
        file = Path.of(System.getProperty("jtap.bench.dir", "/var/tmp")).resolve("jtap-bench-1g.img");
        createAndCache(file);
        buffers = ByteBuffer.allocateDirect(QUEUE_DEPTH * BLOCK + BLOCK).alignedSlice(BLOCK);
        if (engine.equals("filechannel")) {
            channel = FileChannel.open(file, StandardOpenOption.READ);
            return;
        }
        fd = Syscalls.open(file.toString(), LibC.O_RDONLY);
        io = BlockIoEngines.open(engine, QUEUE_DEPTH, 1);
        buffersAddress = IoVector.addressOf(buffers);
        pollFd = new Memory(8);
        pollFd.setInt(0, io.completionFd());
        pollFd.setShort(4, LibC.POLLIN);
        for (int i = 0; i < QUEUE_DEPTH; i++) {
            freeBuffers[freeCount++] = i;
        }
        refill();
    }

    private static void createAndCache(Path file) throws IOException {
        if (!Files.exists(file) || Files.size(file) != FILE_SIZE) {
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                    StandardOpenOption.TRUNCATE_EXISTING)) {
                ByteBuffer chunk = ByteBuffer.allocateDirect(1 << 20);
                for (long o = 0; o < FILE_SIZE; o += chunk.capacity()) {
                    for (int i = 0; i < chunk.capacity(); i += 8) {
                        chunk.putLong(i, o + i);
                    }
                    chunk.clear();
                    while (chunk.hasRemaining()) {
                        ch.write(chunk, o + chunk.position());
                    }
                }
            }
        }
        // Read it through so that every measured read is a page-cache hit.
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer chunk = ByteBuffer.allocateDirect(1 << 20);
            for (long o = 0; o < FILE_SIZE; o += chunk.capacity()) {
                chunk.clear();
                while (chunk.hasRemaining() && ch.read(chunk, o + chunk.position()) > 0) {
                    // keep reading
                }
            }
        }
    }

    private long randomOffset() {
        return random.nextLong(FILE_SIZE / BLOCK) * BLOCK;
    }

    /** Starts a read for every free buffer: the queue goes back to 32 in flight. */
    private void refill() throws IOException {
        while (freeCount > 0) {
            int b = freeBuffers[--freeCount];
            IoVector v = io.vector().add(buffersAddress + (long) b * BLOCK, BLOCK);
            io.readv(fd, randomOffset(), v, b);
        }
        io.submit();
    }

    @Benchmark
    @OperationsPerInvocation(QUEUE_DEPTH)
    public void randomRead4k(Blackhole bh) throws IOException {
        if (channel != null) {
            for (int i = 0; i < QUEUE_DEPTH; i++) {
                ByteBuffer b = buffers.duplicate();
                b.limit(BLOCK);
                long offset = randomOffset();
                while (b.hasRemaining()) {
                    channel.read(b, offset + b.position());
                }
                bh.consume(b);
            }
            return;
        }
        completed = 0;
        while (completed < QUEUE_DEPTH) {
            if (io.reap(onCompletion) == 0) {
                LibC.poll(Pointer.nativeValue(pollFd), 1, -1);
            } else {
                refill();
            }
        }
        bh.consume(failures);
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        if (failures != 0) {
            throw new IllegalStateException("reads failed: failures=" + failures);
        }
        if (channel != null) {
            channel.close();
        }
        if (io != null) {
            io.close();
            Syscalls.close(fd);
            pollFd.close();
        }
    }
}
