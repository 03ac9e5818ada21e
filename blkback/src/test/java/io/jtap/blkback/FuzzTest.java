package io.jtap.blkback;

import io.jtap.ring.blkif.Blkif;
import io.jtap.ring.blkif.BlkifAbi;
import io.jtap.ring.blkif.BlkifSegmentDescriptor;
import io.jtap.testkit.blkfront.SimulatedBlkfront;
import io.jtap.testkit.blkfront.SimulatedBlkfront.Features;
import io.jtap.testkit.blkfront.SimulatedBlkfront.RawResponse;
import io.jtap.xen.sim.SimulatedXen;
import io.jtap.xen.sim.SimulatedXenExtension;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A hostile guest: seeded random bytes in ring slots (sometimes shaped like real requests with real grants),
 * random indirect pages, and finally a bogus producer index. The backend answers every slot with OKAY, ERROR or
 * EOPNOTSUPP, writes nothing outside the guest's image, halts only the broken ring (device to Closing), keeps a
 * second device serving, and leaks no mapping (the extension checks after each test). Rerun a seed with
 * {@code -Djtap.seed=N}.
 */
@ExtendWith(SimulatedXenExtension.class)
class FuzzTest {
    private static final long SIZE = 1 << 20;
    private static final int ROUNDS = 150;
    private static final Set<Integer> STATUSES =
            Set.of(Blkif.BLKIF_RSP_OKAY, Blkif.BLKIF_RSP_ERROR, Blkif.BLKIF_RSP_EOPNOTSUPP);
    private BlkbackFixture fx;

    @BeforeEach
    void setUp(SimulatedXen xen, @TempDir Path dir) throws Exception {
        fx = new BlkbackFixture(xen, dir);
    }

    @AfterEach
    void tearDown() throws Exception {
        fx.close();
    }

    static Stream<Arguments> modes() {
        return Stream.of(Arguments.of(GrantMode.PERSISTENT, BlkifAbi.X86_64),
                Arguments.of(GrantMode.MAP, BlkifAbi.X86_32),
                Arguments.of(GrantMode.COPY, BlkifAbi.X86_64));
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("modes")
    void hostileGuestCannotHurtTheHost(GrantMode mode, BlkifAbi abi) throws Exception {
        long seed = Long.getLong("jtap.seed", System.nanoTime());
        System.out.println("FuzzTest " + mode + " " + abi + ": seed=" + seed);
        Random rnd = new Random(seed);
        byte[] canary = new byte[65536];
        rnd.nextBytes(canary);
        Path canaryFile = fx.dir.resolve("canary");
        Files.write(canaryFile, canary);
        BlkbackConfig config = BlkbackConfig.defaults().withGrantMode(mode).withMaxPersistentGrants(8);

        Path victimImage = fx.createImage("raw", "victim.raw", SIZE);
        BlkbackFixture.Device victim = fx.addDevice(victimImage.toString(), "w", "disk", config);
        SimulatedBlkfront vf = fx.frontend(victim, Features.defaults().withAbi(abi).withRingPageOrder(1));
        vf.connect();
        Path bystanderImage = fx.createImage("qcow2", "bystander.qcow2", SIZE);
        BlkbackFixture.Device bystander = fx.addDevice("qcow2:" + bystanderImage, "w", "disk", config);
        SimulatedBlkfront bf = fx.frontend(bystander, Features.defaults());
        bf.connect();

        int[] refs = new int[4];
        ByteBuffer[] pages = new ByteBuffer[4];
        for (int i = 0; i < refs.length; i++) {
            ByteBuffer[] p = new ByteBuffer[1];
            refs[i] = vf.grantScratchPage(p);
            pages[i] = p[0];
        }
        try {
            int expected = 0;
            for (int round = 0; round < ROUNDS; round++) {
                int n = 1 + rnd.nextInt(8);
                for (int i = 0; i < n; i++) {
                    int slot = vf.rawSlot(0);
                    fillSlot(rnd, vf.ringBuffer(0), slot, abi, refs, pages);
                }
                vf.pushRaw(0);
                expected += n;
                List<RawResponse> got = vf.awaitRawResponses(expected);
                assertEquals(expected, got.size());
                if (round % 10 == 0) {
                    byte[] data = BlkbackFixture.pattern(round * 4096L, 4096, round);
                    bf.write(0, round * 8L, data);
                    assertArrayEquals(data, bf.read(0, round * 8L, 8));
                }
            }
            for (RawResponse r : vf.unexpectedResponses()) {
                assertTrue(STATUSES.contains(r.status()), "status " + r);
            }
            // The fuzzed ring still serves a proper request.
            assertEquals(4096, vf.read(0, 0, 8).length);

            // Now break the ring: a producer index far ahead of the consumer.
            vf.setRequestProducer(0, vf.ringBuffer(0).getInt(0) + 100_000);
            vf.awaitBackendState(Duration.ofSeconds(10), 5);
            assertTrue(victim.backend().lastError().contains("req_prod"), victim.backend().lastError());
            byte[] data = BlkbackFixture.pattern(8192, 8192, 99);
            bf.write(0, 16, data);
            assertArrayEquals(data, bf.read(0, 16, 16));
            vf.disconnect();
            assertEquals(0, vf.grantsStillMapped());
        } catch (AssertionError | Exception e) {
            throw new AssertionError("seed=" + seed + ": " + e.getMessage(), e);
        }
        assertArrayEquals(canary, Files.readAllBytes(canaryFile), "a file next to the image changed");
        assertEquals(SIZE, Files.size(victimImage), "the victim's image grew");
        bf.disconnect();
    }

    /** Random bytes, often shaped like a real request so that the checks past the operation byte are reached. */
    private static void fillSlot(Random rnd, ByteBuffer ring, int slot, BlkifAbi abi, int[] refs,
                                 ByteBuffer[] pages) {
        byte[] junk = new byte[abi.entryLength()];
        rnd.nextBytes(junk);
        ring.put(slot, junk);
        int shape = rnd.nextInt(4);
        if (shape == 0) {
            return; // pure garbage
        }
        int op = rnd.nextInt(8);
        ring.put(slot, (byte) op);
        long sector = rnd.nextBoolean() ? rnd.nextInt((int) (SIZE / 512)) : rnd.nextLong();
        if (op == Blkif.BLKIF_OP_INDIRECT) {
            int nseg = rnd.nextBoolean() ? 1 + rnd.nextInt(300) : rnd.nextInt(65536);
            abi.indirectRequest().put(ring, slot, rnd.nextInt(3), nseg, rnd.nextLong(), sector, 0);
            int page = rnd.nextInt(pages.length);
            abi.indirectRequest().putIndirectGref(ring, slot, 0, rnd.nextInt(8) == 0 ? rnd.nextInt() : refs[page]);
            ByteBuffer p = pages[page];
            for (int i = 0; i < 512; i++) {
                int gref = rnd.nextInt(4) == 0 ? rnd.nextInt() : refs[rnd.nextInt(refs.length)];
                int first = rnd.nextInt(10) == 0 ? rnd.nextInt(256) : rnd.nextInt(8);
                int last = rnd.nextInt(10) == 0 ? rnd.nextInt(256) : first + rnd.nextInt(8 - Math.min(first, 7));
                BlkifSegmentDescriptor.put(p, i * 8, gref, first, Math.min(last, 255));
            }
        } else if (op == Blkif.BLKIF_OP_DISCARD) {
            abi.discardRequest().put(ring, slot, rnd.nextInt(2), 0, rnd.nextLong(), sector,
                    rnd.nextBoolean() ? rnd.nextInt(64) : rnd.nextLong());
        } else {
            int nseg = rnd.nextInt(14);
            abi.request().put(ring, slot, op, nseg, 0, rnd.nextLong(), sector);
            for (int i = 0; i < Math.min(nseg, 11); i++) {
                int gref = rnd.nextInt(4) == 0 ? rnd.nextInt() : refs[rnd.nextInt(refs.length)];
                int first = rnd.nextInt(10) == 0 ? rnd.nextInt(256) : rnd.nextInt(8);
                int last = rnd.nextInt(10) == 0 ? rnd.nextInt(256) : first + rnd.nextInt(8 - Math.min(first, 7));
                BlkifSegmentDescriptor.put(ring, abi.request().segmentOffset(slot, i), gref, first,
                        Math.min(last, 255));
            }
        }
    }
}
