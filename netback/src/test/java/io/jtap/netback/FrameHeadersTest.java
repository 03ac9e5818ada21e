package io.jtap.netback;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.netback.TestFrames.Checksum;
import java.nio.ByteBuffer;
import org.junit.jupiter.api.Test;

/** Header parsing, flow hash and software checksum completion on frames the test builds. */
class FrameHeadersTest {
    private static final byte[] A = TestFrames.mac(0x020000000001L);
    private static final byte[] B = TestFrames.mac(0x020000000002L);

    @Test
    void parsesIpv4AndIpv6TransportHeaders() {
        FrameHeaders h = new FrameHeaders();
        byte[] tcp4 = TestFrames.tcp4(A, B, TestFrames.ip4(1, 2, 3, 4), TestFrames.ip4(5, 6, 7, 8), 1, 2, 0, 0, 0x10,
                new byte[10], Checksum.FULL);
        assertTrue(h.parse(ByteBuffer.wrap(tcp4), 0, tcp4.length));
        assertEquals(34, h.l4Offset);
        assertEquals(20, h.l4HeaderLength);
        assertEquals(16, h.checksumFieldOffset());
        byte[] udp6 = TestFrames.udp6(A, B, TestFrames.ip6(1), TestFrames.ip6(2), 1, 2, new byte[10], Checksum.FULL);
        assertTrue(h.parse(ByteBuffer.wrap(udp6), 0, udp6.length));
        assertEquals(54, h.l4Offset);
        assertEquals(6, h.checksumFieldOffset());
        assertFalse(h.parse(ByteBuffer.wrap(udp6), 0, 50), "truncated frame");
    }

    /** Completing a partial checksum yields the full one, for every payload length 0..300 (odd lengths included). */
    @Test
    void completedChecksumsVerify() {
        for (int n = 0; n <= 300; n++) {
            byte[] partial = TestFrames.udp6(A, B, TestFrames.ip6(1), TestFrames.ip6(2), 7, 9,
                    TestFrames.payload(n, n), Checksum.PARTIAL);
            assertTrue(FrameHeaders.completeChecksum(ByteBuffer.wrap(partial), 0, partial.length, 54, 6));
            assertTrue(TestFrames.transportChecksumValid(partial), "length " + n);
            int field = (partial[54 + 6] & 0xff) << 8 | (partial[54 + 7] & 0xff);
            assertTrue(field != 0, "a computed 0 is sent as 0xffff (IPv6 UDP must not carry 0)");
        }
    }

    @Test
    void flowHashIsStablePerFlowAndDiffersAcrossPorts() {
        FrameHeaders h = new FrameHeaders();
        byte[] a = TestFrames.udp4(A, B, TestFrames.ip4(1, 2, 3, 4), TestFrames.ip4(5, 6, 7, 8), 1000, 2000,
                new byte[5], Checksum.FULL);
        byte[] a2 = TestFrames.udp4(A, B, TestFrames.ip4(1, 2, 3, 4), TestFrames.ip4(5, 6, 7, 8), 1000, 2000,
                new byte[500], Checksum.FULL);
        byte[] b = TestFrames.udp4(A, B, TestFrames.ip4(1, 2, 3, 4), TestFrames.ip4(5, 6, 7, 8), 1001, 2000,
                new byte[5], Checksum.FULL);
        h.parse(ByteBuffer.wrap(a), 0, a.length);
        int ha = h.flowHash(ByteBuffer.wrap(a), 0, a.length);
        h.parse(ByteBuffer.wrap(a2), 0, a2.length);
        assertEquals(ha, h.flowHash(ByteBuffer.wrap(a2), 0, a2.length));
        h.parse(ByteBuffer.wrap(b), 0, b.length);
        assertTrue(ha != h.flowHash(ByteBuffer.wrap(b), 0, b.length));
    }
}
