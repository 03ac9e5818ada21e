package io.jtap.xen.linux;

/**
 * The ioctl request encoding of Linux {@code asm-generic/ioctl.h} (x86, arm64, riscv; not powerpc, mips, sparc, whose
 * direction bits differ): {@code dir << 30 | size << 16 | type << 8 | nr}.
 */
public final class Ioc {
    public static final int _IOC_NRBITS = 8;
    public static final int _IOC_TYPEBITS = 8;
    public static final int _IOC_SIZEBITS = 14;
    public static final int _IOC_NRSHIFT = 0;
    public static final int _IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS;
    public static final int _IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS;
    public static final int _IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS;
    public static final int _IOC_NONE = 0;
    public static final int _IOC_WRITE = 1;
    public static final int _IOC_READ = 2;

    private Ioc() {
    }

    /** Linux {@code _IOC(dir, type, nr, size)}. */
    public static long _IOC(int dir, char type, int nr, int size) {
        if (size < 0 || size >= 1 << _IOC_SIZEBITS) {
            throw new IllegalArgumentException("ioctl argument size does not fit: size=" + size);
        }
        return ((long) dir << _IOC_DIRSHIFT) | ((long) size << _IOC_SIZESHIFT) | ((long) type << _IOC_TYPESHIFT)
                | ((long) nr << _IOC_NRSHIFT);
    }
}
