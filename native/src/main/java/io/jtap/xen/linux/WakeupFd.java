package io.jtap.xen.linux;

import com.sun.jna.Memory;
import com.sun.jna.Pointer;
import io.jtap.xen.linux.Syscalls.ErrnoException;
import java.io.IOException;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * An eventfd that other threads signal to wake one thread blocked in {@code poll} on {@link #fd()}: a blkback ring
 * thread (the completion side of the worker pool, the role {@code BlockIoEngine.completionFd()} plays for io_uring)
 * or a netback queue thread (a frame was handed to its rx queue, or it must stop). Signals coalesce.
 *
 * <p>Threads: {@link #signal()} and {@link #close()} are thread-safe; {@link #drain()} belongs to the polling thread.
 * One owner closes it; a signal after close does nothing, so it never writes to a closed (and maybe reused)
 * descriptor.
 *
 * <p>{@link #drain()} reads the eventfd only after a {@link #signal()}: the polling thread drains after every
 * wake-up, most of which come from its other descriptors, and a read of an unsignalled non-blocking eventfd fails
 * with EAGAIN, which {@link Syscalls} reports by building an exception (several microseconds, per wake-up).
 */
public final class WakeupFd implements AutoCloseable {
    private final int fd;
    /** The 8-byte counter increment every signal writes; never changes after the constructor. */
    private final Memory one = new Memory(8);
    /** Where {@link #drain()} reads the counter to; confined to the polling thread. */
    private final Memory scratch = new Memory(8);
    /** Set after each signal's write; cleared by the drain that reads it. */
    private final AtomicBoolean signalled = new AtomicBoolean();
    /** Guarded by {@code this}. */
    private boolean closed;

    public WakeupFd() throws IOException {
        fd = Syscalls.eventfd(0, LibC.EFD_NONBLOCK);
        one.setLong(0, 1);
    }

    /** The descriptor to poll for reading; readable from a {@link #signal()} until the {@link #drain()} after it. */
    public int fd() {
        return fd;
    }

    /** Makes {@link #fd()} readable; thread-safe, and a no-op once closed. */
    public void signal() {
        synchronized (this) {
            if (closed) {
                return;
            }
            try {
                Syscalls.write(fd, one, 8);
            } catch (IOException e) {
                // EAGAIN: the counter is saturated, so the fd is readable anyway.
            }
        }
        // After the write: a drain that sees the flag finds the counter raised (or a later signal raises the flag
        // again), so the fd never stays readable with the flag clear.
        signalled.set(true);
    }

    /**
     * Clears the readable state; called by the polling thread only, after it woke up.
     *
     * @throws IOException when the read fails other than with EAGAIN (which only means a racing drain took it)
     */
    public void drain() throws IOException {
        if (!signalled.getAndSet(false)) {
            return;
        }
        long r = Syscalls.tryRead(fd, Pointer.nativeValue(scratch), 8);
        if (r < 0 && r != -LibC.EAGAIN) {
            throw new ErrnoException("read(wakeup eventfd " + fd + ")", (int) -r);
        }
    }

    /** Closes the eventfd; idempotent. */
    @Override
    public synchronized void close() throws IOException {
        if (!closed) {
            closed = true;
            Syscalls.close(fd);
        }
    }
}
