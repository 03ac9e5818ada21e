package io.jtap.blkback;

import io.jtap.ring.blkif.Blkif;
import io.jtap.ring.blkif.BlkifAbi;
import io.jtap.testkit.blkfront.SimulatedBlkfront;
import io.jtap.testkit.blkfront.SimulatedBlkfront.Features;
import io.jtap.testkit.blkfront.SimulatedBlkfront.Request;
import io.jtap.xen.sim.SimulatedXen;
import io.jtap.xen.sim.SimulatedXenExtension;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Seeded random reads, writes, barriers, discards (plain and secure) and flushes, many in flight across the queues,
 * checked against a reference model of the disk; then disconnect, reconnect and verify the whole disk again. Each
 * configuration combines an image format, a backend grant mode and frontend features. The seed is printed; rerun
 * one with {@code -Djtap.seed=N}.
 */
@ExtendWith(SimulatedXenExtension.class)
class ModelBasedTest {
    private static final int SIZE = 8 << 20;
    private static final int SECTORS = SIZE / 512;
    private static final int OPS = 600;
    private BlkbackFixture fx;

    @BeforeEach
    void setUp(SimulatedXen xen, @TempDir Path dir) throws Exception {
        fx = new BlkbackFixture(xen, dir);
    }

    @AfterEach
    void tearDown() throws Exception {
        fx.close();
    }

    static Stream<Arguments> configurations() {
        Features d = Features.defaults();
        String uring = BlkbackConfig.IO_ENGINE_IO_URING;
        String pool = BlkbackConfig.IO_ENGINE_POOL;
        return Stream.of(
                Arguments.of("raw", GrantMode.PERSISTENT, uring, d),
                Arguments.of("raw", GrantMode.PERSISTENT, pool, d.withQueues(2)),
                Arguments.of("raw", GrantMode.PERSISTENT, uring, d.withPersistent(false).withIndirect(0).withQueues(4)),
                Arguments.of("raw", GrantMode.COPY, uring, d.withQueues(4).withRingPageOrder(2)),
                Arguments.of("raw", GrantMode.MAP, uring, d.withAbi(BlkifAbi.X86_32).withQueues(2)),
                Arguments.of("qcow2", GrantMode.PERSISTENT, uring, d.withQueues(4).withRingPageOrder(1)),
                Arguments.of("qcow2", GrantMode.MAP, pool, d.withPersistent(false).withQueues(2)),
                Arguments.of("qcow2", GrantMode.MAP, uring, d.withIndirect(0).withAbi(BlkifAbi.X86_32)),
                Arguments.of("qcow2", GrantMode.COPY, uring, d.withPersistent(false)));
    }

    @ParameterizedTest(name = "{0} {1} {2} {3}")
    @MethodSource("configurations")
    void randomOperationsMatchTheModel(String format, GrantMode mode, String engine, Features features)
            throws Exception {
        long seed = Long.getLong("jtap.seed", System.nanoTime());
        System.out.println("ModelBasedTest " + format + " " + mode + " " + engine + " " + features + ": seed=" + seed);
        Random rnd = new Random(seed);
        Path image = fx.createImage(format, "disk." + format, SIZE);
        BlkbackConfig config = BlkbackConfig.defaults().withGrantMode(mode).withIoEngine(engine);
        BlkbackFixture.Device d = fx.addDevice(format + ":" + image, "w", "disk", config.withMaxPersistentGrants(64));
        SimulatedBlkfront f = fx.frontend(d, features);
        f.connect();
        Model model = new Model();
        int maxSectors = f.indirectSegments() > 0 ? 200 * 8 : 11 * 8;
        try {
            int op = 0;
            while (op < OPS) {
                // A batch of requests in flight at once, non-overlapping, spread over the queues.
                int batch = 1 + rnd.nextInt(12);
                BitSet busy = new BitSet(SECTORS);
                List<Runnable> checks = new ArrayList<>();
                List<Request> requests = new ArrayList<>();
                for (int i = 0; i < batch; i++, op++) {
                    int q = rnd.nextInt(f.queueCount());
                    int kind = rnd.nextInt(20);
                    if (kind == 0) {
                        requests.add(f.submitFlush(q));
                        continue;
                    }
                    int count = 1 + rnd.nextInt(rnd.nextInt(4) == 0 ? maxSectors - 7 : 16);
                    long sector = rnd.nextInt(SECTORS - count + 1);
                    if (busy.get((int) sector, (int) sector + count).cardinality() > 0) {
                        continue;
                    }
                    busy.set((int) sector, (int) sector + count);
                    int firstSect = rnd.nextInt(8);
                    if (kind < 8) {
                        Request r = f.submitRead(q, sector, count, firstSect);
                        requests.add(r);
                        byte[] expected = model.read(sector, count);
                        BitSet undefined = model.undefined(sector, count);
                        checks.add(() -> model.check(r, sector, expected, undefined));
                    } else if (kind < 16) {
                        byte[] data = BlkbackFixture.pattern(sector * 512, count * 512, op);
                        // A barrier is always a direct request (indirect_op is READ or WRITE only).
                        boolean direct = (firstSect + count + 7) / 8 <= Blkif.BLKIF_MAX_SEGMENTS_PER_REQUEST;
                        int operation = kind == 15 && direct ? Blkif.BLKIF_OP_WRITE_BARRIER : Blkif.BLKIF_OP_WRITE;
                        requests.add(f.submitWrite(q, operation, sector, data, firstSect));
                        model.write(sector, data);
                    } else {
                        boolean secure = kind == 19;
                        requests.add(f.submitDiscard(q, sector, count, secure));
                        model.discard(sector, count, secure);
                    }
                }
                for (Request r : requests) {
                    assertEquals(Blkif.BLKIF_RSP_OKAY, f.await(r), "status of request " + r.id() + ", seed=" + seed);
                }
                checks.forEach(Runnable::run);
            }
            if (engine.equals(BlkbackConfig.IO_ENGINE_IO_URING)) {
                org.junit.jupiter.api.Assertions.assertTrue(d.backend().engineReads() > 0, "reads through io_uring");
                org.junit.jupiter.api.Assertions.assertTrue(d.backend().engineWrites() > 0, "writes through io_uring");
            } else {
                assertEquals(0, d.backend().engineReads(), "reads through io_uring");
                assertEquals(0, d.backend().engineWrites(), "writes through io_uring");
            }
            f.disconnect();
            f.reconnect();
            int chunk = f.indirectSegments() > 0 ? 256 : 64;
            for (long s = 0; s < SECTORS; s += chunk) {
                Request r = f.submitRead(0, s, chunk, 0);
                f.await(r);
                model.check(r, s, model.read(s, chunk), model.undefined(s, chunk));
            }
            f.disconnect();
        } catch (AssertionError | Exception e) {
            throw new AssertionError("seed=" + seed + ": " + e.getMessage(), e);
        }
        assertEquals(0, f.grantsStillMapped(), "grants the backend kept mapped");
    }

    /** The reference disk: bytes, plus the sectors a plain discard left undefined. */
    private static final class Model {
        final byte[] disk = new byte[SIZE];
        final BitSet undefined = new BitSet(SECTORS);

        byte[] read(long sector, int count) {
            return Arrays.copyOfRange(disk, (int) sector * 512, (int) (sector + count) * 512);
        }

        BitSet undefined(long sector, int count) {
            return undefined.get((int) sector, (int) sector + count);
        }

        void write(long sector, byte[] data) {
            System.arraycopy(data, 0, disk, (int) sector * 512, data.length);
            undefined.clear((int) sector, (int) sector + data.length / 512);
        }

        void discard(long sector, int count, boolean secure) {
            Arrays.fill(disk, (int) sector * 512, (int) (sector + count) * 512, (byte) 0);
            if (secure) {
                undefined.clear((int) sector, (int) sector + count);
            } else {
                // Image.discard is advisory: zeros, backing data or the old contents.
                undefined.set((int) sector, (int) sector + count);
            }
        }

        void check(Request r, long sector, byte[] expected, BitSet undefinedSectors) {
            assertEquals(Blkif.BLKIF_RSP_OKAY, r.status());
            byte[] got = r.data();
            for (int s = 0; s < expected.length / 512; s++) {
                if (undefinedSectors.get(s)) {
                    continue;
                }
                if (!Arrays.equals(got, s * 512, s * 512 + 512, expected, s * 512, s * 512 + 512)) {
                    long at = (sector + s) * 512;
                    long word = java.nio.ByteBuffer.wrap(got, s * 512, 8).order(java.nio.ByteOrder.LITTLE_ENDIAN)
                            .getLong();
                    fail("mismatch at byte " + at + ": read word 0x" + Long.toHexString(word)
                            + " (tag " + (word >>> 48) + ", offset " + (word & 0xffff_ffff_ffffL) + ")");
                }
            }
        }
    }
}
