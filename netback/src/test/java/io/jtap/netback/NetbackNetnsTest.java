package io.jtap.netback;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.netback.TestFrames.Checksum;
import io.jtap.ring.netif.Netif;
import io.jtap.tap.Ci;
import io.jtap.tap.LinuxTap;
import io.jtap.tap.Netns.NsProcess;
import io.jtap.tap.Netns;
import io.jtap.tap.NetnsScripts;
import io.jtap.testkit.netfront.NetfrontOptions;
import io.jtap.testkit.netfront.RxPacket;
import io.jtap.testkit.netfront.SimulatedNetfront;
import io.jtap.testkit.netfront.TxPacket;
import io.jtap.xen.sim.SimulatedXen;
import io.jtap.xen.sim.SimulatedXenExtension;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import java.util.function.Predicate;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * netback against the real Linux network stack: the daemon's wiring ({@code NetbackService} with
 * {@code LinuxTap::open}) creates the vif's TAP for a simulated guest; the test moves it into a network namespace of
 * its own (10.214.0.1/24, the guest being 10.214.0.2), and the simulated netfront speaks UDP and a hand-made TCP
 * through the Xen rings while Python sockets in the namespace are the kernel's users. Frames from the guest carry
 * partial checksums and TCP GSO; frames to the guest come from the kernel with partial checksums and GSO, which netback
 * hands over as csum_blank and GSO extras. Nothing leaves the namespace.
 *
 * <p>Runs in CI (CI=true) as root and fails there when it cannot; elsewhere it skips without root.
 */
@ExtendWith(SimulatedXenExtension.class)
@Timeout(120)
class NetbackNetnsTest {
    private static final String NS_IP = "10.214.0.1";
    private static final String GUEST_IP_TEXT = "10.214.0.2";
    private static final byte[] GUEST_IP = TestFrames.ip4(10, 214, 0, 2);
    private static final byte[] NS_IP_BYTES = TestFrames.ip4(10, 214, 0, 1);
    private static final String GUEST_MAC_TEXT = "00:16:3e:6a:74:02";
    private static final byte[] GUEST_MAC = TestFrames.mac(0x00163e6a7402L);
    private static final Duration WAIT = Duration.ofSeconds(20);
    private static final int ETH_IP = 14 + 20;

    private Netns ns;
    private NetbackService service;
    private SimulatedNetfront guest;
    private byte[] nsMac;
    private final Deque<RxPacket> pending = new ArrayDeque<>();

    @BeforeEach
    void setUp(SimulatedXen xen) throws Exception {
        Ci.require(Ci.isRoot(), "network namespaces and TAP interfaces need root: user="
                + System.getProperty("user.name"));
        Ci.require(LinuxTap.availability().isAvailable(), "LinuxTap is unavailable: "
                + LinuxTap.availability().unavailabilityCause());
        Ci.require(Netns.commandWorks("ip", "-V"), "iproute2's ip is not installed");
        Ci.require(Netns.commandWorks("python3", "--version"), "python3 is not installed");

        ns = Netns.create();
        // As the daemon wires it: a real TAP per vif, the simulated Xen for the guest side.
        service = NetbackService.start(xen.platform(SimulatedXen.DOM0), LinuxTap::open);
        String tapName = "jtnb" + Netns.randomSuffix();
        guest = SimulatedNetfront.create(xen, xen.createDomain("netns-guest"), 0,
                NetfrontOptions.linuxDefaults().withVifname(tapName).withMac(GUEST_MAC_TEXT));
        guest.connect(WAIT);
        ns.adopt(tapName);
        String disableIpv6 = "/proc/sys/net/ipv6/conf/" + tapName + "/disable_ipv6";
        ns.exec("sh", "-c", "[ ! -e " + disableIpv6 + " ] || echo 1 > " + disableIpv6);
        ns.exec("ip", "addr", "add", NS_IP + "/24", "dev", tapName);
        ns.exec("ip", "link", "set", "dev", tapName, "up");
        ns.exec("ip", "neigh", "replace", GUEST_IP_TEXT, "lladdr", GUEST_MAC_TEXT, "dev", tapName, "nud", "permanent");
        nsMac = TestFrames.mac(Long.parseLong(ns.exec("cat", "/sys/class/net/" + tapName + "/address").trim()
                .replace(":", ""), 16));
    }

    @AfterEach
    void tearDown() throws Exception {
        try {
            if (service != null) {
                service.close();
            }
            if (guest != null) {
                guest.close();
                guest.assertNoViolations();
            }
        } finally {
            if (ns != null) {
                ns.close();
            }
        }
    }

    /** Guest to kernel: a UDP datagram with a full checksum and one with a partial checksum (csum_blank) arrive. */
    @Test
    void udpFromTheGuestReachesASocketInTheNamespace() throws Exception {
        NsProcess receiver = ns.start("python3", "-u", "-c", NetnsScripts.UDP_RECEIVER, NS_IP, "5001", "2");
        receiver.awaitLine("READY", WAIT);
        byte[] full = "jtap netback: full UDP checksum".getBytes(StandardCharsets.US_ASCII);
        byte[] partial = TestFrames.payload(3000, 5); // 3042-byte frame from offset 2000: two tx slots
        guest.send(0, TestFrames.udp4(nsMac, GUEST_MAC, GUEST_IP, NS_IP_BYTES, 40000, 5001, full, Checksum.FULL),
                TxPacket.plain());
        guest.send(0, TestFrames.udp4(nsMac, GUEST_MAC, GUEST_IP, NS_IP_BYTES, 40000, 5001, partial,
                Checksum.PARTIAL), TxPacket.partialChecksum().withSlots(2000, 2096, 946));
        assertEquals("UDP " + GUEST_IP_TEXT + " 40000 " + HexFormat.of().formatHex(full),
                receiver.awaitLine("UDP", WAIT));
        assertEquals("UDP " + GUEST_IP_TEXT + " 40000 " + HexFormat.of().formatHex(partial),
                receiver.awaitLine("UDP", WAIT));
        assertEquals(0, receiver.awaitExit(WAIT), receiver.toString());
        guest.awaitTx(0, 3, WAIT);
    }

    /** Kernel to guest: a datagram sent in the namespace arrives through the rx ring with a blank checksum. */
    @Test
    void udpFromTheNamespaceReachesTheGuest() throws Exception {
        byte[] payload = "jtap netback: from the namespace to the guest".getBytes(StandardCharsets.US_ASCII);
        NsProcess sender = ns.start("python3", "-u", "-c", NetnsScripts.UDP_SENDER, NS_IP, "6000", GUEST_IP_TEXT,
                "6001", HexFormat.of().formatHex(payload));
        RxPacket p = awaitRx(f -> isIpv4(f, 17) && dstPort(f) == 6001);
        byte[] frame = p.frame();
        assertArrayEquals(payload, Arrays.copyOfRange(frame, ETH_IP + 8, ETH_IP + 8 + payload.length));
        assertArrayEquals(GUEST_MAC, Arrays.copyOf(frame, 6));
        assertEquals(Netif.NETRXF_csum_blank | Netif.NETRXF_data_validated,
                p.flags() & (Netif.NETRXF_csum_blank | Netif.NETRXF_data_validated), "TUN_F_CSUM: partial checksum");
        FrameHeaders.completeChecksum(ByteBuffer.wrap(frame), 0, ipEnd(frame), ETH_IP, 6);
        assertTrue(TestFrames.transportChecksumValid(Arrays.copyOf(frame, ipEnd(frame))));
        assertEquals(0, sender.awaitExit(WAIT), sender.toString());
    }

    /**
     * TCP both ways, handshake by hand from the guest: one 8000-byte GSO frame (TCPV4, gso_size 1448, csum_blank) that
     * the server reads byte for byte, then 30000 bytes from the server that arrive through the rx ring, at least one
     * as a GSO packet with a GSO extra, and reassemble exactly.
     */
    @Test
    void tcpWithGsoAndPartialChecksumsBothWays() throws Exception {
        int serverPort = 7001;
        int guestPort = 40001;
        int toServer = 8000;
        int fromServer = 30000;
        NsProcess server = ns.start("python3", "-u", "-c", NetnsScripts.TCP_SERVER, NS_IP, Integer.toString(serverPort),
                Integer.toString(toServer), Integer.toString(fromServer));
        server.awaitLine("READY", WAIT);
        long seed = System.nanoTime();
        Random random = new Random(seed);
        String context = "seed=" + seed;
        long isn = random.nextInt() & 0xffffffffL;

        guest.send(0, tcp(guestPort, serverPort, isn, 0, 0x02, new byte[0], Checksum.FULL), TxPacket.plain());
        RxPacket synAck = awaitRx(f -> isIpv4(f, 6) && dstPort(f) == guestPort && (tcpFlags(f) & 0x12) == 0x12);
        long serverNext = (tcpSeq(synAck.frame()) + 1) & 0xffffffffL;
        long guestNext = (isn + 1) & 0xffffffffL;
        guest.send(0, tcp(guestPort, serverPort, guestNext, serverNext, 0x10, new byte[0], Checksum.FULL),
                TxPacket.plain());
        byte[] data = new byte[toServer];
        random.nextBytes(data);
        guest.send(0, tcp(guestPort, serverPort, guestNext, serverNext, 0x18, data, Checksum.PARTIAL),
                TxPacket.gso(Netif.XEN_NETIF_GSO_TYPE_TCPV4, 1448));
        guestNext = (guestNext + toServer) & 0xffffffffL;
        assertEquals("RECV " + GUEST_IP_TEXT + " " + guestPort + " " + toServer + " " + HexFormat.of().formatHex(data),
                server.awaitLine("RECV", WAIT), "the server read the GSO frame's bytes exactly, " + context);

        ByteArrayOutputStream stream = new ByteArrayOutputStream();
        List<String> seen = new ArrayList<>();
        int gsoPackets = 0;
        while (stream.size() < fromServer) {
            RxPacket p = awaitRx(f -> isIpv4(f, 6) && dstPort(f) == guestPort && tcpPayload(f).length > 0);
            byte[] f = Arrays.copyOf(p.frame(), ipEnd(p.frame()));
            byte[] payload = tcpPayload(f);
            seen.add("len=" + payload.length + " gso=" + p.gsoType() + "/" + p.gsoSize() + " flags=" + p.flags());
            if ((p.flags() & Netif.NETRXF_csum_blank) != 0) {
                FrameHeaders.completeChecksum(ByteBuffer.wrap(f), 0, f.length, ETH_IP, 16);
            }
            assertTrue(TestFrames.transportChecksumValid(f), "checksum valid after completion: " + seen);
            if (p.gsoType() == Netif.XEN_NETIF_GSO_TYPE_TCPV4) {
                assertTrue(p.gsoSize() > 0 && payload.length > p.gsoSize(), "a GSO packet holds several segments");
                gsoPackets++;
            }
            long offset = (tcpSeq(f) - serverNext) & 0xffffffffL;
            if (offset < payload.length) {
                stream.write(payload, (int) offset, payload.length - (int) offset);
                serverNext = (serverNext + payload.length - offset) & 0xffffffffL;
            }
            guest.send(0, tcp(guestPort, serverPort, guestNext, serverNext, 0x10, new byte[0], Checksum.FULL),
                    TxPacket.plain());
        }
        byte[] expected = new byte[fromServer];
        for (int i = 0; i < fromServer; i++) {
            expected[i] = (byte) ((i * 31 + 7) % 251);
        }
        assertArrayEquals(expected, stream.toByteArray(), "the stream from the server, " + context);
        System.out.println("NetbackNetnsTest: rx from the server: " + seen);
        assertTrue(gsoPackets > 0, "the kernel sent TCP GSO through netback: " + seen);
        server.awaitLine("SENT", WAIT);
        assertEquals(0, server.awaitExit(WAIT), server.toString());
    }

    private byte[] tcp(int sport, int dport, long seq, long ack, int flags, byte[] payload, Checksum how) {
        return TestFrames.tcp4(nsMac, GUEST_MAC, GUEST_IP, NS_IP_BYTES, sport, dport, seq, ack, flags, payload, how);
    }

    private RxPacket awaitRx(Predicate<byte[]> wanted) throws Exception {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (true) {
            while (!pending.isEmpty()) {
                RxPacket p = pending.poll();
                if (p.status() == 0 && wanted.test(p.frame())) {
                    return p;
                }
            }
            guest.pollTx(0);
            pending.addAll(guest.awaitRx(0, 1, Duration.ofNanos(Math.max(1, deadline - System.nanoTime()))));
        }
    }

    private static boolean isIpv4(byte[] f, int proto) {
        return f.length >= ETH_IP + 8 && (f[12] & 0xff) == 0x08 && f[13] == 0 && (f[23] & 0xff) == proto;
    }

    private static int dstPort(byte[] f) {
        return (f[ETH_IP + 2] & 0xff) << 8 | (f[ETH_IP + 3] & 0xff);
    }

    private static int tcpFlags(byte[] f) {
        return f[ETH_IP + 13] & 0xff;
    }

    private static long tcpSeq(byte[] f) {
        return ByteBuffer.wrap(f, ETH_IP + 4, 4).getInt() & 0xffffffffL;
    }

    private static int ipEnd(byte[] f) {
        return 14 + ((f[16] & 0xff) << 8 | (f[17] & 0xff));
    }

    private static byte[] tcpPayload(byte[] f) {
        int doff = ((f[ETH_IP + 12] & 0xff) >>> 4) * 4;
        return Arrays.copyOfRange(f, ETH_IP + doff, ipEnd(f));
    }
}
