package io.jtap.aio;

import com.sun.jna.Native;
import io.jtap.xen.linux.LibC;
import io.jtap.xen.linux.Syscalls.ErrnoException;

/**
 * The raw native calls of the aio engines (Netty's convention): each returns its result, or {@code -errno} on failure,
 * and never throws or allocates, so the engines' hot paths can treat an errno as data. EINTR is retried here. The
 * engines name the call when they turn an unexpected {@code -errno} into an exception.
 */
final class AioSyscalls {
    private AioSyscalls() {
    }

    private static long check(long r) {
        return r >= 0 ? r : -Native.getLastError();
    }

    /** {@code io_uring_setup(entries, params)}: the ring fd, or -errno. */
    static int ioUringSetup(int entries, long paramsAddress) {
        while (true) {
            long r = check(LibC.syscall(LibC.SYS_io_uring_setup, entries, paramsAddress, 0, 0, 0, 0));
            if (r != -LibC.EINTR) {
                return (int) r;
            }
        }
    }

    /**
     * {@code io_uring_enter(fd, toSubmit, minComplete, flags, NULL, 0)}: the number of SQEs consumed, or -errno.
     * EINTR is returned, not retried: a caller waiting for completions decides whether to wait again.
     */
    static int ioUringEnter(int ringFd, int toSubmit, int minComplete, int flags) {
        return (int) check(LibC.syscall(LibC.SYS_io_uring_enter, ringFd, toSubmit, minComplete, flags, 0, 0));
    }

    /** {@code io_uring_register(fd, opcode, arg, nrArgs)}: the result, or -errno. */
    static int ioUringRegister(int ringFd, int opcode, long argAddress, int nrArgs) {
        while (true) {
            long r = check(LibC.syscall(LibC.SYS_io_uring_register, ringFd, opcode, argAddress, nrArgs, 0, 0));
            if (r != -LibC.EINTR) {
                return (int) r;
            }
        }
    }

    static long preadv(int fd, long iovAddress, int iovcnt, long offset) {
        while (true) {
            long r = check(LibC.preadv(fd, iovAddress, iovcnt, offset));
            if (r != -LibC.EINTR) {
                return r;
            }
        }
    }

    static long pwritev(int fd, long iovAddress, int iovcnt, long offset) {
        while (true) {
            long r = check(LibC.pwritev(fd, iovAddress, iovcnt, offset));
            if (r != -LibC.EINTR) {
                return r;
            }
        }
    }

    /** {@code fdatasync(fd)} when {@code datasync}, else {@code fsync(fd)}: 0 or -errno. */
    static int fsync(int fd, boolean datasync) {
        while (true) {
            int r = (int) check(datasync ? LibC.fdatasync(fd) : LibC.fsync(fd));
            if (r != -LibC.EINTR) {
                return r;
            }
        }
    }

    static int fallocate(int fd, int mode, long offset, long length) {
        while (true) {
            int r = (int) check(LibC.fallocate(fd, mode, offset, length));
            if (r != -LibC.EINTR) {
                return r;
            }
        }
    }

    /**
     * Resets an eventfd's readiness: reads its counter into {@code scratchAddress} (8 bytes); nothing to read is fine.
     *
     * @throws ErrnoException naming {@code what} on any other failure
     */
    static void resetEventfd(int fd, long scratchAddress, String what) throws ErrnoException {
        int r = eventfdRead(fd, scratchAddress);
        if (r < 0 && r != -LibC.EAGAIN) {
            throw new ErrnoException("eventfd_read(" + what + ")", -r);
        }
    }

    /** Reads (and so resets) an eventfd's counter into {@code valueAddress}: 0, or -EAGAIN when it was 0, or -errno. */
    static int eventfdRead(int fd, long valueAddress) {
        while (true) {
            int r = (int) check(LibC.eventfd_read(fd, valueAddress));
            if (r != -LibC.EINTR) {
                return r;
            }
        }
    }

    /** Adds {@code value} to an eventfd's counter: 0 or -errno. */
    static int eventfdWrite(int fd, long value) {
        while (true) {
            int r = (int) check(LibC.eventfd_write(fd, value));
            if (r != -LibC.EINTR) {
                return r;
            }
        }
    }
}
