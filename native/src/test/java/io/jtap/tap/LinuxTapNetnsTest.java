package io.jtap.tap;

import static io.jtap.tap.Packets.ETHERTYPE_IPV4;
import static io.jtap.tap.Packets.IPPROTO_TCP;
import static io.jtap.tap.Packets.IPPROTO_UDP;
import static io.jtap.tap.Packets.TCP_ACK;
import static io.jtap.tap.Packets.TCP_PSH;
import static io.jtap.tap.Packets.TCP_SYN;
import static io.jtap.tap.VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_F_NEEDS_CSUM;
import static io.jtap.tap.VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_GSO_NONE;
import static io.jtap.tap.VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_GSO_TCPV4;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.tap.Netns.NsProcess;
import io.jtap.tap.Packets.Checksum;
import io.jtap.tap.Packets.Frame;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A {@link LinuxTap} against the real Linux network stack: the TAP is moved into a network namespace of the test's own
 * (addressed 10.213.0.1/24), and the test pretends to be host 10.213.0.2 on the other end of the wire, speaking
 * Ethernet, ARP, UDP and a hand-made TCP through the TAP fd while Python sockets in the namespace are the kernel's
 * users. Nothing leaves the namespace.
 *
 * <p>Runs in CI (CI=true) as root and fails there when it cannot; elsewhere it skips without root.
 */
@Timeout(60)
class LinuxTapNetnsTest {
    private static final String NS_IP = "10.213.0.1";
    private static final String PEER_IP = "10.213.0.2";
    private static final String PEER_MAC = "02:6a:74:61:70:02";
    private static final Duration WAIT = Duration.ofSeconds(15);
    private static final int ETH_IP = TapDevice.ETH_HLEN + Packets.IPV4_HLEN;

    private static Netns ns;
    private static LinuxTap tap;
    private static TapPeer peer;
    private static byte[] nsMac;

    @BeforeAll
    static void setUp() throws IOException {
        Ci.require(Ci.isRoot(), "creating network namespaces and TAP interfaces needs root: user="
                + System.getProperty("user.name"));
        Ci.require(LinuxTap.availability().isAvailable(), "LinuxTap is unavailable: "
                + LinuxTap.availability().unavailabilityCause());
        Ci.require(Netns.commandWorks("ip", "-V"), "iproute2's ip is not installed");
        Ci.require(Netns.commandWorks("python3", "--version"), "python3 is not installed");

        ns = Netns.create();
        tap = LinuxTap.open("jtns%d");
        // What a netfront with checksum offload and TSO would negotiate: the kernel may hand us partial checksums
        // and TCP GSO frames.
        tap.setOffload(TapDevice.TUN_F_CSUM | TapDevice.TUN_F_TSO4 | TapDevice.TUN_F_TSO6 | TapDevice.TUN_F_TSO_ECN);
        ns.adopt(tap.name());
        String disableIpv6 = "/proc/sys/net/ipv6/conf/" + tap.name() + "/disable_ipv6";
        // No IPv6 router solicitations or MLD reports: fewer frames to step over. Tolerates a kernel without IPv6.
        ns.exec("sh", "-c", "[ ! -e " + disableIpv6 + " ] || echo 1 > " + disableIpv6);
        ns.exec("ip", "addr", "add", NS_IP + "/24", "dev", tap.name());
        ns.exec("ip", "link", "set", "dev", tap.name(), "up");
        nsMac = Packets.mac(ns.exec("cat", "/sys/class/net/" + tap.name() + "/address"));
        peer = new TapPeer(tap, Packets.mac(PEER_MAC), Packets.ip(PEER_IP));
        System.out.println("LinuxTapNetnsTest: namespace=" + ns.name + ", tap=" + tap.name() + ", nsMac="
                + HexFormat.ofDelimiter(":").formatHex(nsMac));
    }

    @AfterAll
    static void tearDown() throws IOException {
        IOException failure = null;
        if (tap != null) {
            try {
                tap.close();
            } catch (IOException e) {
                failure = e;
            }
        }
        if (ns != null) {
            ns.close();
        }
        if (failure != null) {
            throw failure;
        }
    }

    /**
     * Java to kernel, UDP: a datagram with a corrupt checksum is dropped, one with a correct checksum and one with a
     * partial checksum ({@code NEEDS_CSUM}, pseudo-header sum in the field) reach a socket in the namespace, exactly.
     */
    @Test
    void udpFramesWrittenToTheTapReachASocketInTheNamespace() throws Exception {
        NsProcess receiver = ns.start("python3", "-u", "-c", NetnsScripts.UDP_RECEIVER, NS_IP, "5001", "2");
        receiver.awaitLine("READY", WAIT);

        byte[] corrupt = "jtap: corrupt checksum, must be dropped".getBytes(StandardCharsets.US_ASCII);
        byte[] full = "jtap: complete UDP checksum".getBytes(StandardCharsets.US_ASCII);
        byte[] partial = "jtap: partial UDP checksum, completed by nobody (CHECKSUM_PARTIAL)"
                .getBytes(StandardCharsets.US_ASCII);
        peer.send(Packets.withHeader(udpFrame(40000, 5001, corrupt, Checksum.CORRUPT, 1)));
        peer.send(Packets.withHeader(udpFrame(40000, 5001, full, Checksum.FULL, 2)));
        peer.send(Packets.withHeader(udpFrame(40000, 5001, partial, Checksum.PARTIAL, 3), VIRTIO_NET_HDR_F_NEEDS_CSUM,
                VIRTIO_NET_HDR_GSO_NONE, 0, 0, ETH_IP, Packets.UDP_CHECK_OFFSET));

        assertEquals("UDP " + PEER_IP + " 40000 " + HexFormat.of().formatHex(full), receiver.awaitLine("UDP", WAIT),
                "first datagram received (the corrupt one must have been dropped)");
        assertEquals("UDP " + PEER_IP + " 40000 " + HexFormat.of().formatHex(partial), receiver.awaitLine("UDP", WAIT));
        assertEquals(0, receiver.awaitExit(WAIT), receiver.toString());
    }

    /**
     * Kernel to Java, UDP: a datagram sent from the namespace to 10.213.0.2 arrives on the TAP (after the kernel's ARP
     * request, which the peer answers), addressed to the peer's MAC, with a partial checksum the offload flags allow.
     */
    @Test
    void udpFromTheNamespaceArrivesOnTheTapWithAPartialChecksum() throws Exception {
        byte[] payload = "jtap: from the namespace to the TAP".getBytes(StandardCharsets.US_ASCII);
        NsProcess sender = ns.start("python3", "-u", "-c", NetnsScripts.UDP_SENDER, NS_IP, "6000", PEER_IP, "6001",
                HexFormat.of().formatHex(payload));
        Frame frame = peer.await("UDP datagram to port 6001", peer.ipv4To(IPPROTO_UDP, 6001), WAIT);

        assertArrayEquals(payload, frame.payload(), frame.toString());
        assertEquals(6000, frame.srcPort());
        assertArrayEquals(peer.mac, frame.dstMac(), "the kernel resolved 10.213.0.2 to the peer's MAC");
        assertArrayEquals(nsMac, frame.srcMac());
        assertEquals(VIRTIO_NET_HDR_GSO_NONE, frame.gsoType(), frame.header());
        assertEquals(VIRTIO_NET_HDR_F_NEEDS_CSUM, frame.vnetFlags() & VIRTIO_NET_HDR_F_NEEDS_CSUM,
                "TUN_F_CSUM is on, so the kernel leaves the UDP checksum to us: " + frame.header());
        assertEquals(ETH_IP, frame.csumStart(), frame.header());
        assertEquals(Packets.UDP_CHECK_OFFSET, frame.csumOffset(), frame.header());
        assertTrue(frame.transportChecksumValid(), "completing the partial checksum gives a valid one: " + frame);
        assertEquals(0, sender.awaitExit(WAIT), sender.toString());
    }

    /**
     * Both directions over TCP, with the handshake done by hand from Java: SYN, SYN-ACK read from the TAP, ACK, then
     * one 8000-byte TCP GSO frame (gso_type TCPV4, gso_size 1448, partial checksum) that the server in the namespace
     * reads byte for byte; the server then sends 30000 bytes, which arrive on the TAP as frames with partial checksums
     * and, since TUN_F_TSO4 is on, at least one GSO frame; the reassembled stream is exact.
     */
    @Test
    void tcpHandshakeByHandThenGsoSegmentsBothWays() throws Exception {
        int serverPort = 7001;
        int localPort = 40001;
        int toServer = 8000;
        int fromServer = 30000;
        NsProcess server = ns.start("python3", "-u", "-c", NetnsScripts.TCP_SERVER, NS_IP, Integer.toString(serverPort),
                Integer.toString(toServer), Integer.toString(fromServer));
        server.awaitLine("READY", WAIT);

        long seed = System.nanoTime();
        Random random = new Random(seed);
        long isn = random.nextInt() & 0xffffffffL;
        String context = "seed=" + seed;

        peer.send(Packets.withHeader(tcpFrame(localPort, serverPort, isn, 0, TCP_SYN, Packets.mssOption(1460),
                new byte[0], Checksum.FULL)));
        Frame synAck = peer.await("SYN-ACK", f -> peer.ipv4To(IPPROTO_TCP, localPort).test(f)
                && (f.tcpFlags() & (TCP_SYN | TCP_ACK)) == (TCP_SYN | TCP_ACK), WAIT);
        assertEquals((isn + 1) & 0xffffffffL, synAck.tcpAck(), context);
        long serverNext = (synAck.tcpSeq() + 1) & 0xffffffffL;
        long localNext = (isn + 1) & 0xffffffffL;
        peer.send(Packets.withHeader(tcpFrame(localPort, serverPort, localNext, serverNext, TCP_ACK, new byte[0],
                new byte[0], Checksum.FULL)));

        byte[] data = new byte[toServer];
        random.nextBytes(data);
        int gsoSize = 1448;
        int hdrLen = ETH_IP + Packets.TCP_HLEN;
        peer.send(Packets.withHeader(tcpFrame(localPort, serverPort, localNext, serverNext, TCP_ACK | TCP_PSH,
                new byte[0], data, Checksum.PARTIAL), VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, hdrLen,
                gsoSize, ETH_IP, Packets.TCP_CHECK_OFFSET));
        localNext = (localNext + toServer) & 0xffffffffL;

        String received = server.awaitLine("RECV", WAIT);
        assertEquals("RECV " + PEER_IP + " " + localPort + " " + toServer + " " + HexFormat.of().formatHex(data),
                received, "the server read exactly the bytes of the GSO frame, " + context);

        ByteArrayOutputStream stream = new ByteArrayOutputStream();
        List<String> headers = new ArrayList<>();
        int gsoFrames = 0;
        while (stream.size() < fromServer) {
            Frame f = peer.await("TCP data from the server", g -> peer.ipv4To(IPPROTO_TCP, localPort).test(g)
                    && g.payload().length > 0, WAIT);
            headers.add(f.header() + " payload=" + f.payload().length);
            assertEquals(VIRTIO_NET_HDR_F_NEEDS_CSUM, f.vnetFlags() & VIRTIO_NET_HDR_F_NEEDS_CSUM, f.header());
            assertTrue(f.transportChecksumValid(), "partial checksum completes to a valid one: " + f);
            if (f.gsoType() == VIRTIO_NET_HDR_GSO_TCPV4) {
                assertTrue(f.gsoSize() > 0 && f.gsoSize() <= 1460, f.header());
                assertTrue(f.payload().length > f.gsoSize(), "a GSO frame carries more than one segment: " + f);
                gsoFrames++;
            }
            long offset = (f.tcpSeq() - serverNext) & 0xffffffffL;
            byte[] payload = f.payload();
            if (offset < payload.length) { // new data, possibly overlapping a retransmission
                stream.write(payload, (int) offset, payload.length - (int) offset);
                serverNext = (serverNext + payload.length - offset) & 0xffffffffL;
            }
            peer.send(Packets.withHeader(tcpFrame(localPort, serverPort, localNext, serverNext, TCP_ACK, new byte[0],
                    new byte[0], Checksum.FULL)));
        }
        byte[] expected = new byte[fromServer];
        for (int i = 0; i < fromServer; i++) {
            expected[i] = (byte) ((i * 31 + 7) % 251);
        }
        assertArrayEquals(expected, stream.toByteArray(), "the stream from the server, " + context);
        System.out.println("LinuxTapNetnsTest: frames from the server: " + headers);
        assertTrue(gsoFrames > 0, "TUN_F_TSO4 is on, so the kernel sent TCP GSO frames: " + headers);
        server.awaitLine("SENT", WAIT);
        assertEquals(0, server.awaitExit(WAIT), server.toString());
    }

    private static byte[] udpFrame(int srcPort, int dstPort, byte[] payload, Checksum checksum, int ipId) {
        byte[] src = Packets.ip(PEER_IP);
        byte[] dst = Packets.ip(NS_IP);
        return Packets.ethernet(nsMac, peer.mac, ETHERTYPE_IPV4, Packets.ipv4(src, dst, IPPROTO_UDP, ipId,
                Packets.udp(src, dst, srcPort, dstPort, payload, checksum)));
    }

    private static byte[] tcpFrame(int srcPort, int dstPort, long seq, long ack, int flags, byte[] options,
            byte[] payload, Checksum checksum) {
        byte[] src = Packets.ip(PEER_IP);
        byte[] dst = Packets.ip(NS_IP);
        return Packets.ethernet(nsMac, peer.mac, ETHERTYPE_IPV4, Packets.ipv4(src, dst, IPPROTO_TCP, 0,
                Packets.tcp(src, dst, srcPort, dstPort, seq, ack, flags, 65535, options, payload, checksum)));
    }
}
