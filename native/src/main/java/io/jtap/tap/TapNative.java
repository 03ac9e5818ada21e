package io.jtap.tap;

import com.sun.jna.Native;
import com.sun.jna.Platform;

/**
 * The data-path calls of {@link LinuxTap}, raw (Netty's convention): they return {@code -errno} instead of throwing, so
 * that the idle path of a non-blocking read ({@code EAGAIN}) costs no exception. Pointers and sizes are passed as
 * {@code long}, which matches {@code void *}, {@code size_t} and {@code ssize_t} on the 64-bit Linux targets jtap runs
 * on. Control-path calls go through {@link io.jtap.xen.linux.Syscalls}.
 */
final class TapNative {
    static final int EAGAIN = 11;

    private static final Throwable LOAD_FAILURE;

    static {
        Throwable failure = null;
        try {
            if (!Platform.isLinux() || !Platform.is64Bit()) {
                throw new UnsatisfiedLinkError("TapNative needs 64-bit Linux, running on "
                        + System.getProperty("os.name") + " " + System.getProperty("os.arch"));
            }
            Native.register(TapNative.class, Platform.C_LIBRARY_NAME);
        } catch (Throwable t) {
            failure = t;
        }
        LOAD_FAILURE = failure;
    }

    private TapNative() {
    }

    static Throwable loadFailure() {
        return LOAD_FAILURE;
    }

    private static native long read(int fd, long buf, long count);

    private static native long write(int fd, long buf, long count);

    /** {@code read(2)}, retried on EINTR: the byte count, or {@code -errno}. */
    static long readRaw(int fd, long address, long count) {
        while (true) {
            long n = read(fd, address, count);
            if (n >= 0) {
                return n;
            }
            int errno = Native.getLastError();
            if (errno != 4) { // EINTR
                return -errno;
            }
        }
    }

    /** {@code write(2)}, retried on EINTR: the byte count, or {@code -errno}. */
    static long writeRaw(int fd, long address, long count) {
        while (true) {
            long n = write(fd, address, count);
            if (n >= 0) {
                return n;
            }
            int errno = Native.getLastError();
            if (errno != 4) { // EINTR
                return -errno;
            }
        }
    }
}
