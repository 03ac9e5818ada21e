package io.jtap.formats.internal;

import com.sun.jna.LastErrorException;
import java.io.IOException;

/**
 * The thin public wrapper over {@link LibC}: each method makes one call and turns a failure into an
 * {@link ErrnoException} naming the call, its arguments and the errno.
 */
public final class NativeFiles {
    private NativeFiles() {
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

        /** True for the errnos meaning "this file system or device cannot do that". */
        public boolean isUnsupported() {
            return errno == LibC.EOPNOTSUPP || errno == LibC.ENOSYS || errno == LibC.EINVAL;
        }
    }

    private static String describe(int errno) {
        try {
            return LibC.strerror(errno);
        } catch (Throwable t) {
            return "unknown";
        }
    }

    /** Whether the binding loaded; callers with a fallback check this instead of catching. */
    public static boolean isAvailable() {
        return LibC.loadFailure() == null;
    }

    /** Throws an {@link IOException} explaining why the binding is unavailable. */
    public static void ensureAvailability() throws IOException {
        Throwable cause = LibC.loadFailure();
        if (cause != null) {
            throw new IOException("libc binding unavailable: cause=" + cause, cause);
        }
    }

    public static int open(String path, int flags) throws IOException {
        ensureAvailability();
        try {
            return LibC.open(path, flags | LibC.O_CLOEXEC);
        } catch (LastErrorException e) {
            throw new ErrnoException("open(" + path + ", 0x" + Integer.toHexString(flags) + ")", e.getErrorCode());
        }
    }

    public static void close(int fd) throws IOException {
        try {
            LibC.close(fd);
        } catch (LastErrorException e) {
            throw new ErrnoException("close(" + fd + ")", e.getErrorCode());
        }
    }

    /**
     * {@code preadv} ({@code read}) or {@code pwritev} of {@code iovcnt} iovecs at {@code iovAddress}: the bytes
     * transferred, which may be short; EINTR is retried.
     */
    public static long transferv(boolean read, int fd, long iovAddress, int iovcnt, long offset) throws IOException {
        while (true) {
            try {
                return read ? LibC.preadv(fd, iovAddress, iovcnt, offset)
                        : LibC.pwritev(fd, iovAddress, iovcnt, offset);
            } catch (LastErrorException e) {
                if (e.getErrorCode() != LibC.EINTR) {
                    throw new ErrnoException((read ? "preadv" : "pwritev") + "(fd=" + fd + ", iovcnt=" + iovcnt
                            + ", offset=" + offset + ")", e.getErrorCode());
                }
            }
        }
    }

    public static void fallocate(int fd, int mode, long offset, long length) throws IOException {
        try {
            LibC.fallocate(fd, mode, offset, length);
        } catch (LastErrorException e) {
            throw new ErrnoException("fallocate(fd=" + fd + ", mode=0x" + Integer.toHexString(mode) + ", offset="
                    + offset + ", length=" + length + ")", e.getErrorCode());
        }
    }

    /** {@code ftruncate(fd, length)}: unlike {@code FileChannel.truncate}, also when the size does not change. */
    public static void ftruncate(int fd, long length) throws IOException {
        try {
            LibC.ftruncate(fd, length);
        } catch (LastErrorException e) {
            throw new ErrnoException("ftruncate(fd=" + fd + ", length=" + length + ")", e.getErrorCode());
        }
    }

    /**
     * {@code lseek(fd, offset, whence)}; for SEEK_DATA/SEEK_HOLE returns -1 on ENXIO (no data / beyond the end)
     * rather than throwing.
     */
    public static long lseek(int fd, long offset, int whence) throws IOException {
        try {
            return LibC.lseek(fd, offset, whence);
        } catch (LastErrorException e) {
            if (e.getErrorCode() == LibC.ENXIO && (whence == LibC.SEEK_DATA || whence == LibC.SEEK_HOLE)) {
                return -1;
            }
            throw new ErrnoException("lseek(fd=" + fd + ", offset=" + offset + ", whence=" + whence + ")",
                    e.getErrorCode());
        }
    }
}
