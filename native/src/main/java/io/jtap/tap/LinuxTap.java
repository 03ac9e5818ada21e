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
 * {@code IFF_TAP | IFF_NO_PI | IFF_VNET_HDR}: one fd, frames with a 12-byte little-endian virtio-net header, non-blocking
 * and close-on-exec.
 *
 * <p>Bringing the link up, addressing it or enslaving it to a bridge is left to the hotplug script (Xen's
 * {@code vif-bridge}) or {@code ip}: it needs a netlink or {@code SIOCSIFFLAGS} socket, not the tun fd. The fd keeps
 * working when the interface is moved to another network namespace.
 *
 * <p>Data-path calls ({@link #read}, {@link #write}) go through {@link TapNative} and cost no exception on the idle path;
 * a direct {@link ByteBuffer} is read and written in place, a heap buffer through a per-direction native bounce buffer.
 */
public final class LinuxTap implements TapDevice {
    /** The tun clone device. */
    public static final String TUN_DEVICE_PATH = "/dev/net/tun";
    /** {@code CAP_NET_ADMIN} from {@code linux/capability.h}: needed to create an interface. */
    private static final int CAP_NET_ADMIN = 12;

    private final int fd;
    private final String name;
    private volatile boolean closed;
    private volatile int offload;
    private Memory readBounce;
    private Memory writeBounce;

    private LinuxTap(int fd, String name) {
        this.fd = fd;
        this.name = name;
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
            return Availability.unavailable(new IOException("cannot open " + TUN_DEVICE_PATH + ": " + e.getMessage(), e));
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
     * Creates (or attaches to an existing, e.g. persistent) TAP interface. Offloads start off ({@code TUNSETOFFLOAD 0}).
     *
     * @param name the interface name, at most 15 bytes, or a template such as {@code tap%d}
     * @throws IllegalArgumentException for an invalid name (see {@link IfReqDescriptor#validateName})
     * @throws UnsatisfiedLinkError     when {@link #availability()} says the facility is unavailable
     * @throws ErrnoException           naming the failed call, e.g. {@code TUNSETIFF} with {@code EBUSY} when the name
     *                                  belongs to a device of another kind
     */
    public static LinuxTap open(String name) throws IOException {
        byte[] nameBytes = IfReqDescriptor.validateName(name);
        availability().ensureAvailability("LinuxTap");
        int fd = Syscalls.open(TUN_DEVICE_PATH, LibC.O_RDWR | LibC.O_NONBLOCK);
        try (Memory ifr = new Memory(IfReqDescriptor.LENGTH); Memory intArg = new Memory(4)) {
            ifr.clear();
            ifr.write(IfReqDescriptor.IFR_NAME_OFFSET, nameBytes, 0, nameBytes.length);
            ifr.setShort(IfReqDescriptor.IFR_FLAGS_OFFSET, (short) (IfTun.IFF_TAP | IfTun.IFF_NO_PI | IfTun.IFF_VNET_HDR));
            try {
                Syscalls.ioctl(fd, IfTun.TUNSETIFF, ifr, "TUNSETIFF");
            } catch (ErrnoException e) {
                throw new ErrnoException("ioctl(TUNSETIFF, name=" + name + ", flags=IFF_TAP|IFF_NO_PI|IFF_VNET_HDR)",
                        e.errno());
            }
            String actualName = ifr.getString(IfReqDescriptor.IFR_NAME_OFFSET, StandardCharsets.US_ASCII.name());

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
            LinuxTap tap = new LinuxTap(fd, actualName);
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

    @Override
    public void close() throws IOException {
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
