package io.jtap.blkback;

import io.jtap.ring.blkif.Blkif;
import io.jtap.ring.blkif.BlkifAbi;
import io.jtap.ring.blkif.BlkifRequestDescriptor;
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
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Hand-made requests, each checked for the status Linux blkback would answer: unknown operations, segment counts,
 * sector bounds within a page, ranges beyond the disk, grants the guest does not give, lying indirect requests,
 * and writes to read-only devices. After every bad request the ring keeps working.
 */
@ExtendWith(SimulatedXenExtension.class)
class RequestValidationTest {
    private static final long SIZE = 1 << 20;
    private static final long SECTORS = SIZE / 512;
    private static final long ID = 0x1234_5678_9abcL;
    private BlkbackFixture fx;

    @BeforeEach
    void setUp(SimulatedXen xen, @TempDir Path dir) throws Exception {
        fx = new BlkbackFixture(xen, dir);
    }

    @AfterEach
    void tearDown() throws Exception {
        fx.close();
    }

    /** Writes one request into a slot. */
    @FunctionalInterface
    interface SlotWriter {
        void write(ByteBuffer ring, int slot, Refs refs);
    }

    /** A granted data page and a granted indirect page (whose buffer the writer may fill). */
    record Refs(int data, int indirect, ByteBuffer indirectPage) {
    }

    private static final BlkifRequestDescriptor RQ = BlkifAbi.X86_64.request();

    private static SlotWriter rw(int op, int nseg, long sector, int first, int last, boolean goodRef) {
        return (ring, slot, refs) -> {
            RQ.put(ring, slot, op, nseg, 0, ID, sector);
            for (int i = 0; i < Math.min(nseg, 11); i++) {
                BlkifSegmentDescriptor.put(ring, RQ.segmentOffset(slot, i), goodRef ? refs.data() : 99_999, first,
                        last);
            }
        };
    }

    private static SlotWriter indirect(int indirectOp, int nseg, int last, boolean goodPage) {
        return (ring, slot, refs) -> {
            BlkifAbi.X86_64.indirectRequest().put(ring, slot, indirectOp, nseg, ID, 0, 0);
            BlkifAbi.X86_64.indirectRequest().putIndirectGref(ring, slot, 0, goodPage ? refs.indirect() : 77_777);
            for (int i = 0; i < Math.min(nseg, 512); i++) {
                BlkifSegmentDescriptor.put(refs.indirectPage(), i * 8, refs.data(), 0, last);
            }
        };
    }

    static Stream<Arguments> cases() {
        int ok = Blkif.BLKIF_RSP_OKAY;
        int err = Blkif.BLKIF_RSP_ERROR;
        int unsupported = Blkif.BLKIF_RSP_EOPNOTSUPP;
        return Stream.of(
                Arguments.of("good read", rw(0, 1, 0, 0, 7, true), "w", ok, 0),
                Arguments.of("good write", rw(1, 11, 8, 0, 7, true), "w", ok, 1),
                Arguments.of("unknown operation 9", rw(9, 1, 0, 0, 7, true), "w", unsupported, 9),
                Arguments.of("reserved operation 4", rw(4, 1, 0, 0, 7, true), "w", unsupported, 4),
                Arguments.of("read without segments", rw(0, 0, 0, 0, 7, true), "w", err, 0),
                Arguments.of("12 direct segments", rw(0, 12, 0, 0, 7, true), "w", err, 0),
                Arguments.of("first_sect after last_sect", rw(0, 1, 0, 3, 2, true), "w", err, 0),
                Arguments.of("last_sect 8", rw(0, 1, 0, 0, 8, true), "w", err, 0),
                Arguments.of("last_sect 255", rw(1, 1, 0, 0, 255, true), "w", err, 1),
                Arguments.of("last sector beyond the disk", rw(0, 1, SECTORS - 7, 0, 7, true), "w", err, 0),
                Arguments.of("sector 2^64-1", rw(0, 1, -1L, 0, 0, true), "w", err, 0),
                Arguments.of("sector wraps", rw(0, 1, Long.MAX_VALUE, 0, 7, true), "w", err, 0),
                Arguments.of("gref not granted", rw(1, 1, 0, 0, 7, false), "w", err, 1),
                Arguments.of("flush without segments", rw(3, 0, 0, 0, 0, true), "w", ok, 3),
                Arguments.of("indirect read", indirect(0, 20, 7, true), "w", ok, 0),
                Arguments.of("indirect flush", indirect(3, 20, 7, true), "w", err, 3),
                Arguments.of("indirect 0 segments", indirect(0, 0, 7, true), "w", err, 0),
                Arguments.of("indirect 257 segments", indirect(0, 257, 7, true), "w", err, 0),
                Arguments.of("indirect page not granted", indirect(1, 20, 7, false), "w", err, 1),
                Arguments.of("indirect page lies (last_sect 9)", indirect(0, 20, 9, true), "w", err, 0),
                Arguments.of("discard beyond the disk", (SlotWriter) (ring, slot, refs) ->
                        BlkifAbi.X86_64.discardRequest().put(ring, slot, 0, 0, ID, SECTORS - 1, 2), "w", err, 5),
                Arguments.of("discard wraps", (SlotWriter) (ring, slot, refs) ->
                        BlkifAbi.X86_64.discardRequest().put(ring, slot, 0, 0, ID, 8, -1L), "w", err, 5),
                Arguments.of("read-only: read", rw(0, 1, 0, 0, 7, true), "r", ok, 0),
                Arguments.of("read-only: write", rw(1, 1, 0, 0, 7, true), "r", err, 1),
                Arguments.of("read-only: barrier", rw(2, 1, 0, 0, 7, true), "r", err, 2),
                Arguments.of("read-only: flush", rw(3, 0, 0, 0, 0, true), "r", err, 3),
                Arguments.of("read-only: indirect write", indirect(1, 20, 7, true), "r", err, 1),
                Arguments.of("read-only: discard", (SlotWriter) (ring, slot, refs) ->
                        BlkifAbi.X86_64.discardRequest().put(ring, slot, 0, 0, ID, 0, 8), "r", err, 5));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void requestGetsTheExpectedStatus(String name, SlotWriter writer, String mode, int status, int operation)
            throws Exception {
        Path image = fx.createImage("raw", "disk.raw", SIZE);
        BlkbackFixture.Device d = fx.addDevice(image.toString(), mode, "disk", BlkbackConfig.defaults());
        SimulatedBlkfront f = fx.frontend(d, Features.defaults());
        f.connect();
        ByteBuffer[] page = new ByteBuffer[1];
        int dataRef = f.grantScratchPage(page);
        ByteBuffer[] indirectPage = new ByteBuffer[1];
        int indirectRef = f.grantScratchPage(indirectPage);
        int slot = f.rawSlot(0);
        writer.write(f.ringBuffer(0), slot, new Refs(dataRef, indirectRef, indirectPage[0]));
        f.pushRaw(0);
        List<RawResponse> responses = f.awaitRawResponses(1);
        assertEquals(1, responses.size());
        assertEquals(ID, responses.get(0).id());
        assertEquals(status, responses.get(0).status(), name);
        assertEquals(operation, responses.get(0).operation(), name);
        // The ring still works.
        byte[] back = f.read(0, 0, 8);
        assertEquals(4096, back.length);
        f.disconnect();
        assertEquals(0, f.grantsStillMapped());
    }
}
