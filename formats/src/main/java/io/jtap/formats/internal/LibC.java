package io.jtap.formats.internal;

import com.sun.jna.LastErrorException;
import com.sun.jna.Native;
import com.sun.jna.Platform;

/**
 * The libc calls the format plugins need ({@code open}, {@code close}, {@code fallocate}, {@code lseek},
 * {@code ftruncate}, {@code preadv}, {@code pwritev}), bound
 * with JNA direct mapping. Raw: every call throws {@link LastErrorException}; {@link NativeFiles} names the call
 * in an {@link java.io.IOException}. {@code off_t} is mapped to Java {@code long}: 64-bit Linux only, which
 * {@link #loadFailure()} enforces.
 *
 * <p>Kept inside {@code formats} on purpose: the {@code native} module is owned elsewhere, and this is small.
 */
public final class LibC {
    public static final int O_RDONLY = 0;
    public static final int O_RDWR = 2;
    public static final int O_CLOEXEC = 0x80000;
    /** x86_64 and aarch64 agree on this value only for aarch64's 0x10000; see {@link #oDirect()}. */
    private static final int O_DIRECT_X86 = 0x4000;
    private static final int O_DIRECT_ARM = 0x10000;

    /** {@code fallocate} modes, from {@code linux/falloc.h}. */
    public static final int FALLOC_FL_KEEP_SIZE = 0x01;
    public static final int FALLOC_FL_PUNCH_HOLE = 0x02;
    public static final int FALLOC_FL_ZERO_RANGE = 0x10;

    /** {@code lseek} whence values; SEEK_DATA/SEEK_HOLE are Linux's (3, 4). */
    public static final int SEEK_END = 2;
    public static final int SEEK_DATA = 3;
    public static final int SEEK_HOLE = 4;

    public static final int ENXIO = 6;
    public static final int EINTR = 4;
    public static final int EINVAL = 22;
    public static final int EOPNOTSUPP = 95;
    public static final int ENOSYS = 38;

    private static final Throwable LOAD_FAILURE;

    static {
        Throwable failure = null;
        try {
            if (!Platform.isLinux() || !Platform.is64Bit()) {
                throw new UnsatisfiedLinkError("jtap formats' libc binding needs 64-bit Linux, running on "
                        + System.getProperty("os.name") + " " + System.getProperty("os.arch"));
            }
            Native.register(LibC.class, Platform.C_LIBRARY_NAME);
        } catch (Throwable t) {
            failure = t;
        }
        LOAD_FAILURE = failure;
    }

    private LibC() {
    }

    /** Why libc could not be bound, or {@code null} when it was. */
    public static Throwable loadFailure() {
        return LOAD_FAILURE;
    }

    /** {@code O_DIRECT} for this architecture. */
    public static int oDirect() {
        return Platform.isARM() ? O_DIRECT_ARM : O_DIRECT_X86;
    }

    static native int open(String path, int flags) throws LastErrorException;

    static native int close(int fd) throws LastErrorException;

    static native int fallocate(int fd, int mode, long offset, long length) throws LastErrorException;

    static native long lseek(int fd, long offset, int whence) throws LastErrorException;

    static native int ftruncate(int fd, long length) throws LastErrorException;

    static native long preadv(int fd, long iov, int iovcnt, long offset) throws LastErrorException;

    static native long pwritev(int fd, long iov, int iovcnt, long offset) throws LastErrorException;

    static native String strerror(int errnum);
}
