package io.jtap.blkback;

import com.sun.jna.Memory;
import io.jtap.xen.linux.LibC;
import io.jtap.xen.linux.Syscalls;

import java.io.IOException;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * An eventfd that other threads signal to wake a ring thread blocked in poll: the completion side of the worker
 * pool (the role {@code BlockIoEngine.completionFd()} plays for io_uring). Signalling is thread-safe; reset belongs
 * to the polling thread.
 *
 * <p>{@link #reset()} reads the eventfd only after a {@link #signal()}: the ring thread resets after every wake-up,
 * most of which come from the event channel or io_uring, and a read of an unsignalled non-blocking eventfd fails with
 * EAGAIN, which the syscall wrapper reports by building an exception (several microseconds, per wake-up).
 */
final class WakeupFd implements AutoCloseable {
    private final int fd;
    private final Memory one = new Memory(8);
    private final Memory scratch = new Memory(8);
    /** Set after each signal's write; cleared by the reset that reads it. */
    private final AtomicBoolean signalled = new AtomicBoolean();
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
        // After the write: a reset that sees the flag finds the counter raised (or a later signal raises the flag
        // again), so the fd never stays readable with the flag clear.
        signalled.set(true);
    }

    /** Clears the readable state. */
    void reset() {
        if (!signalled.getAndSet(false)) {
            return;
        }
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
