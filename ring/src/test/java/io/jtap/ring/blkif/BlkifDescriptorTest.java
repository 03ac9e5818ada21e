package io.jtap.ring.blkif;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.ByteBuffer;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Round trips through the blkif accessors in both ABIs, with a distinct value in every field so that a field
 * written at the wrong offset or width shows up as a neighbour's wrong value; the bytes past the struct stay
 * untouched. (The C interop test reads requests a real C front end wrote, in both ABIs.)
 */
class BlkifDescriptorTest {
    private static final int AT = 5;

    private static ByteBuffer canaries() {
        final ByteBuffer buffer = ByteBuffer.allocate(256);
        for (int i = 0; i < buffer.capacity(); i++) {
            buffer.put(i, (byte) 0xee);
        }
        return buffer;
    }

    private static void assertCanariesAfter(final ByteBuffer buffer, final int end) {
        assertEquals((byte) 0xee, buffer.get(AT - 1), "byte before the struct");
        for (int i = end; i < buffer.capacity(); i++) {
            assertEquals((byte) 0xee, buffer.get(i), "byte after the struct at " + i);
        }
    }

    @ParameterizedTest
    @EnumSource(BlkifAbi.class)
    void request(final BlkifAbi abi) {
        final ByteBuffer b = canaries();
        final BlkifRequestDescriptor r = abi.request();
        r.put(b, AT, Blkif.BLKIF_OP_WRITE, Blkif.BLKIF_MAX_SEGMENTS_PER_REQUEST, 0xfffe, 0x8877665544332211L,
            0x0102030405060708L);
        for (int i = 0; i < Blkif.BLKIF_MAX_SEGMENTS_PER_REQUEST; i++) {
            BlkifSegmentDescriptor.put(b, r.segmentOffset(AT, i), 0xf0000000 | i, i, 7);
        }
        assertEquals(Blkif.BLKIF_OP_WRITE, r.operation(b, AT));
        assertEquals(Blkif.BLKIF_MAX_SEGMENTS_PER_REQUEST, r.nrSegments(b, AT));
        assertEquals(0xfffe, r.handle(b, AT));
        assertEquals(0x8877665544332211L, r.id(b, AT));
        assertEquals(0x0102030405060708L, r.sectorNumber(b, AT));
        for (int i = 0; i < Blkif.BLKIF_MAX_SEGMENTS_PER_REQUEST; i++) {
            assertEquals(0xf0000000 | i, BlkifSegmentDescriptor.gref(b, r.segmentOffset(AT, i)));
            assertEquals(i, BlkifSegmentDescriptor.firstSect(b, r.segmentOffset(AT, i)));
            assertEquals(7, BlkifSegmentDescriptor.lastSect(b, r.segmentOffset(AT, i)));
        }
        // The last segment's two trailing padding bytes are never written.
        assertCanariesAfter(b, AT + r.length() - 2);
        assertEquals(abi == BlkifAbi.X86_64 ? 112 : 108, r.length());
    }

    @ParameterizedTest
    @EnumSource(BlkifAbi.class)
    void indirectRequest(final BlkifAbi abi) {
        final ByteBuffer b = canaries();
        final BlkifIndirectRequestDescriptor r = abi.indirectRequest();
        r.put(b, AT, Blkif.BLKIF_OP_READ, 4096, 0x1111222233334444L, 0x5555666677778888L, 0xabcd);
        for (int i = 0; i < Blkif.BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST; i++) {
            r.putIndirectGref(b, AT, i, 100 + i);
        }
        assertEquals(Blkif.BLKIF_OP_INDIRECT, r.operation(b, AT));
        assertEquals(Blkif.BLKIF_OP_READ, r.indirectOp(b, AT));
        assertEquals(4096, r.nrSegments(b, AT));
        assertEquals(0x1111222233334444L, r.id(b, AT));
        assertEquals(0x5555666677778888L, r.sectorNumber(b, AT));
        assertEquals(0xabcd, r.handle(b, AT));
        for (int i = 0; i < Blkif.BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST; i++) {
            assertEquals(100 + i, r.indirectGref(b, AT, i));
        }
        assertCanariesAfter(b, AT + r.indirectGrefsOffset() + 4 * Blkif.BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST);
        assertEquals(512, Blkif.BLKIF_SEGMENTS_PER_INDIRECT_PAGE);
    }

    @ParameterizedTest
    @EnumSource(BlkifAbi.class)
    void discardRequest(final BlkifAbi abi) {
        final ByteBuffer b = canaries();
        final BlkifDiscardRequestDescriptor r = abi.discardRequest();
        r.put(b, AT, Blkif.BLKIF_DISCARD_SECURE, 0x0102, -2L, 0x7fffffffffffffffL, 0x1000);
        assertEquals(Blkif.BLKIF_OP_DISCARD, abi.request().operation(b, AT));
        assertEquals(Blkif.BLKIF_DISCARD_SECURE, r.flag(b, AT));
        assertEquals(0x0102, r.handle(b, AT));
        assertEquals(-2L, r.id(b, AT));
        assertEquals(0x7fffffffffffffffL, r.sectorNumber(b, AT));
        assertEquals(0x1000, r.nrSectors(b, AT));
        assertCanariesAfter(b, AT + r.length());
    }

    @Test
    void response() {
        final ByteBuffer b = canaries();
        BlkifResponseDescriptor.put(b, AT, 0x0102030405060708L, Blkif.BLKIF_OP_FLUSH_DISKCACHE,
            Blkif.BLKIF_RSP_EOPNOTSUPP);
        assertEquals(0x0102030405060708L, BlkifResponseDescriptor.id(b, AT));
        assertEquals(Blkif.BLKIF_OP_FLUSH_DISKCACHE, BlkifResponseDescriptor.operation(b, AT));
        assertEquals(Blkif.BLKIF_RSP_EOPNOTSUPP, BlkifResponseDescriptor.status(b, AT));
        assertEquals((byte) 0xee, b.get(AT + 9), "padding between operation and status untouched");
        assertCanariesAfter(b, AT + BlkifResponseDescriptor.X86_32_LENGTH);
    }

    @Test
    void protocolNamesSelectTheAbi() {
        assertEquals(BlkifAbi.X86_64, BlkifAbi.fromProtocol(null));
        assertEquals(BlkifAbi.X86_64, BlkifAbi.fromProtocol(""));
        assertEquals(BlkifAbi.X86_64, BlkifAbi.fromProtocol("x86_64-abi"));
        assertEquals(BlkifAbi.X86_32, BlkifAbi.fromProtocol("x86_32-abi"));
        assertThrows(IllegalArgumentException.class, () -> BlkifAbi.fromProtocol("arm-abi"));
        assertEquals(32, BlkifAbi.X86_32.ringSize(0));
        assertEquals(512, BlkifAbi.X86_64.ringSize(4));
    }
}
