package io.jtap.tap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.xen.linux.Syscalls;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ReadOnlyBufferException;
import java.nio.channels.ClosedChannelException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * What every {@link TapDevice} does, tested the same way for {@link LinuxTap} and {@link SimulatedTap}: the name, the
 * 12-byte header, frames both ways through the device's host side, pollability of {@link TapDevice#fd()}, offload
 * flags, and the errors for frames that are too short or too long.
 *
 * <p>The frames use the IEEE local experimental EtherType 0x88B5, which no network stack acts on; a host side reports
 * only those, so that a real kernel's own chatter does not disturb the tests.
 */
public abstract class TapDeviceContract {
    /** IEEE 802 local experimental EtherType 1. */
    public static final int ETHERTYPE_EXPERIMENTAL = Packets.ETHERTYPE_EXPERIMENTAL;
    private static final Duration WAIT = Duration.ofSeconds(5);
    private static final byte[] BROADCAST = {-1, -1, -1, -1, -1, -1};
    private static final byte[] SOURCE = {0x02, 0x6a, 0x74, 0x61, 0x70, 0x01};
    private static final AtomicInteger NAMES = new AtomicInteger();

    /** The far side of a device: the kernel for a {@link LinuxTap}, the host end for a {@link SimulatedTap}. */
    public interface HostSide extends AutoCloseable {
        /** Sends an Ethernet frame (no virtio-net header) towards the device, which then reads it. */
        void send(byte[] ethernetFrame) throws IOException;

        /**
         * The next Ethernet frame (no virtio-net header) with EtherType {@link #ETHERTYPE_EXPERIMENTAL} that the device
         * wrote, or {@code null} when none comes within {@code timeout}.
         */
        byte[] receive(Duration timeout) throws IOException;

        @Override
        void close() throws IOException;
    }

    /** Opens a fresh device called {@code name}, ready for traffic both ways (for Linux: link up). */
    protected abstract TapDevice open(String name) throws IOException;

    /** Opens the host side of {@code device}; closed by the contract before the device. */
    protected abstract HostSide hostSide(TapDevice device) throws IOException;

    /** Runs after each test once the device and its host side are closed, e.g. to check for leaks. */
    protected void afterClose() throws IOException {
    }

    protected TapDevice device;
    protected HostSide host;
    protected String requestedName;

    @BeforeEach
    void openDevice() throws IOException {
        requestedName = "jtc" + ProcessHandle.current().pid() % 10_000 + "x" + NAMES.incrementAndGet();
        device = open(requestedName);
        host = hostSide(device);
    }

    @AfterEach
    void closeDevice() throws IOException {
        try {
            if (host != null) {
                host.close();
            }
        } finally {
            if (device != null) {
                device.close();
            }
        }
        afterClose();
    }

    @Test
    void nameIsTheRequestedName() {
        assertEquals(requestedName, device.name());
    }

    @Test
    void vnetHeaderIsTheTwelveByteV1Layout() {
        assertEquals(VirtioNetHeaderDescriptor.LENGTH, device.vnetHeaderBytes());
        assertEquals(12, device.vnetHeaderBytes());
    }

    @Test
    void aFrameWrittenToTheDeviceReachesTheHostSide() throws IOException {
        byte[] frame = frame("device to host", 0);
        ByteBuffer buf = Packets.withHeader(frame);
        int length = buf.remaining();
        assertEquals(length, device.write(buf));
        assertEquals(buf.limit(), buf.position(), "write consumes the frame");
        assertArrayEquals(frame, host.receive(WAIT));
    }

    @Test
    void aFrameFromTheHostSideIsReadWithAHeaderAndTheFdPolls() throws IOException {
        drain();
        assertEquals(0, Syscalls.pollIn(new int[] {device.fd()}, 0), "idle: fd not readable");
        ByteBuffer buf = ByteBuffer.allocateDirect(device.vnetHeaderBytes() + TapDevice.MAX_FRAME_BYTES);
        assertEquals(0, device.read(buf), "idle: read returns 0");
        assertEquals(0, buf.position());

        byte[] frame = frame("host to device", 0);
        host.send(frame);
        assertEquals(1, Syscalls.pollIn(new int[] {device.fd()}, (int) WAIT.toMillis()), "fd readable");
        byte[] read = readExperimental(buf);
        assertEquals(VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_GSO_NONE, VirtioNetHeaderDescriptor.gsoType(
                ByteBuffer.wrap(read), 0));
        assertArrayEquals(frame, Arrays.copyOfRange(read, device.vnetHeaderBytes(), read.length));

        drain();
        assertEquals(0, Syscalls.pollIn(new int[] {device.fd()}, 0), "drained: fd no longer readable");
    }

    @Test
    void aHeapBufferWorksLikeADirectOne() throws IOException {
        byte[] frame = frame("heap buffer", 0);
        ByteBuffer out = ByteBuffer.allocate(100);
        out.position(7); // the frame need not start at 0
        out.put(new byte[device.vnetHeaderBytes()]).put(frame).flip().position(7);
        assertEquals(device.vnetHeaderBytes() + frame.length, device.write(out));
        assertArrayEquals(frame, host.receive(WAIT));

        host.send(frame);
        ByteBuffer in = ByteBuffer.allocate(3 + device.vnetHeaderBytes() + TapDevice.MAX_FRAME_BYTES);
        in.position(3);
        byte[] read = readExperimental(in);
        assertArrayEquals(frame, Arrays.copyOfRange(read, device.vnetHeaderBytes(), read.length));
    }

    @Test
    void batchesKeepTheOrder() throws IOException {
        ByteBuffer[] out = new ByteBuffer[3];
        for (int i = 0; i < out.length; i++) {
            out[i] = Packets.withHeader(frame("batch out", i));
        }
        assertEquals(3, device.writeBatch(out));
        for (int i = 0; i < out.length; i++) {
            assertArrayEquals(frame("batch out", i), host.receive(WAIT), "frame " + i);
        }

        drain();
        for (int i = 0; i < 3; i++) {
            host.send(frame("batch in", i));
        }
        ByteBuffer[] in = new ByteBuffer[8];
        for (int i = 0; i < in.length; i++) {
            in[i] = ByteBuffer.allocateDirect(device.vnetHeaderBytes() + TapDevice.MAX_FRAME_BYTES);
        }
        int[] lengths = new int[in.length];
        List<byte[]> got = new ArrayList<>();
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (got.size() < 3 && System.nanoTime() < deadline) {
            Syscalls.pollIn(new int[] {device.fd()}, 100);
            for (ByteBuffer b : in) {
                b.clear();
            }
            int n = device.readBatch(in, lengths);
            for (int i = 0; i < n; i++) {
                assertEquals(lengths[i], in[i].position());
                byte[] frame = new byte[lengths[i] - device.vnetHeaderBytes()];
                in[i].flip().position(device.vnetHeaderBytes());
                in[i].get(frame);
                if (isExperimental(frame)) {
                    got.add(frame);
                }
            }
        }
        assertEquals(3, got.size());
        for (int i = 0; i < 3; i++) {
            assertArrayEquals(frame("batch in", i), got.get(i), "frame " + i);
        }
    }

    @Test
    void theLargestFrameGoesThrough() throws IOException {
        byte[] frame = Arrays.copyOf(frame("largest", 0), TapDevice.MAX_FRAME_BYTES);
        assertEquals(device.vnetHeaderBytes() + TapDevice.MAX_FRAME_BYTES, device.write(Packets.withHeader(frame)));
        assertArrayEquals(frame, host.receive(WAIT));
    }

    @ParameterizedTest(name = "flags=0x{0}")
    @ValueSource(ints = {0, 0x01, 0x03, 0x05, 0x07, 0x0f, 0x0d, 0x11, 0x1f})
    void offloadCombinationsTheKernelAcceptsAreAccepted(int flags) throws IOException {
        device.setOffload(flags);
        assertEquals(flags, device.offload());
    }

    @ParameterizedTest(name = "flags=0x{0}")
    @ValueSource(ints = {0x02, 0x10, 0x09, 0x21, 0x41, 0x80, 0x100})
    void offloadCombinationsTheKernelRejectsAreRejected(int flags) throws IOException {
        device.setOffload(TapDevice.TUN_F_CSUM);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> device.setOffload(flags));
        assertTrue(e.getMessage().contains("flags=0x" + Integer.toHexString(flags)), e.getMessage());
        assertEquals(TapDevice.TUN_F_CSUM, device.offload(), "a rejected call changes nothing");
    }

    @Test
    void framesShorterThanHeaderPlusEthernetHeaderAreRejected() {
        int min = device.vnetHeaderBytes() + TapDevice.ETH_HLEN;
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> device.write(ByteBuffer.allocateDirect(min - 1)));
        assertTrue(e.getMessage().startsWith("frame too short: device=" + device.name()), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> device.write(ByteBuffer.allocate(0)));
    }

    @Test
    void framesLongerThanTheMaximumAreRejected() {
        int max = device.vnetHeaderBytes() + TapDevice.MAX_FRAME_BYTES;
        ByteBuffer tooLong = ByteBuffer.allocateDirect(max + 1);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> device.write(tooLong));
        assertTrue(e.getMessage().startsWith("frame too long: device=" + device.name()), e.getMessage());
        assertEquals(0, tooLong.position(), "a rejected frame is not consumed");
    }

    @Test
    void readBuffersTooSmallForTheLargestFrameAreRejected() {
        int min = device.vnetHeaderBytes() + TapDevice.MAX_FRAME_BYTES;
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> device.read(ByteBuffer.allocateDirect(min - 1)));
        assertTrue(e.getMessage().startsWith("read buffer too small: device=" + device.name()), e.getMessage());
        assertThrows(ReadOnlyBufferException.class, () -> device.read(ByteBuffer.allocate(min).asReadOnlyBuffer()));
    }

    @Test
    void aClosedDeviceRefusesIoAndClosesOnce() throws IOException {
        device.close();
        assertThrows(ClosedChannelException.class, () -> device.write(Packets.withHeader(frame("closed", 0))));
        assertThrows(ClosedChannelException.class,
                () -> device.read(ByteBuffer.allocate(device.vnetHeaderBytes() + TapDevice.MAX_FRAME_BYTES)));
        assertThrows(ClosedChannelException.class, () -> device.setOffload(0));
        device.close();
    }

    /** A 60-byte (minimum Ethernet size) broadcast frame of EtherType 0x88B5 whose payload names itself. */
    protected static byte[] frame(String what, int index) {
        byte[] text = (what + " #" + index).getBytes(java.nio.charset.StandardCharsets.US_ASCII);
        byte[] payload = Arrays.copyOf(text, Math.max(46, text.length));
        return Packets.ethernet(BROADCAST, SOURCE, ETHERTYPE_EXPERIMENTAL, payload);
    }

    protected static boolean isExperimental(byte[] ethernetFrame) {
        return ethernetFrame.length >= TapDevice.ETH_HLEN
                && ((ethernetFrame[12] & 0xff) << 8 | (ethernetFrame[13] & 0xff)) == ETHERTYPE_EXPERIMENTAL;
    }

    /** Reads frames until an experimental one arrives; returns it with its virtio-net header. */
    private byte[] readExperimental(ByteBuffer buf) throws IOException {
        int start = buf.position();
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (System.nanoTime() < deadline) {
            buf.position(start);
            int length = device.read(buf);
            if (length == 0) {
                Syscalls.pollIn(new int[] {device.fd()}, 100);
                continue;
            }
            assertEquals(start + length, buf.position(), "read advances the position by the length");
            byte[] read = new byte[length];
            buf.position(start);
            buf.get(read);
            if (isExperimental(Arrays.copyOfRange(read, device.vnetHeaderBytes(), read.length))) {
                return read;
            }
        }
        throw new AssertionError("no frame from the host side within " + WAIT + ": device=" + device.name());
    }

    private void drain() throws IOException {
        ByteBuffer buf = ByteBuffer.allocateDirect(device.vnetHeaderBytes() + TapDevice.MAX_FRAME_BYTES);
        while (device.read(buf) != 0) {
            buf.clear();
        }
    }
}
