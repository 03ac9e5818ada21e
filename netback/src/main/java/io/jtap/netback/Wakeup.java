package io.jtap.netback;

import com.sun.jna.Memory;
import io.jtap.xen.linux.LibC;
import io.jtap.xen.linux.Syscalls;
import java.io.IOException;

/**
 * An eventfd that another thread signals to wake a queue thread out of {@code poll}: a new frame was handed to its rx
 * queue, or it must stop. Signals coalesce. One owner closes it.
 */
final class Wakeup implements AutoCloseable {
    private static final int EAGAIN = 11;
    private final int fd;
    private final Memory word = new Memory(8);
    private final Memory drainWord = new Memory(8);
    private boolean closed;

    Wakeup() throws IOException {
        fd = Syscalls.eventfd(0, LibC.EFD_NONBLOCK);
    }

    int fd() {
        return fd;
    }

    /** Wakes the poller; thread-safe. */
    void signal() {
        synchronized (word) {
            if (closed) {
                return;
            }
            word.setLong(0, 1);
            try {
                Syscalls.write(fd, word, 8);
            } catch (IOException e) {
                // EAGAIN: the counter is saturated, so the poller is awake anyway.
            }
        }
    }

    /** Clears the signal; called by the poller only. */
    void drain() throws IOException {
        try {
            Syscalls.read(fd, drainWord, 8);
        } catch (Syscalls.ErrnoException e) {
            if (e.errno() != EAGAIN) {
                throw e;
            }
        }
    }

    @Override
    public void close() throws IOException {
        synchronized (word) {
            if (closed) {
                return;
            }
            closed = true;
            Syscalls.close(fd);
        }
    }
}
