package io.jtap.tap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.tap.Packets.Checksum;
import io.jtap.tap.Packets.Frame;
import io.jtap.xen.linux.Syscalls;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** The contract against {@link SimulatedTap}, plus what only the simulation does (bounded queues, offload rules). */
class SimulatedTapTest extends TapDeviceContract {
    private static final int CAPACITY = 16;

    @Override
    protected TapDevice open(String name) throws IOException {
        return SimulatedTap.open(name, CAPACITY);
    }

    @Override
    protected HostSide hostSide(TapDevice device) {
        SimulatedTap hostEnd = ((SimulatedTap) device).host();
        return new HostSide() {
            private final ByteBuffer buf = ByteBuffer.allocate(hostEnd.vnetHeaderBytes() + TapDevice.MAX_FRAME_BYTES);

            @Override
            public void send(byte[] ethernetFrame) throws IOException {
                ByteBuffer frame = Packets.withHeader(ethernetFrame);
                if (hostEnd.write(frame) == 0) {
                    throw new IOException("simulated TAP full: device=" + hostEnd.name());
                }
            }

            @Override
            public byte[] receive(Duration timeout) throws IOException {
                long deadline = System.nanoTime() + timeout.toNanos();
                while (System.nanoTime() < deadline) {
                    buf.clear();
                    int length = hostEnd.read(buf);
                    if (length == 0) {
                        Syscalls.pollIn(new int[] {hostEnd.fd()}, 50);
                        continue;
                    }
                    byte[] frame = Arrays.copyOfRange(buf.array(), hostEnd.vnetHeaderBytes(), length);
                    if (isExperimental(frame)) {
                        return frame;
                    }
                }
                return null;
            }

            @Override
            public void close() throws IOException {
                hostEnd.close();
            }
        };
    }

    @Override
    protected void afterClose() {
        assertEquals(0, SimulatedTap.openEnds(), "every simulated TAP end closed (eventfds released)");
    }

    private SimulatedTap hostEnd() {
        return ((SimulatedTap) device).host();
    }

    @Test
    void aFullQueueTakesNoMoreUntilReadAndThenKeepsTheOrder() throws IOException {
        for (int i = 0; i < CAPACITY; i++) {
            assertTrue(device.write(Packets.withHeader(frame("fill", i))) > 0, "frame " + i);
        }
        ByteBuffer extra = Packets.withHeader(frame("extra", 0));
        assertEquals(0, device.write(extra), "full: write returns 0");
        assertEquals(0, extra.position(), "a refused frame is not consumed");
        assertArrayEquals(frame("fill", 0), host.receive(Duration.ofSeconds(1)));
        assertTrue(device.write(extra) > 0, "room again after one read");
        for (int i = 1; i < CAPACITY; i++) {
            assertArrayEquals(frame("fill", i), host.receive(Duration.ofSeconds(1)), "frame " + i);
        }
        assertArrayEquals(frame("extra", 0), host.receive(Duration.ofSeconds(1)));
    }

    @Test
    void aPartialChecksumIsCompletedForADeviceWithoutTunFCsum() throws IOException {
        byte[] src = Packets.ip("10.213.0.2");
        byte[] dst = Packets.ip("10.213.0.1");
        byte[] udp = Packets.udp(src, dst, 1, 2, "odd length payload".getBytes(StandardCharsets.US_ASCII),
                Checksum.PARTIAL);
        byte[] eth = Packets.ethernet(new byte[6], new byte[6], Packets.ETHERTYPE_IPV4,
                Packets.ipv4(src, dst, Packets.IPPROTO_UDP, 1, udp));
        int csumStart = TapDevice.ETH_HLEN + Packets.IPV4_HLEN;
        for (int offload : new int[] {0, TapDevice.TUN_F_CSUM}) {
            device.setOffload(offload);
            hostEnd().write(Packets.withHeader(eth, VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_F_NEEDS_CSUM,
                    VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_GSO_NONE, 0, 0, csumStart, Packets.UDP_CHECK_OFFSET));
            ByteBuffer buf = ByteBuffer.allocate(device.vnetHeaderBytes() + TapDevice.MAX_FRAME_BYTES);
            int length = device.read(buf);
            Frame frame = new Frame(Arrays.copyOf(buf.array(), length), device.vnetHeaderBytes());
            assertTrue(frame.transportChecksumValid(), frame.toString());
            boolean partial = (frame.vnetFlags() & VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_F_NEEDS_CSUM) != 0;
            assertEquals(offload != 0, partial, "NEEDS_CSUM kept only when the device enabled TUN_F_CSUM: " + frame);
        }
    }

    @Test
    void aGsoFrameTowardsADeviceWithoutTsoIsRefused() throws IOException {
        ByteBuffer gso = Packets.withHeader(frame("gso", 0), VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_F_NEEDS_CSUM,
                VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_GSO_TCPV4, 54, 1448, 34, 16);
        device.setOffload(TapDevice.TUN_F_CSUM);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> hostEnd().write(gso));
        assertTrue(e.getMessage().contains("does not segment"), e.getMessage());
        device.setOffload(TapDevice.TUN_F_CSUM | TapDevice.TUN_F_TSO4);
        assertTrue(hostEnd().write(gso) > 0);
        assertTrue(device.write(gso.duplicate().position(0)) > 0,
                "the device end's own writes are passed on as they are");
    }

    @Test
    void writingTowardsAClosedEndFails() throws IOException {
        hostEnd().close();
        IOException e = assertThrows(IOException.class, () -> device.write(Packets.withHeader(frame("x", 0))));
        assertTrue(e.getMessage().contains("closed"), e.getMessage());
    }

    /**
     * A writer thread and a reader that sleeps in poll: the eventfd is readable exactly while frames wait, so the
     * reader never misses a wake-up (a poll that times out with frames queued fails the test) and gets every frame in
     * order.
     */
    @Test
    void aPollingReaderNeverMissesAFrameFromAConcurrentWriter() throws Exception {
        int frames = 5_000;
        Thread writer = new Thread(() -> {
            try {
                for (int i = 0; i < frames; i++) {
                    ByteBuffer frame = Packets.withHeader(frame("concurrent", i));
                    while (hostEnd().write(frame) == 0) {
                        Thread.onSpinWait();
                    }
                }
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        }, "simulated-tap-writer");
        writer.start();
        ByteBuffer buf = ByteBuffer.allocateDirect(device.vnetHeaderBytes() + TapDevice.MAX_FRAME_BYTES);
        try {
            for (int i = 0; i < frames; i++) {
                buf.clear();
                while (device.read(buf) == 0) {
                    assertEquals(1, Syscalls.pollIn(new int[] {device.fd()}, 5_000), "woken for frame " + i);
                }
                byte[] got = new byte[buf.position() - device.vnetHeaderBytes()];
                buf.flip().position(device.vnetHeaderBytes());
                buf.get(got);
                assertArrayEquals(frame("concurrent", i), got, "frame " + i);
            }
        } finally {
            writer.join(10_000);
        }
        assertEquals(0, Syscalls.pollIn(new int[] {device.fd()}, 0), "drained: not readable");
    }
}
