package io.jtap.tap;

import com.sun.jna.Memory;
import io.jtap.xen.linux.LibC;
import io.jtap.xen.linux.Syscalls;
import java.io.IOException;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicReference;

/**
 * An {@code AF_PACKET} raw socket bound to one interface and one EtherType inside a network namespace: the host side of
 * a {@link LinuxTap} in the contract test. Frames written to it leave through the interface (the TAP fd reads them);
 * frames the TAP fd writes arrive on it. Bound to a single EtherType, it sees only incoming frames of that type, never
 * its own outgoing ones.
 *
 * <p>The socket is created on a throwaway thread that {@code setns()}es into the namespace (a network namespace is a
 * per-thread attribute), so the test's own threads never change namespace; a socket stays in the namespace it was
 * created in.
 */
final class PacketSocket implements AutoCloseable {
    /** {@code sizeof(struct sockaddr_ll)}: family, protocol (big-endian), ifindex, hatype, pkttype, halen, addr[8]. */
    private static final int SOCKADDR_LL_LENGTH = 20;

    private final int fd;
    private final Memory buffer = new Memory(TapDevice.MAX_FRAME_BYTES + 64);
    private boolean closed;

    private PacketSocket(int fd) {
        this.fd = fd;
    }

    static PacketSocket open(Netns ns, String ifname, int etherType) throws IOException {
        AtomicReference<Object> result = new AtomicReference<>();
        Thread thread = new Thread(() -> {
            try {
                result.set(openHere("/run/netns/" + ns.name, ifname, etherType));
            } catch (Throwable t) {
                result.set(t);
            }
        }, "packet-socket-" + ns.name);
        thread.start();
        try {
            thread.join(Duration.ofSeconds(10).toMillis());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted opening a packet socket", e);
        }
        Object r = result.get();
        if (r instanceof PacketSocket) {
            return (PacketSocket) r;
        }
        throw new IOException("cannot open a packet socket: namespace=" + ns.name + ", interface=" + ifname,
                r instanceof Throwable ? (Throwable) r : null);
    }

    /** Runs on its own thread: enters the namespace, creates and binds the socket, leaves the namespace. */
    private static PacketSocket openHere(String nsPath, String ifname, int etherType) throws IOException {
        int home = Syscalls.open("/proc/thread-self/ns/net", LibC.O_RDONLY);
        try {
            int target = Syscalls.open(nsPath, LibC.O_RDONLY);
            try {
                Syscalls.setns(target, LibC.CLONE_NEWNET);
            } finally {
                Syscalls.close(target);
            }
            try {
                int protocol = Short.toUnsignedInt(Short.reverseBytes((short) etherType)); // htons
                int fd = Syscalls.socket(LibC.AF_PACKET, LibC.SOCK_RAW | LibC.SOCK_NONBLOCK, protocol);
                try (Memory addr = new Memory(SOCKADDR_LL_LENGTH)) {
                    addr.clear();
                    addr.setShort(0, (short) LibC.AF_PACKET);
                    addr.setShort(2, (short) protocol);
                    addr.setInt(4, Syscalls.ifNameToIndex(ifname));
                    Syscalls.bind(fd, addr, SOCKADDR_LL_LENGTH);
                } catch (IOException | RuntimeException e) {
                    Syscalls.close(fd);
                    throw e;
                }
                return new PacketSocket(fd);
            } finally {
                Syscalls.setns(home, LibC.CLONE_NEWNET);
            }
        } finally {
            Syscalls.close(home);
        }
    }

    void send(byte[] ethernetFrame) throws IOException {
        buffer.write(0, ethernetFrame, 0, ethernetFrame.length);
        long n = Syscalls.write(fd, buffer, ethernetFrame.length);
        if (n != ethernetFrame.length) {
            throw new IOException("short packet socket write: length=" + ethernetFrame.length + ", written=" + n);
        }
    }

    /** The next frame, or {@code null} after {@code timeout}. */
    byte[] receive(Duration timeout) throws IOException {
        if (Syscalls.pollIn(new int[] {fd}, (int) timeout.toMillis()) == 0) {
            return null;
        }
        long n = Syscalls.read(fd, buffer, buffer.size());
        byte[] frame = new byte[(int) n];
        buffer.read(0, frame, 0, frame.length);
        return frame;
    }

    @Override
    public void close() throws IOException {
        if (!closed) {
            closed = true;
            try {
                Syscalls.close(fd);
            } finally {
                buffer.close();
            }
        }
    }

    @Override
    public String toString() {
        return "PacketSocket{fd=" + fd + "}";
    }
}
