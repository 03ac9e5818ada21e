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
                throw new UnsatisfiedLinkError("jtap's native layer needs Linux, running on " + System.getProperty("os.name"));
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

    public static native NativeLong read(int fd, Pointer buf, NativeLong count) throws LastErrorException;

    public static native NativeLong write(int fd, Pointer buf, NativeLong count) throws LastErrorException;

    public static native int ioctl(int fd, NativeLong request, Pointer arg) throws LastErrorException;

    public static native Pointer mmap(Pointer addr, NativeLong length, int prot, int flags, int fd, NativeLong offset)
            throws LastErrorException;

    public static native int munmap(Pointer addr, NativeLong length) throws LastErrorException;

    /** {@code struct pollfd} array as packed memory: 8 bytes each (int fd, short events, short revents). */
    public static native int poll(Pointer fds, NativeLong nfds, int timeoutMs) throws LastErrorException;

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
}
