package io.jtap.blkback;

import com.sun.jna.Memory;
import io.jtap.xen.linux.LibC;
import io.jtap.xen.linux.Syscalls;

import java.io.IOException;

/**
 * An eventfd that other threads signal to wake a ring thread blocked in poll: the completion side of the worker
 * pool (the role {@code BlockIoEngine.completionFd()} plays for io_uring). Signalling is thread-safe; reset belongs
 * to the polling thread.
 */
final class WakeupFd implements AutoCloseable {
    private final int fd;
    private final Memory one = new Memory(8);
    private final Memory scratch = new Memory(8);
    private boolean closed;

    WakeupFd() throws IOException {
        fd = Syscalls.eventfd(0, LibC.EFD_NONBLOCK);
        one.setLong(0, 1);
    }

    int fd() {
        return fd;
    }

    /** Makes {@link #fd()} readable. */
    void signal() {
        try {
            Syscalls.write(fd, one, 8);
        } catch (IOException e) {
            // EAGAIN: the counter is saturated, so the fd is readable anyway
        }
    }

    /** Clears the readable state. */
    void reset() {
        try {
            Syscalls.read(fd, scratch, 8);
        } catch (IOException e) {
            // EAGAIN: nothing was signalled
        }
    }

    @Override
    public synchronized void close() throws IOException {
        if (!closed) {
            closed = true;
            Syscalls.close(fd);
        }
    }
}
