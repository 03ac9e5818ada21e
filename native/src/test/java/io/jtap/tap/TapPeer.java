package io.jtap.tap;

import io.jtap.tap.Packets.Frame;
import io.jtap.xen.linux.Syscalls;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Predicate;

/**
 * The host a test pretends to be at the far end of a TAP device: it has a MAC and an IPv4 address, answers ARP requests
 * for that address, and otherwise hands frames to the test. Single-threaded: frames are read only while the test waits
 * in {@link #await}.
 */
final class TapPeer {
    final TapDevice tap;
    final byte[] mac;
    final byte[] ip;
    private final ByteBuffer readBuffer;
    private final List<Frame> ignored = new ArrayList<>();
    private int arpRepliesSent;

    TapPeer(TapDevice tap, byte[] mac, byte[] ip) {
        this.tap = tap;
        this.mac = mac;
        this.ip = ip;
        this.readBuffer = ByteBuffer.allocateDirect(tap.vnetHeaderBytes() + TapDevice.MAX_FRAME_BYTES);
    }

    void send(ByteBuffer frameWithHeader) throws IOException {
        int length = frameWithHeader.remaining();
        if (tap.write(frameWithHeader) != length) {
            throw new IOException("TAP did not take the frame: device=" + tap.name() + ", length=" + length);
        }
    }

    /**
     * Reads frames until one matches, answering ARP requests for {@link #ip} on the way; other frames are kept in
     * {@link #ignored()} for diagnostics.
     *
     * @throws AssertionError naming what was seen when nothing matches within {@code timeout}
     */
    Frame await(String what, Predicate<Frame> matches, Duration timeout) throws IOException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            readBuffer.clear();
            int length = tap.read(readBuffer);
            if (length == 0) {
                long leftMs = (deadline - System.nanoTime()) / 1_000_000;
                if (leftMs <= 0) {
                    throw new AssertionError("no " + what + " from " + tap.name() + " within " + timeout
                            + ": arpRepliesSent=" + arpRepliesSent + ", ignored=" + ignored);
                }
                Syscalls.pollIn(new int[] {tap.fd()}, (int) Math.min(leftMs, 200));
                continue;
            }
            byte[] bytes = new byte[length];
            readBuffer.flip();
            readBuffer.get(bytes);
            Frame frame = new Frame(bytes, tap.vnetHeaderBytes());
            if (frame.isArpRequestFor(ip)) {
                send(Packets.withHeader(Packets.arpReply(mac, ip, frame.arpSenderMac(), frame.arpSenderIp())));
                arpRepliesSent++;
            } else if (matches.test(frame)) {
                return frame;
            } else if (ignored.size() < 50) {
                ignored.add(frame);
            }
        }
    }

    /** A predicate for IPv4 frames of {@code protocol} addressed to this peer's IP and {@code port}. */
    Predicate<Frame> ipv4To(int protocol, int port) {
        return f -> f.isIpv4(protocol) && Arrays.equals(f.ipDst(), ip) && f.dstPort() == port;
    }

    int arpRepliesSent() {
        return arpRepliesSent;
    }

    List<Frame> ignored() {
        return ignored;
    }
}
