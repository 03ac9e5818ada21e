package io.jtap.tap;

/**
 * The constants of {@code linux/if_tun.h} that {@link LinuxTap} uses, with their C names. The offload flags
 * ({@code TUN_F_*}) live on {@link TapDevice} because the simulation honours them too.
 *
 * <p>Request numbers are computed with the generic {@code _IOC} encoding of {@code asm-generic/ioctl.h} (x86, arm64,
 * riscv; not alpha, mips, powerpc or sparc, which jtap does not run on): direction in bits 30-31, argument size in bits
 * 16-29, type in bits 8-15, number in bits 0-7. {@code LinuxTapHeadersTest} compares them with a C compiler's.
 */
public final class IfTun {
    static final int IOC_NONE = 0;
    static final int IOC_WRITE = 1;
    static final int IOC_READ = 2;
    private static final int SIZEOF_INT = 4;

    /** {@code _IOW('T', 202, int)}: attach to / create an interface described by a {@code struct ifreq}. */
    public static final long TUNSETIFF = iow('T', 202, SIZEOF_INT);
    /** {@code _IOW('T', 203, int)}: the interface survives (1) or not (0) the closing of its last fd. */
    public static final long TUNSETPERSIST = iow('T', 203, SIZEOF_INT);
    /** {@code _IOR('T', 207, unsigned int)}: the {@code IFF_*} flags this kernel supports. */
    public static final long TUNGETFEATURES = ior('T', 207, SIZEOF_INT);
    /** {@code _IOW('T', 208, unsigned int)}: offloads the reader handles, {@code TUN_F_*}. */
    public static final long TUNSETOFFLOAD = iow('T', 208, SIZEOF_INT);
    /** {@code _IOR('T', 210, unsigned int)}: the {@code struct ifreq} of the attached interface. */
    public static final long TUNGETIFF = ior('T', 210, SIZEOF_INT);
    /** {@code _IOR('T', 215, int)}. */
    public static final long TUNGETVNETHDRSZ = ior('T', 215, SIZEOF_INT);
    /** {@code _IOW('T', 216, int)}: the virtio-net header length, 10 by default; jtap uses 12. */
    public static final long TUNSETVNETHDRSZ = iow('T', 216, SIZEOF_INT);
    /** {@code _IOW('T', 220, int)}: virtio-net header fields are little-endian (the virtio 1.0 rule). */
    public static final long TUNSETVNETLE = iow('T', 220, SIZEOF_INT);
    /** {@code _IOR('T', 221, int)}. */
    public static final long TUNGETVNETLE = ior('T', 221, SIZEOF_INT);

    /** {@code _IOW('T', 217, int)}: attach ({@code IFF_ATTACH_QUEUE}) or detach a queue of a multi-queue device. */
    public static final long TUNSETQUEUE = iow('T', 217, SIZEOF_INT);
    /** {@code TUNSETQUEUE}: the fd's queue takes part again. */
    public static final short IFF_ATTACH_QUEUE = 0x0200;
    /** {@code TUNSETQUEUE}: the fd's queue is disabled (it stays open). */
    public static final short IFF_DETACH_QUEUE = 0x0400;

    /** {@code linux/sockios.h}: get an interface's MTU ({@code struct ifreq}, on any socket). */
    public static final long SIOCGIFMTU = 0x8921;
    /** {@code linux/sockios.h}: set an interface's MTU ({@code struct ifreq}, needs CAP_NET_ADMIN). */
    public static final long SIOCSIFMTU = 0x8922;

    public static final short IFF_TUN = 0x0001;
    public static final short IFF_TAP = 0x0002;
    public static final short IFF_NO_CARRIER = 0x0040;
    public static final short IFF_NO_PI = 0x1000;
    public static final short IFF_ONE_QUEUE = 0x2000;
    public static final short IFF_VNET_HDR = 0x4000;
    public static final short IFF_TUN_EXCL = (short) 0x8000;
    public static final short IFF_MULTI_QUEUE = 0x0100;
    public static final short IFF_PERSIST = 0x0800;

    private IfTun() {
    }

    /** {@code _IOC(dir, type, nr, size)}. */
    static long ioc(int dir, char type, int nr, int size) {
        if (size < 0 || size >= 1 << 14 || nr < 0 || nr > 0xff || type > 0xff) {
            throw new IllegalArgumentException("_IOC argument out of range: type=" + type + ", nr=" + nr + ", size="
                    + size);
        }
        return ((long) dir << 30) | ((long) size << 16) | ((long) type << 8) | nr;
    }

    /** {@code _IOW(type, nr, size)}: userspace writes the argument. */
    static long iow(char type, int nr, int size) {
        return ioc(IOC_WRITE, type, nr, size);
    }

    /** {@code _IOR(type, nr, size)}: userspace reads the argument. */
    static long ior(char type, int nr, int size) {
        return ioc(IOC_READ, type, nr, size);
    }
}
