package io.jtap.xen.linux;

import com.sun.jna.LastErrorException;
import com.sun.jna.Memory;
import com.sun.jna.Native;
import com.sun.jna.NativeLong;
import com.sun.jna.Pointer;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The thin public wrapper over {@link LibC}: each method makes one call and turns a failure into an
 * {@link ErrnoException} whose message names the call, its arguments and the errno.
 */
public final class Syscalls {
    private Syscalls() {
    }

    /** An {@link IOException} carrying the errno of the failed call. */
    public static final class ErrnoException extends IOException {
        private static final long serialVersionUID = 1L;
        private final int errno;

        public ErrnoException(String call, int errno) {
            super(call + " failed: errno=" + errno + " (" + describe(errno) + ")");
            this.errno = errno;
        }

        public int errno() {
            return errno;
        }
    }

    static String describe(int errno) {
        try {
            return LibC.strerror(errno);
        } catch (Throwable t) {
            return "unknown";
        }
    }

    public static int open(String path, int flags) throws ErrnoException {
        try {
            return LibC.open(path, flags | LibC.O_CLOEXEC);
        } catch (LastErrorException e) {
            throw new ErrnoException("open(" + path + ", 0x" + Integer.toHexString(flags) + ")", e.getErrorCode());
        }
    }

    public static void close(int fd) throws ErrnoException {
        try {
            LibC.close(fd);
        } catch (LastErrorException e) {
            throw new ErrnoException("close(" + fd + ")", e.getErrorCode());
        }
    }

    /** {@code ioctl} with a pointer argument; {@code name} is the request's C name, e.g. IOCTL_GNTDEV_MAP_GRANT_REF. */
    public static int ioctl(int fd, long request, Pointer arg, String name) throws ErrnoException {
        while (true) {
            try {
                return LibC.ioctl(fd, new NativeLong(request), arg);
            } catch (LastErrorException e) {
                if (e.getErrorCode() == LibC.EINTR) {
                    continue;
                }
                throw new ErrnoException("ioctl(" + fd + ", " + name + ")", e.getErrorCode());
            }
        }
    }

    /** {@code ioctl} with an integer argument (passed as {@code unsigned long}). */
    public static int ioctl(int fd, long request, long arg, String name) throws ErrnoException {
        return ioctl(fd, request, arg == 0 ? null : new Pointer(arg), name);
    }

    public static long read(int fd, Pointer buf, long count) throws ErrnoException {
        long r = tryRead(fd, Pointer.nativeValue(buf), count);
        if (r < 0) {
            throw new ErrnoException("read(" + fd + ", " + count + ")", (int) -r);
        }
        return r;
    }

    /**
     * {@code read(fd, address, count)} without throwing or allocating, for hot paths where an errno such as EAGAIN is
     * expected: the bytes read, or {@code -errno}. EINTR is retried.
     */
    public static long tryRead(int fd, long address, long count) {
        while (true) {
            long r = LibC.read(fd, address, count);
            if (r >= 0) {
                return r;
            }
            int errno = Native.getLastError();
            if (errno != LibC.EINTR) {
                return -errno;
            }
        }
    }

    public static long write(int fd, Pointer buf, long count) throws ErrnoException {
        long r = tryWrite(fd, Pointer.nativeValue(buf), count);
        if (r < 0) {
            throw new ErrnoException("write(" + fd + ", " + count + ")", (int) -r);
        }
        return r;
    }

    /** {@code write(fd, address, count)}: the bytes written, or {@code -errno}; never throws. EINTR is retried. */
    public static long tryWrite(int fd, long address, long count) {
        while (true) {
            long r = LibC.write(fd, address, count);
            if (r >= 0) {
                return r;
            }
            int errno = Native.getLastError();
            if (errno != LibC.EINTR) {
                return -errno;
            }
        }
    }

    public static Pointer mmap(Pointer addr, long length, int prot, int flags, int fd, long offset)
            throws ErrnoException {
        try {
            return LibC.mmap(addr, new NativeLong(length), prot, flags, fd, new NativeLong(offset));
        } catch (LastErrorException e) {
            throw new ErrnoException("mmap(length=" + length + ", prot=" + prot + ", flags=0x"
                    + Integer.toHexString(flags) + ", fd=" + fd + ", offset=" + offset + ")", e.getErrorCode());
        }
    }

    public static void munmap(Pointer addr, long length) throws ErrnoException {
        try {
            LibC.munmap(addr, new NativeLong(length));
        } catch (LastErrorException e) {
            throw new ErrnoException("munmap(length=" + length + ")", e.getErrorCode());
        }
    }

    /**
     * Per thread: room for 64 {@code struct pollfd}, so that a wait allocates nothing, filled and read through a
     * buffer view (a {@link Memory} accessor is a JNI call per field).
     */
    private static final class PollFds {
        final Memory memory = new Memory(8L * 64);
        final ByteBuffer view = memory.getByteBuffer(0, memory.size()).order(ByteOrder.nativeOrder());
        final long address = Pointer.nativeValue(memory);
    }

    private static final ThreadLocal<PollFds> POLL_FDS = ThreadLocal.withInitial(PollFds::new);

    /**
     * Waits until one of {@code fds} is readable.
     *
     * @return a bit set of the indices of readable (or errored / hung-up) descriptors, 0 on timeout; at most 64 fds
     */
    public static long pollIn(int[] fds, int timeoutMs) throws ErrnoException {
        if (fds.length > 64) {
            throw new IllegalArgumentException("pollIn: at most 64 descriptors, got " + fds.length);
        }
        PollFds p = POLL_FDS.get();
        ByteBuffer b = p.view;
        for (int i = 0; i < fds.length; i++) {
            b.putInt(8 * i, fds[i]);
            b.putShort(8 * i + 4, LibC.POLLIN);
            b.putShort(8 * i + 6, (short) 0);
        }
        int n;
        while (true) {
            n = LibC.poll(p.address, fds.length, timeoutMs);
            if (n >= 0) {
                break;
            }
            int errno = Native.getLastError();
            if (errno != LibC.EINTR) {
                throw new ErrnoException("poll(" + fds.length + " fds)", errno);
            }
        }
        long ready = 0;
        if (n > 0) {
            for (int i = 0; i < fds.length; i++) {
                if (b.getShort(8 * i + 6) != 0) {
                    ready |= 1L << i;
                }
            }
        }
        return ready;
    }

    public static int eventfd(int initval, int flags) throws ErrnoException {
        try {
            return LibC.eventfd(initval, flags | LibC.EFD_CLOEXEC);
        } catch (LastErrorException e) {
            throw new ErrnoException("eventfd", e.getErrorCode());
        }
    }

    public static int memfdCreate(String name) throws ErrnoException {
        try {
            return LibC.memfd_create(name, LibC.MFD_CLOEXEC);
        } catch (LastErrorException e) {
            throw new ErrnoException("memfd_create(" + name + ")", e.getErrorCode());
        }
    }

    public static void ftruncate(int fd, long length) throws ErrnoException {
        try {
            LibC.ftruncate(fd, new NativeLong(length));
        } catch (LastErrorException e) {
            throw new ErrnoException("ftruncate(" + fd + ", " + length + ")", e.getErrorCode());
        }
    }

    public static int socket(int domain, int type, int protocol) throws ErrnoException {
        try {
            return LibC.socket(domain, type | LibC.SOCK_CLOEXEC, protocol);
        } catch (LastErrorException e) {
            throw new ErrnoException("socket(" + domain + ", " + type + ", " + protocol + ")", e.getErrorCode());
        }
    }

    public static void bind(int fd, Pointer addr, int addrlen) throws ErrnoException {
        try {
            LibC.bind(fd, addr, addrlen);
        } catch (LastErrorException e) {
            throw new ErrnoException("bind(" + fd + ", addrlen=" + addrlen + ")", e.getErrorCode());
        }
    }

    /** {@code setns(2)}: moves the calling thread (only) into the namespace {@code fd} refers to. */
    public static void setns(int fd, int nstype) throws ErrnoException {
        try {
            LibC.setns(fd, nstype);
        } catch (LastErrorException e) {
            throw new ErrnoException("setns(" + fd + ", 0x" + Integer.toHexString(nstype) + ")", e.getErrorCode());
        }
    }

    /** The index of interface {@code name} in the calling thread's network namespace. */
    public static int ifNameToIndex(String name) throws ErrnoException {
        try {
            int index = LibC.if_nametoindex(name);
            if (index == 0) {
                throw new ErrnoException("if_nametoindex(" + name + ")", LibC.ENODEV);
            }
            return index;
        } catch (LastErrorException e) {
            throw new ErrnoException("if_nametoindex(" + name + ")", e.getErrorCode());
        }
    }
}
