package io.jtap.tap;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * The TAP device behind a guest's network interface: Ethernet frames in and out, each preceded by a
 * {@link VirtioNetHeaderDescriptor virtio-net header} that carries checksum and segmentation offload metadata.
 *
 * <p>Shaped after the Linux tun driver with {@code IFF_TAP | IFF_NO_PI | IFF_VNET_HDR} because that is the device
 * netback feeds: one {@code read} returns exactly one frame, one {@code write} sends exactly one frame, the fd is
 * non-blocking and pollable, so a duty-cycle event loop can drain it. {@link LinuxTap} is the kernel device,
 * {@link SimulatedTap} an in-process one; both pass the same contract test.
 *
 * <p><b>Direction.</b> {@link #write} hands a frame to the host side (for Linux: the kernel receives it as if it came
 * off the wire); {@link #read} takes a frame the host side sent towards the guest.
 *
 * <p><b>Frames.</b> Every frame passed to {@link #read} / {@link #write} starts with a {@link #vnetHeaderBytes()}-byte
 * virtio-net header, followed by the Ethernet frame (destination MAC first, no FCS). The Ethernet part is between
 * {@link #ETH_HLEN} and {@link #MAX_FRAME_BYTES} bytes long.
 *
 * <p><b>Threads.</b> At most one thread reads and at most one thread writes at a time; reading and writing may happen
 * concurrently. {@link #close()} is called by the owner once neither is in progress.
 */
public interface TapDevice extends AutoCloseable {
    /** {@code TUNSETOFFLOAD}: the reader can take frames with a partial checksum ({@code NEEDS_CSUM}). */
    int TUN_F_CSUM = 0x01;
    /** {@code TUNSETOFFLOAD}: the reader can take IPv4 TCP GSO frames. Needs {@link #TUN_F_CSUM}. */
    int TUN_F_TSO4 = 0x02;
    /** {@code TUNSETOFFLOAD}: the reader can take IPv6 TCP GSO frames. Needs {@link #TUN_F_CSUM}. */
    int TUN_F_TSO6 = 0x04;
    /** {@code TUNSETOFFLOAD}: the reader can take TSO frames with ECN. Needs TSO4 or TSO6. */
    int TUN_F_TSO_ECN = 0x08;
    /** {@code TUNSETOFFLOAD}: UDP fragmentation offload; accepted and ignored by Linux since 4.14. */
    int TUN_F_UFO = 0x10;
    /** {@code TUNSETOFFLOAD}: IPv4 UDP segmentation offload (Linux 6.2+; not in older uapi headers). */
    int TUN_F_USO4 = 0x20;
    /** {@code TUNSETOFFLOAD}: IPv6 UDP segmentation offload (Linux 6.2+; must be set together with USO4). */
    int TUN_F_USO6 = 0x40;

    /** Ethernet header: destination MAC, source MAC, EtherType. */
    int ETH_HLEN = 14;
    /**
     * Largest Ethernet frame (without the virtio header): Ethernet header, one VLAN tag (4), an IPv6 header (40) and
     * the largest IPv6 payload (65535). A GSO frame is bounded by the IP length field, and IPv4's total length includes
     * its header, so this covers both. BIG TCP jumbograms are not supported.
     */
    int MAX_FRAME_BYTES = ETH_HLEN + 4 + 40 + 65_535;

    /** The interface name, e.g. {@code vif3.0} or {@code tap0}: at most 15 bytes. */
    String name();

    /** Length of the virtio-net header in front of each frame: {@link VirtioNetHeaderDescriptor#LENGTH} (12). */
    int vnetHeaderBytes();

    /**
     * Tells the device which offloads the reader handles (Linux: {@code TUNSETOFFLOAD}); frames read afterwards may
     * carry partial checksums and GSO metadata accordingly. Frames written may use any offload regardless.
     *
     * @param flags a combination of {@code TUN_F_*}; see {@link #checkOffload(int)} for the accepted combinations
     * @throws IllegalArgumentException for unknown bits or a combination the tun driver rejects
     */
    void setOffload(int flags) throws IOException;

    /** The flags last accepted by {@link #setOffload(int)}, 0 initially. */
    int offload();

    /**
     * Reads one frame (virtio-net header + Ethernet frame) into {@code frame} at its position, and advances the
     * position past it.
     *
     * @param frame needs at least {@code vnetHeaderBytes() + MAX_FRAME_BYTES} bytes remaining
     * @return the frame's length in bytes, or 0 when no frame is waiting (the idle path; the device never blocks)
     * @throws IllegalArgumentException when {@code frame} has too little room
     * @throws java.nio.channels.ClosedChannelException after {@link #close()}
     */
    int read(ByteBuffer frame) throws IOException;

    /**
     * Writes one frame, the bytes from {@code frame}'s position to its limit, and advances the position to the limit.
     *
     * @return the frame's length, or 0 when the device cannot take it now (queue full; retry when writable)
     * @throws IllegalArgumentException when the frame is shorter than {@code vnetHeaderBytes() + ETH_HLEN} or longer
     *                                  than {@code vnetHeaderBytes() + MAX_FRAME_BYTES}
     * @throws java.nio.channels.ClosedChannelException after {@link #close()}
     * @throws IOException for a Linux interface that is down: {@code EIO} (the tun driver refuses, it does not drop)
     */
    int write(ByteBuffer frame) throws IOException;

    /**
     * A file descriptor that polls readable (POLLIN) while {@link #read} would return a frame, for an event loop. Owned
     * by the device: do not close it, and do not read from it directly.
     */
    int fd();

    /**
     * Reads up to {@code frames.length} frames, one per buffer, stopping at the first empty read.
     *
     * @param lengths receives each frame's length; {@code lengths.length >= frames.length}
     * @return the number of frames read (0 when idle)
     */
    default int readBatch(ByteBuffer[] frames, int[] lengths) throws IOException {
        int n = 0;
        while (n < frames.length) {
            int length = read(frames[n]);
            if (length == 0) {
                break;
            }
            lengths[n++] = length;
        }
        return n;
    }

    /**
     * Writes the frames in order, stopping at the first one the device cannot take now.
     *
     * @return the number of frames written
     */
    default int writeBatch(ByteBuffer[] frames) throws IOException {
        int n = 0;
        while (n < frames.length && write(frames[n]) != 0) {
            n++;
        }
        return n;
    }

    /**
     * How many queues this device can have: more than 1 only for a device opened multi-queue (Linux
     * {@code IFF_MULTI_QUEUE}: one fd per queue, one interface name), 1 otherwise.
     */
    default int maxQueues() {
        return 1;
    }

    /** How many queues are attached now, between 1 and {@link #maxQueues()}. */
    default int queueCount() {
        return 1;
    }

    /**
     * Attaches or detaches queues so that {@code count} are attached (Linux: opens further fds with
     * {@code TUNSETIFF | IFF_MULTI_QUEUE}, or closes them). The host side spreads the frames it sends over the attached
     * queues by its own flow hash; a frame written to any queue goes to the host side. Queue 0 is this device and is
     * always attached. Call it while no queue other than 0 is being read or written.
     *
     * @throws IllegalArgumentException when {@code count} is not between 1 and {@link #maxQueues()}
     */
    default void setQueueCount(int count) throws IOException {
        if (count != 1) {
            throw new IllegalArgumentException("queue count out of range: device=" + name() + ", count=" + count
                    + ", maxQueues=1");
        }
    }

    /**
     * Queue {@code index}: a device of its own for reading (the frames the host side steered to this queue) and
     * writing, with its own {@link #fd()}; {@code queue(0)} is this device. Owned by this device: closing it is a
     * no-op, {@link #close()} of this device releases every queue. The threading rule holds per queue.
     *
     * @throws IndexOutOfBoundsException unless {@code 0 <= index < queueCount()}
     */
    default TapDevice queue(int index) {
        if (index != 0) {
            throw new IndexOutOfBoundsException("no such queue: device=" + name() + ", index=" + index + ", queues=1");
        }
        return this;
    }

    /**
     * The interface's MTU in bytes (Linux: {@code SIOCGIFMTU}). A {@link LinuxTap} looks the interface up by name in
     * the calling thread's network namespace.
     */
    default int mtu() throws IOException {
        throw new UnsupportedOperationException("MTU not supported: device=" + name());
    }

    /**
     * Sets the interface's MTU in bytes (Linux: {@code SIOCSIFMTU} on an {@code AF_INET} socket, looked up by name in
     * the calling thread's network namespace, so call it before the interface is moved elsewhere). It bounds what the
     * host side sends unsegmented; GSO frames are bounded by {@link #MAX_FRAME_BYTES} regardless.
     *
     * @throws IllegalArgumentException for an MTU outside {@link #MIN_MTU}..{@link #MAX_MTU}
     */
    default void setMtu(int bytes) throws IOException {
        throw new UnsupportedOperationException("MTU not supported: device=" + name());
    }

    /** Smallest MTU jtap sets: IPv4's minimum (Linux's tun allows 68). */
    int MIN_MTU = 68;
    /** Largest MTU jtap sets: the largest IP packet (Linux's tun allows up to 65535). */
    int MAX_MTU = 65_535;

    /** Validates an MTU about to be set; shared by the implementations. */
    static void checkMtu(TapDevice device, int bytes) {
        if (bytes < MIN_MTU || bytes > MAX_MTU) {
            throw new IllegalArgumentException("MTU out of range: device=" + device.name() + ", mtu=" + bytes
                    + ", range=" + MIN_MTU + ".." + MAX_MTU);
        }
    }

    /** Releases the device; the interface of a {@link LinuxTap} disappears unless it was made persistent. */
    @Override
    void close() throws IOException;

    /**
     * Checks {@code flags} the way Linux's {@code set_offload()} in {@code drivers/net/tun.c} does: every offload
     * needs {@link #TUN_F_CSUM}, {@link #TUN_F_TSO_ECN} needs TSO4 or TSO6, USO4 and USO6 go together, no other bits.
     *
     * @throws IllegalArgumentException naming the rule that {@code flags} breaks
     */
    static void checkOffload(int flags) {
        int known = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_UFO | TUN_F_USO4 | TUN_F_USO6;
        String problem = null;
        if ((flags & ~known) != 0) {
            problem = "unknown TUN_F_ bits";
        } else if (flags != 0 && (flags & TUN_F_CSUM) == 0) {
            problem = "offloads need TUN_F_CSUM";
        } else if ((flags & TUN_F_TSO_ECN) != 0 && (flags & (TUN_F_TSO4 | TUN_F_TSO6)) == 0) {
            problem = "TUN_F_TSO_ECN needs TUN_F_TSO4 or TUN_F_TSO6";
        } else if (((flags & TUN_F_USO4) != 0) != ((flags & TUN_F_USO6) != 0)) {
            problem = "TUN_F_USO4 and TUN_F_USO6 must be set together";
        }
        if (problem != null) {
            throw new IllegalArgumentException("offload flags rejected: " + problem + ", flags=0x"
                    + Integer.toHexString(flags));
        }
    }

    /** Validates the length of a frame about to be written; shared by the implementations. */
    static void checkWriteLength(TapDevice device, int length) {
        int min = device.vnetHeaderBytes() + ETH_HLEN;
        int max = device.vnetHeaderBytes() + MAX_FRAME_BYTES;
        if (length < min) {
            throw new IllegalArgumentException("frame too short: device=" + device.name() + ", length=" + length
                    + ", minimum=" + min);
        }
        if (length > max) {
            throw new IllegalArgumentException("frame too long: device=" + device.name() + ", length=" + length
                    + ", maximum=" + max);
        }
    }

    /** Validates the room in a buffer about to be read into; shared by the implementations. */
    static void checkReadRoom(TapDevice device, int remaining) {
        int min = device.vnetHeaderBytes() + MAX_FRAME_BYTES;
        if (remaining < min) {
            throw new IllegalArgumentException("read buffer too small: device=" + device.name() + ", remaining="
                    + remaining + ", minimum=" + min);
        }
    }
}
