package io.jtap.aio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.xen.linux.LibC;
import io.jtap.xen.linux.Syscalls;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The block IO contract against io_uring, plus what only io_uring has: ring sizes and its overflow counter. */
class LinuxIoUringTest extends BlockIoEngineContract {
    @BeforeEach
    void assumeIoUring() {
        if (!LinuxIoUring.isAvailable()) {
            String reason = "io_uring unavailable, skipping: " + LinuxIoUring.unavailabilityCause().getMessage();
            System.out.println(reason);
            Assumptions.abort(reason);
        }
    }

    @Override
    BlockIoEngine open(int queueDepth, int maxSegments) throws IOException {
        return LinuxIoUring.open(queueDepth, maxSegments);
    }

    @Override
    void afterBurst(BlockIoEngine engine) {
        assertEquals(0, ((LinuxIoUring) engine).cqOverflow(), "no completion overflowed the CQ ring");
    }

    @Test
    void ringsAreAtLeastTheQueueDepthAndAPowerOfTwo() throws IOException {
        try (LinuxIoUring ring = LinuxIoUring.open(100, 4)) {
            assertEquals(100, ring.capacity());
            assertEquals(128, ring.sqEntries());
            assertEquals(128, ring.cqEntries());
            assertTrue((ring.features() & IoUringDescriptor.IORING_FEAT_NODROP) != 0
                    || ring.cqEntries() >= ring.capacity(), "the CQ holds every operation in flight");
        }
    }

    /**
     * A read from a FIFO returns what is there: the first transfer is short, the engine continues it from the
     * advanced iovec, and the caller sees one completion for the whole vector once the rest arrives. Regular files do
     * not return short reads short of end of file, so this is the way to exercise a continuation mid-vector.
     */
    @Test
    void aShortTransferIsContinuedUntilTheVectorIsFull() throws Exception {
        int fd = openFifo();
        BlockIoEngine engine = engine(4, 4);
        ByteBuffer a = ByteBuffer.allocateDirect(4096);
        ByteBuffer b = ByteBuffer.allocateDirect(4096);
        engine.readv(fd, 0, engine.vector().add(a, 0, 4096).add(b, 0, 4096), 77);
        ByteBuffer data = ByteBuffer.allocateDirect(8192);
        FileWords.fill(data, 0, 8192, FileWords.WRITTEN, 0);
        long dataAddress = IoVector.addressOf(data);
        submitAndSeeTheShortFirstTransferContinued(engine, fd, dataAddress, 1000);
        assertEquals(1, engine.inFlight(), "the continuation holds the slot");
        Syscalls.write(fd, new com.sun.jna.Pointer(dataAddress + 1000), 8192 - 1000);
        assertEquals(new Completion(77, 8192), awaitOne(engine));
        FileWords.check(a, 0, 4096, FileWords.WRITTEN, 0, "first segment");
        FileWords.check(b, 0, 4096, FileWords.WRITTEN, 4096, "second segment");
    }

    /**
     * A one-buffer transfer goes out as {@code IORING_OP_READ}/{@code WRITE}, not as a vector of one: a short first
     * read is continued from the advanced buffer, and a one-buffer write lands where it should.
     */
    @Test
    void aOneBufferTransferIsContinuedFromItsAdvancedBuffer() throws Exception {
        int fd = openFifo();
        LinuxIoUring engine = (LinuxIoUring) engine(4, 4);
        assertTrue(engine.singleBufferOps(), "this kernel (5.6 or later) has IORING_OP_READ and IORING_OP_WRITE");
        ByteBuffer a = ByteBuffer.allocateDirect(4096);
        engine.readv(fd, 0, engine.vector().add(a, 0, 4096), 78);
        ByteBuffer data = ByteBuffer.allocateDirect(4096);
        FileWords.fill(data, 0, 4096, FileWords.WRITTEN, 0);
        long dataAddress = IoVector.addressOf(data);
        submitAndSeeTheShortFirstTransferContinued(engine, fd, dataAddress, 1500);
        Syscalls.write(fd, new com.sun.jna.Pointer(dataAddress + 1500), 4096 - 1500);
        assertEquals(new Completion(78, 4096), awaitOne(engine));
        FileWords.check(a, 0, 4096, FileWords.WRITTEN, 0, "the one buffer");

        Path image = dir.resolve("image");
        FileWords.createImage(image, 16384);
        int rw = openFd(image, LibC.O_RDWR);
        engine.writev(rw, 8192, engine.vector().add(data, 0, 4096), 79);
        engine.submit();
        assertEquals(new Completion(79, 4096), awaitOne(engine));
        ByteBuffer back = ByteBuffer.allocateDirect(4096);
        engine.readv(rw, 8192, engine.vector().add(back, 0, 4096), 80);
        engine.submit();
        assertEquals(new Completion(80, 4096), awaitOne(engine));
        FileWords.check(back, 0, 4096, FileWords.WRITTEN, 0, "the one-buffer write, read back");
    }

    /** A FIFO opened O_RDWR: that does not block on Linux and keeps a writer, so reads wait for data, not EOF. */
    private int openFifo() throws Exception {
        Path fifo = dir.resolve("fifo");
        Process mkfifo = new ProcessBuilder("mkfifo", fifo.toString()).inheritIO().start();
        Assumptions.assumeTrue(mkfifo.waitFor() == 0, "mkfifo failed");
        return openFd(fifo, LibC.O_RDWR);
    }

    /**
     * Puts {@code first} bytes from {@code data} into the FIFO, submits the queued read and checks that its short
     * first transfer completed in the kernel but was continued, not delivered.
     */
    private static void submitAndSeeTheShortFirstTransferContinued(BlockIoEngine engine, int fd, long data, int first)
            throws Exception {
        Syscalls.write(fd, new com.sun.jna.Pointer(data), first);
        engine.submit();
        List<Completion> got = new ArrayList<>();
        assertTrue(Syscalls.pollIn(new int[] {engine.completionFd()}, 30_000) != 0,
                "the short first transfer completes");
        assertEquals(0, engine.reap((u, r) -> got.add(new Completion(u, r))), "... and is continued, not delivered");
        assertEquals(List.of(), got);
    }
}
