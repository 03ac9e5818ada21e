package io.jtap.xen.linux;

import com.sun.jna.Memory;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;

/**
 * {@code /dev/xen/xenbus} (Linux's xenbus_dev_frontend), read and written with plain read(2)/write(2) through JNA.
 * Java's file channels serialize reads and writes on one lock, which a reader blocked in read(2) would hold forever,
 * so the reader polls the device together with an eventfd that {@link #close} signals.
 *
 * <p>The kernel accepts a message in pieces and replies per message; one write here is always one whole message.
 */
final class XenbusDeviceTransport implements XenStoreTransport {
    private final Path path;
    private final int fd;
    private final int wakeFd;
    private final Memory readBuffer =
            new Memory(XsWireDescriptor.HEADER_LENGTH + XsWireDescriptor.XENSTORE_PAYLOAD_MAX);
    private final Object writeLock = new Object();
    private volatile boolean closed;
    private boolean fdsClosed;

    private XenbusDeviceTransport(Path path, int fd, int wakeFd) {
        this.path = path;
        this.fd = fd;
        this.wakeFd = wakeFd;
    }

    static XenbusDeviceTransport open(Path path) throws IOException {
        int fd = Syscalls.open(path.toString(), LibC.O_RDWR);
        int wakeFd;
        try {
            wakeFd = Syscalls.eventfd(0, LibC.EFD_NONBLOCK);
        } catch (IOException e) {
            Syscalls.close(fd);
            throw e;
        }
        return new XenbusDeviceTransport(path, fd, wakeFd);
    }

    @Override
    public int read(ByteBuffer dst) throws IOException {
        while (!closed) {
            long ready = Syscalls.pollIn(new int[] {fd, wakeFd}, -1);
            if (closed || (ready & 2) != 0) {
                return -1;
            }
            if ((ready & 1) == 0) {
                continue;
            }
            long n = Syscalls.read(fd, readBuffer, Math.min(dst.remaining(), readBuffer.size()));
            if (n <= 0) {
                return -1;
            }
            byte[] bytes = readBuffer.getByteArray(0, (int) n);
            dst.put(bytes);
            return (int) n;
        }
        return -1;
    }

    @Override
    public void write(ByteBuffer message) throws IOException {
        synchronized (writeLock) {
            int length = message.remaining();
            try (Memory mem = new Memory(Math.max(1, length))) {
                byte[] bytes = new byte[length];
                message.get(bytes);
                mem.write(0, bytes, 0, length);
                long done = 0;
                while (done < length) {
                    long n = Syscalls.write(fd, mem.share(done), length - done);
                    if (n <= 0) {
                        throw new IOException("xenbus device write made no progress: device=" + path);
                    }
                    done += n;
                }
            }
        }
    }

    /** No: see {@link XenStoreTransport#pipelines()}. */
    @Override
    public boolean pipelines() {
        return false;
    }

    @Override
    public String describe() {
        return "device " + path;
    }

    /** Signals the reader; the descriptors are closed by {@link #release}. */
    @Override
    public void close() throws IOException {
        synchronized (writeLock) {
            if (closed) {
                return;
            }
            closed = true;
            try (Memory one = new Memory(8)) {
                one.setLong(0, 1);
                Syscalls.write(wakeFd, one, 8);
            }
        }
    }

    @Override
    public void release() throws IOException {
        synchronized (writeLock) {
            if (!fdsClosed) {
                fdsClosed = true;
                Syscalls.close(fd);
                Syscalls.close(wakeFd);
            }
        }
    }
}
