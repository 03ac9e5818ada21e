package io.jtap.netback;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.netback.TestFrames.Checksum;
import io.jtap.ring.netif.Netif;
import io.jtap.tap.SimulatedTap;
import io.jtap.testkit.netfront.NetfrontOptions;
import io.jtap.testkit.netfront.RxPacket;
import io.jtap.testkit.netfront.SimulatedNetfront;
import io.jtap.testkit.netfront.TxPacket;
import io.jtap.xen.sim.SimulatedXen;
import io.jtap.xen.sim.SimulatedXenExtension;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/** Guest to guest through the in-process switch: flooding, learning, offloads carried across, ports closed. */
@ExtendWith(SimulatedXenExtension.class)
@Timeout(60)
class VifSwitchTest {
    private static final byte[] MAC_A = TestFrames.mac(0x00163e00000aL);
    private static final byte[] MAC_B = TestFrames.mac(0x00163e00000bL);
    private static final byte[] MAC_C = TestFrames.mac(0x00163e00000cL);
    private static final byte[] BROADCAST = TestFrames.mac(0xffffffffffffL);

    @Test
    void guestsTalkThroughTheSwitch(SimulatedXen xen) throws Exception {
        int openBefore = SimulatedTap.openEnds();
        VifSwitch sw = VifSwitch.start();
        NetbackService service = NetbackService.start(xen.platform(SimulatedXen.DOM0), sw,
                NetbackOptions.defaults().withIdlePollMs(20));
        SimulatedNetfront a = SimulatedNetfront.create(xen, xen.createDomain("a"), 0,
                NetfrontOptions.linuxDefaults().withMac("00:16:3e:00:00:0a"));
        SimulatedNetfront b = SimulatedNetfront.create(xen, xen.createDomain("b"), 0,
                NetfrontOptions.linuxDefaults().withMac("00:16:3e:00:00:0b"));
        SimulatedNetfront c = SimulatedNetfront.create(xen, xen.createDomain("c"), 0,
                NetfrontOptions.minimal().withMac("00:16:3e:00:00:0c"));
        try {
            for (SimulatedNetfront f : List.of(a, b, c)) {
                f.connect(NetbackHarness.WAIT);
            }
            assertEquals(3, sw.ports());
            // A broadcasts: B and C get it, and the switch learns A.
            byte[] hello = TestFrames.udp4(BROADCAST, MAC_A, TestFrames.ip4(10, 1, 0, 10),
                    TestFrames.ip4(10, 1, 0, 255), 1, 2, TestFrames.payload(64, 1), Checksum.FULL);
            a.send(0, hello, TxPacket.plain());
            assertArrayEquals(hello, b.awaitRx(0, 1, NetbackHarness.WAIT).get(0).frame());
            assertArrayEquals(hello, c.awaitRx(0, 1, NetbackHarness.WAIT).get(0).frame());
            // B answers A by unicast (A is learned): only A gets it.
            byte[] reply = TestFrames.udp4(MAC_A, MAC_B, TestFrames.ip4(10, 1, 0, 11), TestFrames.ip4(10, 1, 0, 10), 2,
                    1, TestFrames.payload(100, 2), Checksum.FULL);
            b.send(0, reply, TxPacket.plain());
            assertArrayEquals(reply, a.awaitRx(0, 1, NetbackHarness.WAIT).get(0).frame());
            // A sends B a 40 KB TCP GSO frame with a partial checksum: B (GSO and csum offload on) gets it whole, as a
            // GSO packet with a blank checksum.
            byte[] big = TestFrames.tcp4(MAC_B, MAC_A, TestFrames.ip4(10, 1, 0, 10), TestFrames.ip4(10, 1, 0, 11), 3,
                    4, 1, 1, 0x18, TestFrames.payload(40_000, 3), Checksum.PARTIAL);
            a.send(0, big, TxPacket.gso(Netif.XEN_NETIF_GSO_TYPE_TCPV4, 1448));
            RxPacket got = b.awaitRx(0, 1, NetbackHarness.WAIT).get(0);
            assertArrayEquals(big, got.frame());
            assertEquals(Netif.XEN_NETIF_GSO_TYPE_TCPV4, got.gsoType());
            assertEquals(1448, got.gsoSize());
            assertTrue((got.flags() & Netif.NETRXF_csum_blank) != 0);
            // C (no offloads) learned nothing of that; a partial-checksum datagram to C arrives completed.
            byte[] toC = TestFrames.udp4(MAC_C, MAC_A, TestFrames.ip4(10, 1, 0, 10), TestFrames.ip4(10, 1, 0, 12), 5, 6,
                    TestFrames.payload(300, 4), Checksum.PARTIAL);
            c.send(0, TestFrames.udp4(BROADCAST, MAC_C, TestFrames.ip4(10, 1, 0, 12), TestFrames.ip4(10, 1, 0, 255),
                    7, 8, new byte[10], Checksum.FULL), TxPacket.plain()); // C announces itself
            a.awaitRx(0, 1, NetbackHarness.WAIT);
            a.send(0, toC, TxPacket.partialChecksum());
            RxPacket atC = c.awaitRx(0, 1, NetbackHarness.WAIT).get(0);
            assertEquals(0, atC.flags() & Netif.NETRXF_csum_blank, "C has no checksum offload");
            assertTrue(TestFrames.transportChecksumValid(atC.frame()));
            for (SimulatedNetfront f : List.of(a, b, c)) {
                f.awaitTx(0, 0, NetbackHarness.WAIT);
            }
        } finally {
            service.close();
            for (SimulatedNetfront f : List.of(a, b, c)) {
                f.close();
                f.assertNoViolations();
            }
            sw.close();
        }
        assertEquals(openBefore, SimulatedTap.openEnds(), "every port closed");
    }
}
