package io.jtap.xen.linux;

import com.sun.jna.LastErrorException;
import com.sun.jna.Native;
import com.sun.jna.NativeLong;
import com.sun.jna.Platform;
import com.sun.jna.Pointer;

/**
 * The few libc calls jtap's Linux implementations make, bound with JNA direct mapping.
 *
 * <p>Raw and package-private in spirit (Netty's convention): every call throws {@link LastErrorException} with the
 * errno; {@link Syscalls} turns that into an {@link java.io.IOException} naming the call. JNA has no varargs
 * {@code ioctl}, so the argument is always passed as a pointer (a struct's memory, or {@code new Pointer(value)} for an
 * integer argument, which the kernel reads as {@code unsigned long}).
 */
public final class LibC {
    public static final int O_RDONLY = 0;
    public static final int O_WRONLY = 1;
    public static final int O_RDWR = 2;
    public static final int O_NONBLOCK = 0x800;
    public static final int O_CLOEXEC = 0x80000;

    public static final int PROT_NONE = 0;
    public static final int PROT_READ = 1;
    public static final int PROT_WRITE = 2;
    public static final int MAP_SHARED = 0x01;
    public static final int MAP_PRIVATE = 0x02;
    public static final int MAP_FIXED = 0x10;
    public static final int MAP_ANONYMOUS = 0x20;
    public static final int MAP_NORESERVE = 0x4000;
    /** {@code mmap} returns this on failure: {@code (void *) -1}. */
    public static final long MAP_FAILED = -1L;

    public static final short POLLIN = 0x1;
    public static final short POLLERR = 0x8;
    public static final short POLLHUP = 0x10;

    public static final int EFD_CLOEXEC = 0x80000;
    public static final int EFD_NONBLOCK = 0x800;
    public static final int MFD_CLOEXEC = 1;

    public static final int EINTR = 4;
    public static final int EAGAIN = 11;
    public static final int ENOENT = 2;
    public static final int EINVAL = 22;
    public static final int ENOTTY = 25;

    // Errnos of the event-channel and grant devices (asm-generic/errno-base.h, errno.h), used by both the Linux
    // implementations and the simulation that mimics them.
    public static final int ESRCH = 3;
    public static final int EFBIG = 27;
    public static final int ENOSPC = 28;
    public static final int ENOTCONN = 107;

    private static final Throwable LOAD_FAILURE;

    static {
        Throwable failure = null;
        try {
            if (!Platform.isLinux()) {
                throw new UnsatisfiedLinkError("jtap's native layer needs Linux, running on "
                        + System.getProperty("os.name"));
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

    public static native int open(String path, int flags) throws LastErrorException;

    public static native int close(int fd) throws LastErrorException;

    /** {@code read(fd, buf, count)}: the bytes read, or -1 with errno ({@code Native.getLastError()}). */
    public static native long read(int fd, long buf, long count);

    /** {@code write(fd, buf, count)}: the bytes written, or -1 with errno ({@code Native.getLastError()}). */
    public static native long write(int fd, long buf, long count);

    public static native int ioctl(int fd, NativeLong request, Pointer arg) throws LastErrorException;

    public static native Pointer mmap(Pointer addr, NativeLong length, int prot, int flags, int fd, NativeLong offset)
            throws LastErrorException;

    public static native int munmap(Pointer addr, NativeLong length) throws LastErrorException;

    /**
     * {@code struct pollfd} array at native address {@code fds}: 8 bytes each (int fd, short events, short revents).
     * The number ready, or -1 with errno ({@code Native.getLastError()}).
     */
    public static native int poll(long fds, long nfds, int timeoutMs);

    public static native int eventfd(int initval, int flags) throws LastErrorException;

    public static native int memfd_create(String name, int flags) throws LastErrorException;

    public static native int ftruncate(int fd, NativeLong length) throws LastErrorException;

    public static native NativeLong lseek(int fd, NativeLong offset, int whence) throws LastErrorException;

    public static native int fcntl(int fd, int cmd, NativeLong arg) throws LastErrorException;

    public static native String strerror(int errnum);

    // --- Sockets and namespaces (added for the TAP tests' AF_PACKET host side) ---

    public static final int AF_PACKET = 17;
    public static final int SOCK_RAW = 3;
    public static final int SOCK_NONBLOCK = 0x800;
    public static final int SOCK_CLOEXEC = 0x80000;
    /** {@code setns(2)} nstype for a network namespace. */
    public static final int CLONE_NEWNET = 0x40000000;
    public static final int ENODEV = 19;

    public static native int socket(int domain, int type, int protocol) throws LastErrorException;

    public static native int bind(int fd, Pointer addr, int addrlen) throws LastErrorException;

    public static native int setns(int fd, int nstype) throws LastErrorException;

    /** Returns 0 (and sets errno) when there is no such interface in the calling thread's network namespace. */
    public static native int if_nametoindex(String ifname) throws LastErrorException;

    // ---- io.jtap.aio: io_uring and positional vectored IO ----
    // These natives do not throw: they return -1 and leave errno for Native.getLastError(), so a hot path that meets
    // an expected errno (EAGAIN on an eventfd, EINTR) allocates nothing. io.jtap.aio.AioSyscalls turns them into
    // -errno. Pointers are passed as long addresses (LP64 only; the aio engines check Native.POINTER_SIZE == 8).

    /** {@code O_DIRECT} from the kernel's {@code asm/fcntl.h}: 0x4000 on x86-64, 0x10000 on arm64. */
    public static final int O_DIRECT = Platform.ARCH.startsWith("aarch64") || Platform.ARCH.startsWith("arm") ? 0x10000
            : 0x4000;

    public static final int EPERM = 1;
    public static final int EIO = 5;
    public static final int EBADF = 9;
    public static final int EBUSY = 16;
    public static final int ESPIPE = 29;
    public static final int ENOSYS = 38;
    public static final int ENODATA = 61;
    public static final int EOPNOTSUPP = 95;

    /** {@code __NR_io_uring_setup}: the same number on every Linux architecture (the 5.1 unified syscall table). */
    public static final long SYS_io_uring_setup = 425;
    public static final long SYS_io_uring_enter = 426;
    public static final long SYS_io_uring_register = 427;

    /** {@code linux/falloc.h}. */
    public static final int FALLOC_FL_KEEP_SIZE = 0x01;
    public static final int FALLOC_FL_PUNCH_HOLE = 0x02;
    public static final int FALLOC_FL_ZERO_RANGE = 0x10;

    /** glibc's {@code syscall(2)} with six integer arguments (unused ones 0); returns -1 with errno on failure. */
    public static native long syscall(long number, long a1, long a2, long a3, long a4, long a5, long a6);

    /** {@code preadv(fd, (struct iovec *) iov, iovcnt, offset)}; -1 with errno on failure. */
    public static native long preadv(int fd, long iov, int iovcnt, long offset);

    /** {@code pwritev(fd, (struct iovec *) iov, iovcnt, offset)}; -1 with errno on failure. */
    public static native long pwritev(int fd, long iov, int iovcnt, long offset);

    public static native int fsync(int fd);

    public static native int fdatasync(int fd);

    public static native int fallocate(int fd, int mode, long offset, long length);

    /** glibc's {@code eventfd_read(fd, (eventfd_t *) value)}: 0, or -1 with errno (EAGAIN when non-blocking and 0). */
    public static native int eventfd_read(int fd, long valueAddress);

    /** glibc's {@code eventfd_write(fd, value)}: 0, or -1 with errno. */
    public static native int eventfd_write(int fd, long value);
}
