package io.jtap.tap;

import com.sun.jna.Memory;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import io.jtap.xen.Availability;
import io.jtap.xen.linux.LibC;
import io.jtap.xen.linux.Syscalls;
import io.jtap.xen.linux.Syscalls.ErrnoException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.ReadOnlyBufferException;
import java.nio.channels.ClosedChannelException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A TAP interface of the Linux tun driver, opened through {@code /dev/net/tun} with
 * {@code IFF_TAP | IFF_NO_PI | IFF_VNET_HDR}: one fd, frames with a 12-byte little-endian virtio-net header,
 * non-blocking and close-on-exec.
 *
 * <p>Bringing the link up, addressing it or enslaving it to a bridge is left to the hotplug script (Xen's
 * {@code vif-bridge}) or {@code ip}: it needs a netlink or {@code SIOCSIFFLAGS} socket, not the tun fd. The fd keeps
 * working when the interface is moved to another network namespace.
 *
 * <p>Data-path calls ({@link #read}, {@link #write}) go through {@link TapNative} and cost no exception on the idle
 * path; a direct {@link ByteBuffer} is read and written in place, a heap buffer through a per-direction native bounce
 * buffer.
 */
public final class LinuxTap implements TapDevice {
    /** The tun clone device. */
    public static final String TUN_DEVICE_PATH = "/dev/net/tun";
    /** {@code CAP_NET_ADMIN} from {@code linux/capability.h}: needed to create an interface. */
    private static final int CAP_NET_ADMIN = 12;
    /** {@code AF_INET}, {@code SOCK_DGRAM} ({@code sys/socket.h}): the socket the MTU ioctls go through. */
    private static final int AF_INET = 2;
    private static final int SOCK_DGRAM = 2;
    /** The tun driver's limit on the queues of one device ({@code MAX_TAP_QUEUES}). */
    public static final int MAX_TAP_QUEUES = 256;

    private final int fd;
    private final String name;
    private final int maxQueues;
    /** Queues 1.. of a multi-queue device (queue 0 is this object); null for a queue or a single-queue device. */
    private final LinuxTap[] extraQueues;
    private final boolean ownedQueue;
    private volatile int queueCount = 1;
    private volatile boolean closed;
    private volatile int offload;
    private Memory readBounce;
    private Memory writeBounce;

    private LinuxTap(int fd, String name, int maxQueues, boolean ownedQueue) {
        this.fd = fd;
        this.name = name;
        this.maxQueues = maxQueues;
        this.ownedQueue = ownedQueue;
        this.extraQueues = maxQueues > 1 && !ownedQueue ? new LinuxTap[maxQueues - 1] : null;
    }

    /** Whether a TAP interface can be created here, and if not why (no tun device, no CAP_NET_ADMIN, no libc). */
    public static Availability availability() {
        return AvailabilityHolder.AVAILABILITY;
    }

    private static final class AvailabilityHolder {
        static final Availability AVAILABILITY = probe();
    }

    private static Availability probe() {
        if (LibC.loadFailure() != null) {
            return Availability.unavailable(LibC.loadFailure());
        }
        if (TapNative.loadFailure() != null) {
            return Availability.unavailable(TapNative.loadFailure());
        }
        if (!Files.exists(Path.of(TUN_DEVICE_PATH))) {
            return Availability.unavailable("no " + TUN_DEVICE_PATH + ": the tun module is not loaded or /dev is not"
                    + " populated");
        }
        try {
            Syscalls.close(Syscalls.open(TUN_DEVICE_PATH, LibC.O_RDWR));
        } catch (ErrnoException e) {
            return Availability.unavailable(
                    new IOException("cannot open " + TUN_DEVICE_PATH + ": " + e.getMessage(), e));
        }
        long capEff = effectiveCapabilities();
        if (capEff >= 0 && (capEff & (1L << CAP_NET_ADMIN)) == 0) {
            return Availability.unavailable("not permitted: creating a TAP interface needs CAP_NET_ADMIN, which this"
                    + " process lacks: CapEff=0x" + Long.toHexString(capEff));
        }
        return Availability.available();
    }

    /** {@code CapEff} from {@code /proc/self/status}, or -1 when it cannot be read. */
    private static long effectiveCapabilities() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"), StandardCharsets.US_ASCII)) {
                if (line.startsWith("CapEff:")) {
                    return Long.parseUnsignedLong(line.substring("CapEff:".length()).trim(), 16);
                }
            }
        } catch (IOException | NumberFormatException e) {
            return -1;
        }
        return -1;
    }

    /**
     * Creates (or attaches to an existing, e.g. persistent) TAP interface. Offloads start off
     * ({@code TUNSETOFFLOAD 0}).
     *
     * @param name the interface name, at most 15 bytes, or a template such as {@code tap%d}
     * @throws IllegalArgumentException for an invalid name (see {@link IfReqDescriptor#validateName})
     * @throws UnsatisfiedLinkError     when {@link #availability()} says the facility is unavailable
     * @throws ErrnoException           naming the failed call, e.g. {@code TUNSETIFF} with {@code EBUSY} when the name
     *                                  belongs to a device of another kind
     */
    public static LinuxTap open(String name) throws IOException {
        return open(name, 1);
    }

    /**
     * Creates (or attaches to) a TAP interface with up to {@code maxQueues} queues: with more than one it is opened
     * {@code IFF_MULTI_QUEUE}, with queue 0 attached; {@link #setQueueCount} attaches further queues, each an fd of its
     * own on the same interface. The kernel spreads the frames it sends over the attached queues by its flow hash
     * ({@code tun_select_queue}). Offloads start off.
     *
     * @param maxQueues between 1 and {@link #MAX_TAP_QUEUES}; 1 opens a plain single-queue device as
     *     {@link #open(String)}
     */
    public static LinuxTap open(String name, int maxQueues) throws IOException {
        if (maxQueues < 1 || maxQueues > MAX_TAP_QUEUES) {
            throw new IllegalArgumentException("maxQueues out of range: name=" + name + ", maxQueues=" + maxQueues
                    + ", range=1.." + MAX_TAP_QUEUES);
        }
        String[] actualName = new String[1];
        int fd = openFd(name, maxQueues > 1, actualName);
        try {
            LinuxTap tap = new LinuxTap(fd, actualName[0], maxQueues, false);
            tap.setOffload(0);
            return tap;
        } catch (IOException | RuntimeException e) {
            try {
                Syscalls.close(fd);
            } catch (IOException closeFailure) {
                e.addSuppressed(closeFailure);
            }
            throw e;
        }
    }

    /** Opens the tun clone device and attaches it to interface {@code name} with jtap's flags and header. */
    private static int openFd(String name, boolean multiQueue, String[] actualName) throws IOException {
        byte[] nameBytes = IfReqDescriptor.validateName(name);
        availability().ensureAvailability("LinuxTap");
        int fd = Syscalls.open(TUN_DEVICE_PATH, LibC.O_RDWR | LibC.O_NONBLOCK);
        try (Memory ifr = new Memory(IfReqDescriptor.LENGTH); Memory intArg = new Memory(4)) {
            ifr.clear();
            ifr.write(IfReqDescriptor.IFR_NAME_OFFSET, nameBytes, 0, nameBytes.length);
            short flags = (short) (IfTun.IFF_TAP | IfTun.IFF_NO_PI | IfTun.IFF_VNET_HDR
                    | (multiQueue ? IfTun.IFF_MULTI_QUEUE : 0));
            ifr.setShort(IfReqDescriptor.IFR_FLAGS_OFFSET, flags);
            try {
                Syscalls.ioctl(fd, IfTun.TUNSETIFF, ifr, "TUNSETIFF");
            } catch (ErrnoException e) {
                throw new ErrnoException("ioctl(TUNSETIFF, name=" + name + ", flags=IFF_TAP|IFF_NO_PI|IFF_VNET_HDR"
                        + (multiQueue ? "|IFF_MULTI_QUEUE" : "") + ")", e.errno());
            }
            actualName[0] = ifr.getString(IfReqDescriptor.IFR_NAME_OFFSET, StandardCharsets.US_ASCII.name());

            intArg.setInt(0, VirtioNetHeaderDescriptor.LENGTH);
            Syscalls.ioctl(fd, IfTun.TUNSETVNETHDRSZ, intArg, "TUNSETVNETHDRSZ");
            intArg.setInt(0, 1);
            try {
                Syscalls.ioctl(fd, IfTun.TUNSETVNETLE, intArg, "TUNSETVNETLE");
            } catch (ErrnoException e) {
                // Kernels before 4.1 lack TUNSETVNETLE; their legacy header is native-endian, which is LE here.
                if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
                    throw e;
                }
            }
            return fd;
        } catch (IOException | RuntimeException e) {
            try {
                Syscalls.close(fd);
            } catch (IOException closeFailure) {
                e.addSuppressed(closeFailure);
            }
            throw e;
        }
    }

    @Override
    public int maxQueues() {
        return maxQueues;
    }

    @Override
    public int queueCount() {
        return queueCount;
    }

    /**
     * Opens ({@code TUNSETIFF | IFF_MULTI_QUEUE} on a new fd of the same name) or closes the fds of queues 1.. so that
     * {@code count} are attached. A closed queue's frames in flight are lost, as with a NIC's queue that goes away.
     */
    @Override
    public synchronized void setQueueCount(int count) throws IOException {
        ensureOpen();
        if (ownedQueue || count < 1 || count > maxQueues) {
            throw new IllegalArgumentException("queue count out of range: device=" + name + ", count=" + count
                    + ", maxQueues=" + (ownedQueue ? 0 : maxQueues));
        }
        for (int q = queueCount; q < count; q++) {
            String[] actualName = new String[1];
            int qfd = openFd(name, true, actualName);
            extraQueues[q - 1] = new LinuxTap(qfd, name, maxQueues, true);
            queueCount = q + 1;
        }
        for (int q = queueCount - 1; q >= count; q--) {
            LinuxTap queue = extraQueues[q - 1];
            extraQueues[q - 1] = null;
            queueCount = q;
            queue.closeQueue();
        }
    }

    @Override
    public TapDevice queue(int index) {
        int count = queueCount;
        if (index < 0 || index >= count) {
            throw new IndexOutOfBoundsException("no such queue: device=" + name + ", index=" + index + ", queues="
                    + count);
        }
        return index == 0 ? this : extraQueues[index - 1];
    }

    /** {@code SIOCGIFMTU} on an {@code AF_INET} socket, by name in the calling thread's network namespace. */
    @Override
    public int mtu() throws IOException {
        return mtuIoctl(IfTun.SIOCGIFMTU, 0, "SIOCGIFMTU");
    }

    /** {@code SIOCSIFMTU} on an {@code AF_INET} socket, by name in the calling thread's network namespace. */
    @Override
    public void setMtu(int bytes) throws IOException {
        TapDevice.checkMtu(this, bytes);
        mtuIoctl(IfTun.SIOCSIFMTU, bytes, "SIOCSIFMTU");
    }

    private int mtuIoctl(long request, int value, String call) throws IOException {
        ensureOpen();
        byte[] nameBytes = name.getBytes(StandardCharsets.US_ASCII);
        int sock = Syscalls.socket(AF_INET, SOCK_DGRAM, 0);
        try (Memory ifr = new Memory(IfReqDescriptor.LENGTH)) {
            ifr.clear();
            ifr.write(IfReqDescriptor.IFR_NAME_OFFSET, nameBytes, 0, nameBytes.length);
            ifr.setInt(IfReqDescriptor.IFR_MTU_OFFSET, value);
            try {
                Syscalls.ioctl(sock, request, ifr, call);
            } catch (ErrnoException e) {
                throw new ErrnoException("ioctl(" + call + ", device=" + name + (request == IfTun.SIOCSIFMTU
                        ? ", mtu=" + value : "") + ")", e.errno());
            }
            return ifr.getInt(IfReqDescriptor.IFR_MTU_OFFSET);
        } finally {
            Syscalls.close(sock);
        }
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public int vnetHeaderBytes() {
        return VirtioNetHeaderDescriptor.LENGTH;
    }

    /** {@code TUNSETOFFLOAD}. */
    @Override
    public void setOffload(int flags) throws IOException {
        TapDevice.checkOffload(flags);
        ensureOpen();
        try {
            Syscalls.ioctl(fd, IfTun.TUNSETOFFLOAD, flags, "TUNSETOFFLOAD");
        } catch (ErrnoException e) {
            throw new ErrnoException("ioctl(TUNSETOFFLOAD, device=" + name + ", flags=0x" + Integer.toHexString(flags)
                    + ")", e.errno());
        }
        offload = flags;
    }

    @Override
    public int offload() {
        return offload;
    }

    /** {@code TUNSETPERSIST}: whether the interface outlives this fd. jtap's own devices are never persistent. */
    public void setPersist(boolean persist) throws IOException {
        ensureOpen();
        Syscalls.ioctl(fd, IfTun.TUNSETPERSIST, persist ? 1 : 0, "TUNSETPERSIST");
    }

    /** {@code TUNGETVNETHDRSZ}: the header length the kernel uses, for checks. */
    public int kernelVnetHeaderBytes() throws IOException {
        ensureOpen();
        try (Memory intArg = new Memory(4)) {
            Syscalls.ioctl(fd, IfTun.TUNGETVNETHDRSZ, intArg, "TUNGETVNETHDRSZ");
            return intArg.getInt(0);
        }
    }

    @Override
    public int read(ByteBuffer frame) throws IOException {
        ensureOpen();
        if (frame.isReadOnly()) {
            throw new ReadOnlyBufferException();
        }
        int position = frame.position();
        int room = frame.remaining();
        TapDevice.checkReadRoom(this, room);
        long n;
        if (frame.isDirect()) {
            n = TapNative.readRaw(fd, address(frame) + position, room);
        } else {
            Memory bounce = readBounce();
            n = TapNative.readRaw(fd, Pointer.nativeValue(bounce), bounce.size());
            if (n > 0) {
                bounce.read(0, frame.array(), frame.arrayOffset() + position, (int) n);
            }
        }
        if (n < 0) {
            if (n == -TapNative.EAGAIN) {
                return 0;
            }
            throw new ErrnoException("read(device=" + name + ")", (int) -n);
        }
        frame.position(position + (int) n);
        return (int) n;
    }

    @Override
    public int write(ByteBuffer frame) throws IOException {
        ensureOpen();
        int position = frame.position();
        int length = frame.remaining();
        TapDevice.checkWriteLength(this, length);
        long n;
        if (frame.isDirect()) {
            n = TapNative.writeRaw(fd, address(frame) + position, length);
        } else {
            Memory bounce = writeBounce();
            if (frame.hasArray()) {
                bounce.write(0, frame.array(), frame.arrayOffset() + position, length);
            } else {
                byte[] copy = new byte[length];
                frame.duplicate().get(copy);
                bounce.write(0, copy, 0, length);
            }
            n = TapNative.writeRaw(fd, Pointer.nativeValue(bounce), length);
        }
        if (n < 0) {
            if (n == -TapNative.EAGAIN) {
                return 0;
            }
            throw new ErrnoException("write(device=" + name + ", length=" + length + ")", (int) -n);
        }
        if (n != length) {
            throw new IOException("short write to a TAP device: device=" + name + ", length=" + length + ", written="
                    + n);
        }
        frame.position(position + length);
        return length;
    }

    @Override
    public int fd() {
        return fd;
    }

    /** Closes the device and every queue; for a queue returned by {@link #queue(int)} a no-op (the device owns it). */
    @Override
    public void close() throws IOException {
        if (ownedQueue) {
            return;
        }
        synchronized (this) {
            if (extraQueues != null) {
                for (int q = extraQueues.length - 1; q >= 0; q--) {
                    if (extraQueues[q] != null) {
                        extraQueues[q].closeQueue();
                        extraQueues[q] = null;
                    }
                }
                queueCount = 1;
            }
        }
        closeQueue();
    }

    private void closeQueue() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        try {
            Syscalls.close(fd);
        } finally {
            if (readBounce != null) {
                readBounce.close();
            }
            if (writeBounce != null) {
                writeBounce.close();
            }
        }
    }

    @Override
    public String toString() {
        return "LinuxTap{name=" + name + ", fd=" + fd + (closed ? ", closed" : "") + "}";
    }

    private void ensureOpen() throws ClosedChannelException {
        if (closed) {
            throw new ClosedChannelException();
        }
    }

    private static long address(ByteBuffer direct) {
        return Pointer.nativeValue(Native.getDirectBufferPointer(direct));
    }

    private Memory readBounce() {
        if (readBounce == null) {
            readBounce = new Memory(vnetHeaderBytes() + MAX_FRAME_BYTES);
        }
        return readBounce;
    }

    private Memory writeBounce() {
        if (writeBounce == null) {
            writeBounce = new Memory(vnetHeaderBytes() + MAX_FRAME_BYTES);
        }
        return writeBounce;
    }
}
