package io.jtap.ring;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.jtap.ring.blkif.Blkif;
import io.jtap.ring.blkif.BlkifAbi;
import io.jtap.ring.blkif.BlkifRequestDescriptor;
import io.jtap.ring.blkif.BlkifResponseDescriptor;
import io.jtap.ring.blkif.BlkifSegmentDescriptor;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The Java back ring against a block front end written with Xen's own ring.h/blkif.h macros (blkfront.c), running
 * as a child process: both map the same ring pages from a file in /dev/shm, and one byte over a pipe is one
 * event-channel kick (child stdout: to the back end, child stdin: to the front end). Each side sends a kick only
 * when the macros / methods say a notification is needed and blocks on its pipe after a final check found nothing,
 * so a lost wake-up hangs and the timeout fails the test. Indices start just below 2^32; requests and responses are
 * self-describing (see blkfront.c) and checked on both sides: order, content, no loss, no duplicate.
 */
class CFrontendInteropTest {
    private static final long ID_MAGIC = 0x5a5a_0000_0000_0000L;
    private static final Path DEV_SHM = Path.of("/dev/shm");

    @ParameterizedTest(name = "{0} order={1} total={2} start={3}")
    @CsvSource({
        "X86_64, 0, 200000, 4294967200",
        "X86_64, 4, 200000, 4294960000",
        "X86_32, 2, 200000, 4294967290",
    })
    void blkifRequestsAndResponsesCrossTheRingIntact(final Gcc.Target target, final int order, final long total,
                                                     final long start, @TempDir final Path dir)
        throws IOException, InterruptedException {
        Gcc.requireAvailable(target, dir);
        requireDevShm();
        final Path source = dir.resolve("blkfront.c");
        try (InputStream in = CFrontendInteropTest.class.getResourceAsStream("blkfront.c")) {
            Files.write(source, in.readAllBytes());
        }
        final Path frontend = Gcc.compile(source, target);
        final BlkifAbi abi = target == Gcc.Target.X86_64 ? BlkifAbi.X86_64 : BlkifAbi.X86_32;
        final long seed = new Random().nextLong() & 0x7fff_ffffL;
        final int maxBatch = 1 + abi.ringSize(order) / 2;

        final Path shm = Files.createTempFile(DEV_SHM, "jtap-ring-", ".pages");
        final Path frontLog = dir.resolve("blkfront.log");
        Process process = null;
        try {
            final MappedByteBuffer pages;
            try (FileChannel channel = FileChannel.open(shm, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                pages = channel.map(FileChannel.MapMode.READ_WRITE, 0, SharedRingDescriptor.ringBytes(order));
            }
            pages.order(ByteOrder.LITTLE_ENDIAN);
            process = new ProcessBuilder(frontend.toString(), shm.toString(), Integer.toString(order),
                Long.toString(total), Long.toString(seed), Long.toString(start), Integer.toString(maxBatch))
                .redirectError(frontLog.toFile()).start();
            final Process child = process;
            final Backend backend = new Backend(abi, order, pages, child, total, new Random(seed));
            assertTimeoutPreemptively(Duration.ofMinutes(3), backend::run,
                () -> "lost wake-up or dead front end? " + backend + ", front end: " + log(frontLog));
            assertTrue(child.waitFor(30, TimeUnit.SECONDS), "front end did not exit");
            final String frontReport = log(frontLog);
            assertEquals(0, child.exitValue(), () -> "front end failed: " + frontReport);
            System.out.println("[" + target + " order " + order + " seed " + seed + "] back end: " + backend
                + "; " + frontReport.strip());

            assertEquals((int) start, backend.attachedAt, "BACK_RING_ATTACH took rsp_prod as its start");
            assertTrue(frontReport.contains("requests=" + total + " responses=" + total), frontReport);
            // Suppression: far fewer kicks than messages, yet some, or nobody would ever have slept.
            assertTrue(backend.kicksSent > 0 && backend.kicksSent < total / 2, backend::toString);
            assertTrue(backend.kicksReceived > 0 && backend.kicksReceived < total / 2, backend::toString);
        } catch (final AssertionError e) {
            throw new AssertionError(e.getMessage() + " (seed=" + seed + ")", e);
        } finally {
            if (process != null) {
                process.destroyForcibly();
            }
            Files.deleteIfExists(shm);
        }
    }

    private static void requireDevShm() {
        if (Files.isDirectory(DEV_SHM) && Files.isWritable(DEV_SHM)) {
            return;
        }
        final String message = "/dev/shm is not a writable directory: the C front end shares ring pages through it";
        System.out.println(message);
        if ("true".equals(System.getenv("CI"))) {
            fail(message);
        }
        Assumptions.abort(message);
    }

    private static String log(final Path file) {
        try {
            return Files.exists(file) ? Files.readString(file, StandardCharsets.UTF_8) : "(no output)";
        } catch (final IOException e) {
            return "(unreadable: " + e.getMessage() + ")";
        }
    }

    /** The back end's duty cycle, as blkback will run it: poll, copy, verify, answer (in any order), push, sleep. */
    private static final class Backend {
        private final BlkifAbi abi;
        private final int order;
        private final ByteBuffer pages;
        private final InputStream kicksIn;
        private final OutputStream kicksOut;
        private final long total;
        private final Random random;
        private int attachedAt;
        private long expected;
        private long kicksSent;
        private long kicksReceived;
        private long sleeps;

        Backend(final BlkifAbi abi, final int order, final ByteBuffer pages, final Process child, final long total,
                final Random random) {
            this.abi = abi;
            this.order = order;
            this.pages = pages;
            this.kicksIn = child.getInputStream();
            this.kicksOut = child.getOutputStream();
            this.total = total;
            this.random = random;
        }

        void run() throws IOException, RingOverflowException {
            waitKick(); // the front end has initialised the ring
            kicksReceived = 0;
            final BackRing ring = BackRing.attach(pages, order, abi.entryLength());
            attachedAt = ring.requestConsumer();
            final int entryLength = abi.entryLength();
            final ByteBuffer requests = ByteBuffer.allocateDirect(ring.size() * entryLength);
            final long[] ids = new long[ring.size()];
            final int[] operations = new int[ring.size()];
            final BlkifRequestDescriptor request = abi.request();
            while (expected < total) {
                final int available = ring.pollRequests();
                if (available > 0) {
                    final int batch = 1 + random.nextInt(available);
                    for (int i = 0; i < batch; i++) {
                        final int at = i * entryLength;
                        ring.copyRequest(requests, at);
                        check(request, requests, at);
                        ids[i] = request.id(requests, at);
                        operations[i] = request.operation(requests, at);
                    }
                    // Complete in a random order, as a disk would.
                    for (int i = batch - 1; i >= 0; i--) {
                        final int j = random.nextInt(i + 1);
                        final long id = ids[j];
                        final int operation = operations[j];
                        ids[j] = ids[i];
                        operations[j] = operations[i];
                        final long seq = id ^ ID_MAGIC;
                        BlkifResponseDescriptor.put(pages, ring.nextResponseSlot(), id, operation,
                            seq % 7 == 0 ? Blkif.BLKIF_RSP_ERROR : Blkif.BLKIF_RSP_OKAY);
                    }
                    if (ring.pushResponsesAndCheckNotify()) {
                        kick();
                    }
                } else if (!ring.finalCheckForRequests()) {
                    sleeps++;
                    waitKick();
                }
            }
        }

        private void check(final BlkifRequestDescriptor request, final ByteBuffer buffer, final int at) {
            final long seq = expected;
            final long id = request.id(buffer, at);
            if (id != (seq ^ ID_MAGIC)) {
                throw new AssertionError("request lost, duplicated or reordered: expected seq=" + seq + ", got seq="
                    + (id ^ ID_MAGIC));
            }
            assertEquals(seq % 2 == 0 ? Blkif.BLKIF_OP_READ : Blkif.BLKIF_OP_WRITE, request.operation(buffer, at));
            assertEquals(seq * 8 + 3, request.sectorNumber(buffer, at), "sector_number");
            assertEquals((int) (seq & 0xffff), request.handle(buffer, at), "handle");
            final int segments = (int) (seq % (Blkif.BLKIF_MAX_SEGMENTS_PER_REQUEST + 1));
            assertEquals(segments, request.nrSegments(buffer, at), "nr_segments");
            for (int i = 0; i < segments; i++) {
                final int segment = request.segmentOffset(at, i);
                if (BlkifSegmentDescriptor.gref(buffer, segment) != (int) (seq * 16 + i)
                    || BlkifSegmentDescriptor.firstSect(buffer, segment) != i % 8
                    || BlkifSegmentDescriptor.lastSect(buffer, segment) != 7) {
                    throw new AssertionError("segment " + i + " of seq=" + seq + " garbled");
                }
            }
            expected++;
        }

        private void kick() throws IOException {
            kicksOut.write('k');
            kicksOut.flush();
            kicksSent++;
        }

        private void waitKick() throws IOException {
            if (kicksIn.read() < 0) {
                throw new UncheckedIOException(new IOException("front end closed its event channel"));
            }
            kicksReceived++;
        }

        @Override
        public String toString() {
            return "requests=" + expected + ", kicksSent=" + kicksSent + ", kicksReceived=" + kicksReceived
                + ", sleeps=" + sleeps;
        }
    }
}
