package io.jtap.xen.linux;

import static io.jtap.xen.linux.EvtchnDescriptor.BIND_INTERDOMAIN_REMOTE_DOMAIN_OFFSET;
import static io.jtap.xen.linux.EvtchnDescriptor.BIND_INTERDOMAIN_REMOTE_PORT_OFFSET;
import static io.jtap.xen.linux.EvtchnDescriptor.BIND_INTERDOMAIN_SIZE;
import static io.jtap.xen.linux.EvtchnDescriptor.BIND_UNBOUND_PORT_REMOTE_DOMAIN_OFFSET;
import static io.jtap.xen.linux.EvtchnDescriptor.BIND_UNBOUND_PORT_SIZE;
import static io.jtap.xen.linux.EvtchnDescriptor.EVTCHN_PORT_SIZE;
import static io.jtap.xen.linux.EvtchnDescriptor.EVTCHN_RING_PORTS;
import static io.jtap.xen.linux.EvtchnDescriptor.IOCTL_EVTCHN_BIND_INTERDOMAIN;
import static io.jtap.xen.linux.EvtchnDescriptor.IOCTL_EVTCHN_BIND_UNBOUND_PORT;
import static io.jtap.xen.linux.EvtchnDescriptor.IOCTL_EVTCHN_NOTIFY;
import static io.jtap.xen.linux.EvtchnDescriptor.IOCTL_EVTCHN_RESET;
import static io.jtap.xen.linux.EvtchnDescriptor.IOCTL_EVTCHN_UNBIND;
import static io.jtap.xen.linux.EvtchnDescriptor.NOTIFY_PORT_OFFSET;
import static io.jtap.xen.linux.EvtchnDescriptor.NOTIFY_SIZE;
import static io.jtap.xen.linux.EvtchnDescriptor.UNBIND_PORT_OFFSET;
import static io.jtap.xen.linux.EvtchnDescriptor.UNBIND_SIZE;

import com.sun.jna.Memory;
import io.jtap.xen.Availability;
import io.jtap.xen.EventChannels;
import io.jtap.xen.linux.Syscalls.ErrnoException;
import java.io.IOException;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * {@link EventChannels} over one open of Linux's {@code /dev/xen/evtchn}, opened non-blocking: {@link #pending} reads
 * the device's ring of fired ports (EAGAIN = none), {@link #unmask} writes a port back, {@link #fd()} is the device.
 * The ioctl, notify and unmask arguments live in preallocated native memory, so the hot path allocates nothing.
 */
public final class LinuxEventChannels implements EventChannels {
    private static final class AvailabilityHolder {
        static final Availability AVAILABILITY = XenDevices.probe(EvtchnDescriptor.DEVICE);
    }

    private final int fd;
    private final Set<Integer> ports = ConcurrentHashMap.newKeySet();
    /** The argument of the bind, unbind and notify ioctls; guarded by itself. */
    private final Memory ioctlArg = new Memory(BIND_INTERDOMAIN_SIZE);
    /** The port written to unmask; guarded by itself. */
    private final Memory unmaskArg = new Memory(EVTCHN_PORT_SIZE);
    /** What {@link #pending} reads into; confined to the event-loop thread. */
    private final Memory readBuffer = new Memory((long) EVTCHN_PORT_SIZE * EVTCHN_RING_PORTS);
    private volatile boolean closed;

    private LinuxEventChannels(int fd) {
        this.fd = fd;
    }

    public static Availability availability() {
        return AvailabilityHolder.AVAILABILITY;
    }

    public static boolean isAvailable() {
        return availability().isAvailable();
    }

    public static Throwable unavailabilityCause() {
        return availability().unavailabilityCause();
    }

    public static void ensureAvailability() {
        availability().ensureAvailability("Linux event channels (" + EvtchnDescriptor.DEVICE + ")");
    }

    /** Opens {@code /dev/xen/evtchn}. */
    public static LinuxEventChannels open() throws IOException {
        ensureAvailability();
        return new LinuxEventChannels(Syscalls.open(EvtchnDescriptor.DEVICE, LibC.O_RDWR | LibC.O_NONBLOCK));
    }

    @Override
    public int bindInterdomain(int remoteDomid, int remotePort) throws IOException {
        synchronized (ioctlArg) {
            ensureOpen();
            ioctlArg.setInt(BIND_INTERDOMAIN_REMOTE_DOMAIN_OFFSET, remoteDomid);
            ioctlArg.setInt(BIND_INTERDOMAIN_REMOTE_PORT_OFFSET, remotePort);
            int port = Syscalls.ioctl(fd, IOCTL_EVTCHN_BIND_INTERDOMAIN, ioctlArg,
                    "IOCTL_EVTCHN_BIND_INTERDOMAIN(remote_domain=" + remoteDomid + ", remote_port=" + remotePort + ")");
            ports.add(port);
            return port;
        }
    }

    @Override
    public int bindUnboundPort(int remoteDomid) throws IOException {
        synchronized (ioctlArg) {
            ensureOpen();
            ioctlArg.setInt(BIND_UNBOUND_PORT_REMOTE_DOMAIN_OFFSET, remoteDomid);
            int port = Syscalls.ioctl(fd, IOCTL_EVTCHN_BIND_UNBOUND_PORT, ioctlArg.share(0, BIND_UNBOUND_PORT_SIZE),
                    "IOCTL_EVTCHN_BIND_UNBOUND_PORT(remote_domain=" + remoteDomid + ")");
            ports.add(port);
            return port;
        }
    }

    @Override
    public void unbind(int port) throws IOException {
        synchronized (ioctlArg) {
            ensureOpen();
            ioctlArg.setInt(UNBIND_PORT_OFFSET, port);
            Syscalls.ioctl(fd, IOCTL_EVTCHN_UNBIND, ioctlArg.share(0, UNBIND_SIZE),
                    "IOCTL_EVTCHN_UNBIND(port=" + port + ")");
            ports.remove(port);
        }
    }

    @Override
    public void notify(int port) throws IOException {
        synchronized (ioctlArg) {
            ensureOpen();
            ioctlArg.setInt(NOTIFY_PORT_OFFSET, port);
            Syscalls.ioctl(fd, IOCTL_EVTCHN_NOTIFY, ioctlArg.share(0, NOTIFY_SIZE), "IOCTL_EVTCHN_NOTIFY");
        }
    }

    @Override
    public int fd() {
        return fd;
    }

    @Override
    public int pending(int[] ports) throws IOException {
        ensureOpen();
        int max = Math.min(ports.length, EVTCHN_RING_PORTS);
        if (max == 0) {
            return 0;
        }
        long bytes;
        try {
            bytes = Syscalls.read(fd, readBuffer, (long) max * EVTCHN_PORT_SIZE);
        } catch (ErrnoException e) {
            if (e.errno() == LibC.EAGAIN) {
                return 0;
            }
            throw e;
        }
        int n = (int) (bytes / EVTCHN_PORT_SIZE);
        for (int i = 0; i < n; i++) {
            ports[i] = readBuffer.getInt((long) i * EVTCHN_PORT_SIZE);
        }
        return n;
    }

    @Override
    public void unmask(int port) throws IOException {
        synchronized (unmaskArg) {
            ensureOpen();
            unmaskArg.setInt(0, port);
            Syscalls.write(fd, unmaskArg, EVTCHN_PORT_SIZE);
        }
    }

    @Override
    public void reset() throws IOException {
        ensureOpen();
        Syscalls.ioctl(fd, IOCTL_EVTCHN_RESET, null, "IOCTL_EVTCHN_RESET");
    }

    @Override
    public int boundPorts() {
        return ports.size();
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("event channels are closed: fd=" + fd);
        }
    }

    /** Closes the device, which unbinds every port still bound through it. */
    @Override
    public void close() throws IOException {
        synchronized (ioctlArg) {
            if (closed) {
                return;
            }
            closed = true;
            ports.clear();
            Syscalls.close(fd);
        }
    }
}
