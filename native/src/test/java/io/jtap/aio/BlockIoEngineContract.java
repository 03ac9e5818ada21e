package io.jtap.aio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.jtap.xen.linux.LibC;
import io.jtap.xen.linux.Syscalls;
import io.jtap.xen.linux.Syscalls.ErrnoException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The behaviour every {@link BlockIoEngine} shares, run against each engine by a concrete subclass. Files hold
 * self-describing words ({@link FileWords}), so a misplaced transfer names the file offset it came from. Waits for
 * completions are bounded by a generous liveness limit, never asserted as timings.
 */
abstract class BlockIoEngineContract {
    /** How long to wait for a completion before declaring the engine stuck (a liveness guard, not a timing test). */
    private static final int STUCK_MS = 30_000;

    @TempDir
    Path dir;
    private final List<Integer> fds = new ArrayList<>();
    private final List<BlockIoEngine> engines = new ArrayList<>();

    /** Opens the engine under test. */
    abstract BlockIoEngine open(int queueDepth, int maxSegments) throws IOException;

    /** Engine-specific checks after a burst larger than the engine's rings (e.g. io_uring's CQ overflow count). */
    void afterBurst(BlockIoEngine engine) {
    }

    @BeforeEach
    void checkLibC() {
        assertNull(LibC.loadFailure(), "libc binds");
    }

    @AfterEach
    void closeAll() throws IOException {
        for (BlockIoEngine e : engines) {
            e.close();
        }
        for (int fd : fds) {
            Syscalls.close(fd);
        }
    }

    BlockIoEngine engine(int queueDepth, int maxSegments) throws IOException {
        BlockIoEngine e = open(queueDepth, maxSegments);
        engines.add(e);
        return e;
    }

    int openFd(Path path, int flags) throws IOException {
        int fd = Syscalls.open(path.toString(), flags);
        fds.add(fd);
        return fd;
    }

    /** One completion as the handler saw it. */
    record Completion(long userData, long result) {
    }

    /** Reaps until {@code count} completions arrived, polling the completion fd in between. */
    static List<Completion> awaitCompletions(BlockIoEngine engine, int count) throws IOException {
        List<Completion> got = new ArrayList<>();
        while (got.size() < count) {
            int before = got.size();
            engine.reap((u, r) -> got.add(new Completion(u, r)));
            if (got.size() == before && got.size() < count) {
                long ready = Syscalls.pollIn(new int[] {engine.completionFd()}, STUCK_MS);
                if (ready == 0) {
                    fail("engine stuck: no completion within " + STUCK_MS + " ms, got " + got.size() + " of " + count
                            + ", inFlight=" + engine.inFlight());
                }
            }
        }
        return got;
    }

    static Completion awaitOne(BlockIoEngine engine) throws IOException {
        List<Completion> c = awaitCompletions(engine, 1);
        assertEquals(1, c.size(), "exactly one completion");
        return c.get(0);
    }

    @Test
    void vectoredReadAtAnOffsetFillsEachSegmentFromConsecutiveFileBytes() throws IOException {
        Path image = dir.resolve("image");
        FileWords.createImage(image, 1 << 20);
        int fd = openFd(image, LibC.O_RDONLY);
        BlockIoEngine engine = engine(8, 11);
        ByteBuffer a = ByteBuffer.allocateDirect(4096);
        ByteBuffer b = ByteBuffer.allocateDirect(4096);
        IoVector v = engine.vector().add(a, 0, 4096).add(b, 512, 1024).add(a, 0, 512);
        assertEquals(3, v.segments());
        assertEquals(5632, v.length());
        engine.readv(fd, 81920, v, 42);
        assertEquals(1, engine.inFlight());
        assertEquals(1, engine.submit());
        Completion c = awaitOne(engine);
        assertEquals(new Completion(42, 5632), c);
        assertEquals(0, engine.inFlight());
        // The third segment overwrote a[0, 512) after the first filled it: segments are filled in order.
        FileWords.check(a, 0, 512, FileWords.IMAGE, 81920 + 5120, "segment 3");
        FileWords.check(a, 512, 3584, FileWords.IMAGE, 81920 + 512, "segment 1");
        FileWords.check(b, 512, 1024, FileWords.IMAGE, 81920 + 4096, "segment 2");
    }

    /**
     * Large reads handed off the owner's thread ({@link BlockIoEngine#offloadReadsFrom}) land as any read does, next to
     * small ones that are not, and {@link BlockIoEngine#completionsReady} tells when they can be reaped.
     */
    @Test
    void offloadedReadsFillTheirSegmentsAndAreReadyWhenComplete() throws IOException {
        Path image = dir.resolve("image");
        FileWords.createImage(image, 1 << 20);
        int fd = openFd(image, LibC.O_RDONLY);
        BlockIoEngine engine = engine(8, 64);
        engine.offloadReadsFrom(64 << 10);
        assertFalse(engine.completionsReady(), "nothing in flight");
        ByteBuffer big = ByteBuffer.allocateDirect(256 << 10);
        ByteBuffer small = ByteBuffer.allocateDirect(4096);
        IoVector v = engine.vector();
        for (int i = 0; i < 64; i++) {
            v.add(big, i * 4096, 4096);
        }
        engine.readv(fd, 131072, v, 1);
        engine.readv(fd, 4096, engine.vector().add(small, 0, 4096), 2);
        engine.submit();
        List<Completion> got = awaitCompletions(engine, 2);
        assertFalse(engine.completionsReady(), "all reaped");
        assertEquals(Set.of(new Completion(1, 256 << 10), new Completion(2, 4096)), Set.copyOf(got));
        FileWords.check(big, 0, 256 << 10, FileWords.IMAGE, 131072, "offloaded read");
        FileWords.check(small, 0, 4096, FileWords.IMAGE, 4096, "inline read");
    }

    @Test
    void vectoredWriteLandsAtItsOffsetAndReadsBack() throws IOException {
        Path image = dir.resolve("image");
        FileWords.createImage(image, 1 << 20);
        int fd = openFd(image, LibC.O_RDWR);
        BlockIoEngine engine = engine(8, 11);
        ByteBuffer a = ByteBuffer.allocateDirect(4096);
        ByteBuffer b = ByteBuffer.allocateDirect(4096);
        long at = 65536 + 1024;
        FileWords.fill(a, 0, 4096, FileWords.WRITTEN, at);
        FileWords.fill(b, 0, 2048, FileWords.WRITTEN, at + 4096);
        engine.writev(fd, at, engine.vector().add(a, 0, 4096).add(b, 0, 2048), 7);
        engine.submit();
        assertEquals(new Completion(7, 6144), awaitOne(engine));
        ByteBuffer back = FileWords.read(image, at - 1024, 8192);
        FileWords.check(back, 0, 1024, FileWords.IMAGE, at - 1024, "before the write");
        FileWords.check(back, 1024, 6144, FileWords.WRITTEN, at, "the write");
        FileWords.check(back, 7168, 1024, FileWords.IMAGE, at + 6144, "after the write");
    }

    @Test
    void manyOperationsInFlightCompleteOnceEachInAnyOrder() throws IOException {
        long seed = new Random().nextLong();
        try {
            manyInFlight(seed);
        } catch (AssertionError | RuntimeException | IOException e) {
            System.out.println("manyOperationsInFlightCompleteOnceEachInAnyOrder failed with seed=" + seed);
            throw e;
        }
    }

    private void manyInFlight(long seed) throws IOException {
        Random random = new Random(seed);
        int ops = 256;
        long readArea = 8L << 20;
        Path image = dir.resolve("image");
        FileWords.createImage(image, readArea * 2);
        int fd = openFd(image, LibC.O_RDWR);
        BlockIoEngine engine = engine(ops, 11);
        // Reads anywhere in the first half; writes to disjoint 64 KiB slots of the second half.
        Map<Long, long[]> expected = new HashMap<>(); // userData -> {isWrite, fileOffset, length, bufferIndex}
        ByteBuffer[] buffers = new ByteBuffer[ops];
        for (int i = 0; i < ops; i++) {
            boolean write = random.nextBoolean();
            int segments = 1 + random.nextInt(11);
            buffers[i] = ByteBuffer.allocateDirect(segments * 4096);
            long offset = write ? readArea + 65536L * i : 8L * random.nextInt((int) (readArea / 8) - segments * 512);
            IoVector v = engine.vector();
            int length = 0;
            for (int s = 0; s < segments; s++) {
                int segLength = 8 * (1 + random.nextInt(512));
                v.add(buffers[i], s * 4096, segLength);
                if (write) {
                    FileWords.fill(buffers[i], s * 4096, segLength, FileWords.WRITTEN, offset + length);
                }
                length += segLength;
            }
            long userData = 1_000_000L + i;
            if (write) {
                engine.writev(fd, offset, v, userData);
            } else {
                engine.readv(fd, offset, v, userData);
            }
            expected.put(userData, new long[] {write ? 1 : 0, offset, length, i, segments});
        }
        assertEquals(ops, engine.inFlight());
        assertEquals(0, engine.available());
        assertEquals(ops, engine.submit());
        List<Completion> done = awaitCompletions(engine, ops);
        assertEquals(ops, done.size());
        for (Completion c : done) {
            long[] e = expected.remove(c.userData());
            assertNotNull(e, "one completion per operation, and only known userData: userData=" + c.userData());
            assertEquals(e[2], c.result(), "bytes transferred: userData=" + c.userData());
        }
        assertTrue(expected.isEmpty(), "missing completions: " + expected.keySet());
        assertEquals(0, engine.inFlight());
        // Check the data: reads against the image words, writes against the file.
        random = new Random(seed);
        for (int i = 0; i < ops; i++) {
            boolean write = random.nextBoolean();
            int segments = 1 + random.nextInt(11);
            long offset = write ? readArea + 65536L * i : 8L * random.nextInt((int) (readArea / 8) - segments * 512);
            ByteBuffer back = write ? FileWords.read(image, offset, segments * 4096) : null;
            int length = 0;
            for (int s = 0; s < segments; s++) {
                int segLength = 8 * (1 + random.nextInt(512));
                if (write) {
                    FileWords.check(back, length, segLength, FileWords.WRITTEN, offset + length, "write " + i);
                } else {
                    FileWords.check(buffers[i], s * 4096, segLength, FileWords.IMAGE, offset + length, "read " + i);
                }
                length += segLength;
            }
        }
    }

    @Test
    void fsyncAndFdatasyncCompleteWithZero() throws IOException {
        Path image = dir.resolve("image");
        FileWords.createImage(image, 65536);
        int fd = openFd(image, LibC.O_RDWR);
        BlockIoEngine engine = engine(4, 1);
        ByteBuffer a = ByteBuffer.allocateDirect(4096);
        FileWords.fill(a, 0, 4096, FileWords.WRITTEN, 0);
        engine.writev(fd, 0, engine.vector().add(a, 0, 4096), 1);
        engine.submit();
        assertEquals(new Completion(1, 4096), awaitOne(engine));
        // The flush is prepared after the write was reaped: the caller orders them.
        engine.fsync(fd, true, 2);
        engine.fsync(fd, false, 3);
        engine.submit();
        List<Completion> done = awaitCompletions(engine, 2);
        assertEquals(Map.of(2L, 0L, 3L, 0L), Map.of(done.get(0).userData(), done.get(0).result(),
                done.get(1).userData(), done.get(1).result()));
    }

    @Test
    void errorsArriveAsNegativeErrnoWithTheirUserData() throws IOException {
        Path image = dir.resolve("image");
        FileWords.createImage(image, 65536);
        int readOnly = openFd(image, LibC.O_RDONLY);
        // Not a recently closed fd: its number would be reused by the engine's own eventfd.
        int closedFd = 0x3FFF_FFFF;
        BlockIoEngine engine = engine(8, 4);
        ByteBuffer a = ByteBuffer.allocateDirect(4096);
        engine.readv(closedFd, 0, engine.vector().add(a, 0, 4096), 11);
        engine.writev(readOnly, 0, engine.vector().add(a, 0, 4096), 12);
        engine.fsync(closedFd, true, 13);
        ByteBuffer ok = ByteBuffer.allocateDirect(4096);
        engine.readv(readOnly, 4096, engine.vector().add(ok, 0, 4096), 14);
        engine.submit();
        Map<Long, Long> results = new HashMap<>();
        for (Completion c : awaitCompletions(engine, 4)) {
            assertNull(results.put(c.userData(), c.result()), "one completion per userData");
        }
        assertEquals(Map.of(11L, (long) -LibC.EBADF, 12L, (long) -LibC.EBADF, 13L, (long) -LibC.EBADF, 14L, 4096L),
                results);
        FileWords.check(ok, 0, 4096, FileWords.IMAGE, 4096, "the good read among failures");
        assertEquals(0, engine.inFlight());
    }

    @Test
    void completionFdBecomesReadableAndReapResetsIt() throws IOException {
        Path image = dir.resolve("image");
        FileWords.createImage(image, 65536);
        int fd = openFd(image, LibC.O_RDONLY);
        BlockIoEngine engine = engine(4, 1);
        int cfd = engine.completionFd();
        assertEquals(0, Syscalls.pollIn(new int[] {cfd}, 0), "idle engine: completion fd not readable");
        assertEquals(0, engine.reap((u, r) -> fail("no completion expected")), "idle reap returns 0");
        ByteBuffer a = ByteBuffer.allocateDirect(4096);
        engine.readv(fd, 0, engine.vector().add(a, 0, 4096), 5);
        engine.submit();
        assertEquals(1, Syscalls.pollIn(new int[] {cfd}, STUCK_MS), "completion fd readable after a completion");
        List<Completion> got = new ArrayList<>();
        assertEquals(1, engine.reap((u, r) -> got.add(new Completion(u, r))));
        assertEquals(List.of(new Completion(5, 4096)), got);
        assertEquals(0, Syscalls.pollIn(new int[] {cfd}, 0), "reap resets the completion fd");
    }

    /**
     * {@link BlockIoEngine#reapReady} delivers without touching the completion fd;
     * {@link BlockIoEngine#resetCompletionFd} resets it, and a later completion makes it readable again: the owner
     * that sleeps on the fd loses nothing.
     */
    @Test
    void reapReadyLeavesTheCompletionFdAndResetClearsIt() throws IOException {
        Path image = dir.resolve("image");
        FileWords.createImage(image, 65536);
        int fd = openFd(image, LibC.O_RDONLY);
        BlockIoEngine engine = engine(4, 1);
        int cfd = engine.completionFd();
        ByteBuffer a = ByteBuffer.allocateDirect(4096);
        engine.readv(fd, 0, engine.vector().add(a, 0, 4096), 5);
        engine.submit();
        assertEquals(1, Syscalls.pollIn(new int[] {cfd}, STUCK_MS), "completion fd readable after a completion");
        assertEquals(List.of(new Completion(5, 4096)), reapReadyUntilSome(engine));
        assertFalse(engine.completionsReady(), "nothing left");
        assertEquals(1, Syscalls.pollIn(new int[] {cfd}, 0), "reapReady leaves the fd readable");
        engine.resetCompletionFd();
        assertEquals(0, Syscalls.pollIn(new int[] {cfd}, 0), "reset");
        engine.readv(fd, 4096, engine.vector().add(a, 0, 4096), 6);
        engine.submit();
        assertEquals(1, Syscalls.pollIn(new int[] {cfd}, STUCK_MS), "readable again after the next completion");
        assertEquals(List.of(new Completion(6, 4096)), reapReadyUntilSome(engine));
        FileWords.check(a, 0, 4096, FileWords.IMAGE, 4096, "second read");
    }

    /** Reaps with {@link BlockIoEngine#reapReady} until something was delivered (the caller knows it was posted). */
    private static List<Completion> reapReadyUntilSome(BlockIoEngine engine) throws IOException {
        List<Completion> got = new ArrayList<>();
        while (got.isEmpty()) {
            engine.reapReady((u, r) -> got.add(new Completion(u, r)));
        }
        return got;
    }

    @Test
    void burstLargerThanTheQueueCompletesWithBackpressure() throws IOException {
        Path image = dir.resolve("image");
        FileWords.createImage(image, 1 << 20);
        int fd = openFd(image, LibC.O_RDONLY);
        int depth = 8;
        BlockIoEngine engine = engine(depth, 2);
        int total = 1000;
        ByteBuffer[] buffers = new ByteBuffer[depth * 2];
        for (int i = 0; i < buffers.length; i++) {
            buffers[i] = ByteBuffer.allocateDirect(4096);
        }
        boolean[] seen = new boolean[total];
        int[] next = {0};
        int[] completed = {0};
        // Reads of the same 8 KiB (two segments) into shared buffers: only results and userData are checked here.
        while (completed[0] < total) {
            while (engine.available() > 0 && next[0] < total) {
                int i = next[0]++;
                IoVector v = engine.vector().add(buffers[(2 * i) % buffers.length], 0, 4096)
                        .add(buffers[(2 * i + 1) % buffers.length], 0, 4096);
                engine.readv(fd, 4096L * (i % 200), v, i);
            }
            if (engine.available() == 0) {
                assertThrows(IllegalStateException.class, engine::vector, "a full engine refuses another operation");
            }
            engine.submit();
            engine.reap((u, r) -> {
                assertEquals(8192, r, "read " + u);
                assertTrue(!seen[(int) u], "one completion per operation: userData=" + u);
                seen[(int) u] = true;
                completed[0]++;
            });
            if (engine.inFlight() == depth) {
                assertTrue(Syscalls.pollIn(new int[] {engine.completionFd()}, STUCK_MS) != 0, "engine stuck");
            }
            assertTrue(engine.inFlight() <= depth, "in flight within capacity");
        }
        assertEquals(0, engine.inFlight());
        afterBurst(engine);
    }

    @Test
    void aFullEngineRefusesEveryKindOfOperation() throws IOException {
        Path image = dir.resolve("image");
        FileWords.createImage(image, 65536);
        int fd = openFd(image, LibC.O_RDWR);
        BlockIoEngine engine = engine(2, 1);
        assertEquals(2, engine.capacity());
        ByteBuffer a = ByteBuffer.allocateDirect(4096);
        engine.readv(fd, 0, engine.vector().add(a, 0, 4096), 1);
        engine.fsync(fd, true, 2);
        assertEquals(0, engine.available());
        assertThrows(IllegalStateException.class, engine::vector);
        assertThrows(IllegalStateException.class, () -> engine.fsync(fd, true, 3));
        assertThrows(IllegalStateException.class,
                () -> engine.fallocate(fd, BlockIoEngine.FALLOCATE_PUNCH_HOLE, 0, 4096, 4));
        engine.submit();
        assertEquals(2, awaitCompletions(engine, 2).size());
        assertEquals(2, engine.available());
    }

    @Test
    void theReservedVectorIsReusedUntilUsedAndOnlyItIsAccepted() throws IOException {
        Path image = dir.resolve("image");
        FileWords.createImage(image, 65536);
        int fd = openFd(image, LibC.O_RDONLY);
        BlockIoEngine engine = engine(4, 2);
        BlockIoEngine other = engine(4, 2);
        ByteBuffer a = ByteBuffer.allocateDirect(4096);
        IoVector v = engine.vector().add(a, 0, 4096);
        assertSame(v, engine.vector(), "vector() before use returns the reserved vector");
        assertEquals(0, v.segments(), "... emptied");
        assertEquals(1, engine.inFlight(), "a reserved vector holds a slot");
        assertThrows(IllegalArgumentException.class, () -> engine.readv(fd, 0, v, 1), "empty vector");
        v.add(a, 0, 4096);
        assertThrows(IllegalArgumentException.class, () -> engine.readv(fd, -4096, v, 1), "negative offset");
        IoVector foreign = other.vector().add(a, 0, 4096);
        assertThrows(IllegalArgumentException.class, () -> engine.readv(fd, 0, foreign, 1), "another engine's vector");
        v.add(a, 0, 8);
        assertThrows(IllegalStateException.class, () -> v.add(a, 0, 8), "more than maxSegments");
        assertThrows(IndexOutOfBoundsException.class, () -> v.add(a, 4000, 200), "segment outside its buffer");
        engine.readv(fd, 0, v, 1);
        assertThrows(IllegalArgumentException.class, () -> engine.readv(fd, 0, v, 2), "a vector already in use");
        engine.submit();
        assertEquals(new Completion(1, 4104), awaitOne(engine));
    }

    @Test
    void aReadThatReachesEndOfFileIsAnError() throws IOException {
        Path image = dir.resolve("image");
        FileWords.createImage(image, 10000);
        int fd = openFd(image, LibC.O_RDONLY);
        BlockIoEngine engine = engine(4, 2);
        ByteBuffer a = ByteBuffer.allocateDirect(4096);
        ByteBuffer b = ByteBuffer.allocateDirect(4096);
        // 8 KiB from 8192: the file ends 1808 bytes in. The first transfer is short, the continuation reads nothing.
        engine.readv(fd, 8192, engine.vector().add(a, 0, 4096).add(b, 0, 4096), 1);
        // Entirely past the end.
        engine.readv(fd, 16384, engine.vector().add(ByteBuffer.allocateDirect(512), 0, 512), 2);
        engine.submit();
        Map<Long, Long> results = new HashMap<>();
        for (Completion c : awaitCompletions(engine, 2)) {
            results.put(c.userData(), c.result());
        }
        assertEquals(Map.of(1L, BlockIoEngine.SHORT_READ_AT_EOF, 2L, BlockIoEngine.SHORT_READ_AT_EOF), results);
        FileWords.check(a, 0, 1808, FileWords.IMAGE, 8192, "the bytes before end of file");
    }

    @Test
    void fallocatePunchesAHoleThatReadsAsZeros() throws IOException {
        Path image = dir.resolve("image");
        FileWords.createImage(image, 65536);
        int fd = openFd(image, LibC.O_RDWR);
        BlockIoEngine engine = engine(4, 1);
        engine.fallocate(fd, BlockIoEngine.FALLOCATE_PUNCH_HOLE, 8192, 8192, 9);
        engine.submit();
        Completion c = awaitOne(engine);
        assertEquals(9, c.userData());
        Assumptions.assumeTrue(c.result() != -LibC.EOPNOTSUPP, "the filesystem cannot punch holes");
        assertEquals(0, c.result());
        ByteBuffer back = FileWords.read(image, 4096, 16384);
        FileWords.check(back, 0, 4096, FileWords.IMAGE, 4096, "before the hole");
        for (int i = 4096; i < 12288; i += 8) {
            assertEquals(0, back.getLong(i), "hole at file offset " + (4096 + i));
        }
        FileWords.check(back, 12288, 4096, FileWords.IMAGE, 16384, "after the hole");
        assertEquals(65536, Files.size(image), "FALLOC_FL_KEEP_SIZE keeps the size");
    }

    @Test
    void directIoWithAlignedBuffersRoundTrips() throws IOException {
        // tmpfs (often /tmp) refuses O_DIRECT; the build directory is on a real filesystem.
        Path buildDir = Path.of("target");
        Files.createDirectories(buildDir);
        Path image = Files.createTempFile(buildDir, "aio-direct", ".img");
        try {
            FileWords.createImage(image, 1 << 20);
            int fd;
            try {
                fd = openFd(image, LibC.O_RDWR | LibC.O_DIRECT);
            } catch (ErrnoException e) {
                Assumptions.abort("the filesystem of " + buildDir.toAbsolutePath() + " refuses O_DIRECT: "
                        + e.getMessage());
                return;
            }
            BlockIoEngine engine = engine(4, 17);
            ByteBuffer out = FileWords.aligned(65536, 4096);
            IoVector w = engine.vector();
            for (int s = 0; s < 16; s++) {
                FileWords.fill(out, s * 4096, 4096, FileWords.WRITTEN, 262144 + s * 4096);
                w.add(out, s * 4096, 4096);
            }
            engine.writev(fd, 262144, w, 1);
            engine.submit();
            assertEquals(new Completion(1, 65536), awaitOne(engine));
            // Read back the page before the write and the 16 written, into separate aligned pages in reverse order.
            ByteBuffer in = FileWords.aligned(17 * 4096, 4096);
            IoVector r = engine.vector();
            for (int s = 16; s >= 0; s--) {
                r.add(in, s * 4096, 4096);
            }
            engine.readv(fd, 258048, r, 2);
            engine.submit();
            assertEquals(new Completion(2, 17 * 4096), awaitOne(engine));
            FileWords.check(in, 16 * 4096, 4096, FileWords.IMAGE, 258048, "page before the write");
            for (int s = 1; s <= 16; s++) {
                FileWords.check(in, (16 - s) * 4096, 4096, FileWords.WRITTEN, 258048 + s * 4096L, "page " + s);
            }
        } finally {
            Files.deleteIfExists(image);
        }
    }
}
