package io.jtap.xen.sim;

import com.sun.jna.Pointer;
import io.jtap.xen.EventChannels;
import io.jtap.xen.linux.EvtchnDescriptor;
import io.jtap.xen.linux.LibC;
import io.jtap.xen.linux.Syscalls;
import io.jtap.xen.linux.Syscalls.ErrnoException;
import java.io.IOException;
import java.util.TreeSet;
import com.sun.jna.Memory;

/**
 * One simulated open of the event-channel device in a {@link SimulatedDomain}.
 *
 * <p>Mirrors Linux's {@code drivers/xen/evtchn.c} over Xen's event channels: a ring of pending ports (one page of
 * them); a port that fires is put in the ring once and masked until {@link #unmask(int)}, an event meanwhile is latched
 * and fires again on unmask; the pollable {@link #fd()} is an eventfd kept readable exactly while the ring is not
 * empty. Errors carry the errno the device returns: ESRCH for an unknown remote domain, EINVAL for a remote port that
 * is not unbound-for-us, ENOTCONN for a port not bound through this handle.
 */
public final class SimulatedEventChannels implements EventChannels {
    private final SimulatedXen xen;
    private final SimulatedDomain domain;
    private final int eventfd;
    /** The eventfd's 8-byte counter, for signalling and draining; guarded by xen.lock. */
    private final Memory counter = new Memory(8);
    private final int[] ring = new int[EvtchnDescriptor.EVTCHN_RING_PORTS];
    private int ringHead;
    private int ringSize;
    private boolean ringOverflow;
    /** Ports bound through this handle; guarded by xen.lock. */
    private final TreeSet<Integer> ports = new TreeSet<>();
    private boolean closed;

    SimulatedEventChannels(SimulatedXen xen, SimulatedDomain domain) throws ErrnoException {
        this.xen = xen;
        this.domain = domain;
        this.eventfd = Syscalls.eventfd(0, LibC.EFD_NONBLOCK);
    }

    /** The domain this handle belongs to. */
    public SimulatedDomain domain() {
        return domain;
    }

    private ErrnoException error(String call, int errno) {
        return new ErrnoException(call + " [simulated dom" + domain.domid() + "]", errno);
    }

    @Override
    public int bindInterdomain(int remoteDomid, int remotePort) throws IOException {
        String call = "IOCTL_EVTCHN_BIND_INTERDOMAIN(remote_domain=" + remoteDomid + ", remote_port=" + remotePort
                + ")";
        int port;
        boolean kick;
        synchronized (xen.lock) {
            ensureOpen();
            SimulatedDomain remote = xen.liveDomain(remoteDomid);
            if (remote == null) {
                throw error(call, LibC.ESRCH);
            }
            SimulatedPort rp = remote.port(remotePort);
            if (rp == null || rp.state != SimulatedPort.ECS_UNBOUND || rp.remoteDomid != domain.domid()) {
                throw error(call, LibC.EINVAL);
            }
            SimulatedPort lp = domain.allocatePort(this, call);
            lp.state = SimulatedPort.ECS_INTERDOMAIN;
            lp.remoteDomid = remoteDomid;
            lp.remotePort = remotePort;
            rp.state = SimulatedPort.ECS_INTERDOMAIN;
            rp.remoteDomid = domain.domid();
            rp.remotePort = lp.port;
            ports.add(lp.port);
            // Xen's evtchn_bind_interdomain: "We may have lost notifications on the remote unbound port. Fix that up
            // here by conservatively always setting a notification on the local port."
            kick = fire(lp);
            port = lp.port;
        }
        if (kick) {
            kick();
        }
        return port;
    }

    @Override
    public int bindUnboundPort(int remoteDomid) throws IOException {
        String call = "IOCTL_EVTCHN_BIND_UNBOUND_PORT(remote_domain=" + remoteDomid + ")";
        synchronized (xen.lock) {
            ensureOpen();
            if (xen.liveDomain(remoteDomid) == null) {
                throw error(call, LibC.ESRCH);
            }
            SimulatedPort p = domain.allocatePort(this, call);
            p.state = SimulatedPort.ECS_UNBOUND;
            p.remoteDomid = remoteDomid;
            ports.add(p.port);
            return p.port;
        }
    }

    @Override
    public void unbind(int port) throws IOException {
        synchronized (xen.lock) {
            ensureOpen();
            if (!ports.contains(port)) {
                throw error("IOCTL_EVTCHN_UNBIND(port=" + port + ")", LibC.ENOTCONN);
            }
            closePort(port);
        }
    }

    /** Xen's {@code evtchn_close}: an interdomain peer goes back to unbound, reserved for this domain. */
    private void closePort(int port) {
        SimulatedPort p = domain.port(port);
        if (p.state == SimulatedPort.ECS_INTERDOMAIN) {
            SimulatedDomain remote = xen.liveDomain(p.remoteDomid);
            SimulatedPort rp = remote == null ? null : remote.port(p.remotePort);
            if (rp != null && rp.state == SimulatedPort.ECS_INTERDOMAIN && rp.remoteDomid == domain.domid()
                    && rp.remotePort == port) {
                rp.state = SimulatedPort.ECS_UNBOUND;
                rp.remotePort = 0;
            }
        }
        domain.freePort(port);
        ports.remove(port);
    }

    @Override
    public void notify(int port) throws IOException {
        SimulatedEventChannels kick;
        synchronized (xen.lock) {
            ensureOpen();
            if (!ports.contains(port)) {
                throw error("IOCTL_EVTCHN_NOTIFY(port=" + port + ")", LibC.ENOTCONN);
            }
            kick = send(xen, domain, domain.port(port));
        }
        // The wake-up (a system call that may wake a sleeping thread) is made without the simulation's lock, which
        // the woken side takes at once to read its pending ports.
        if (kick != null) {
            kick.kick();
        }
    }

    /**
     * Xen's {@code evtchn_send} from {@code port} of {@code from}: an unbound port drops it. Called with the lock.
     *
     * @return the handle whose eventfd must be signalled once the lock is released ({@link #kick()}), or null
     */
    static SimulatedEventChannels send(SimulatedXen xen, SimulatedDomain from, SimulatedPort port) {
        if (port.state != SimulatedPort.ECS_INTERDOMAIN) {
            return null;
        }
        SimulatedDomain remote = xen.liveDomain(port.remoteDomid);
        SimulatedPort rp = remote == null ? null : remote.port(port.remotePort);
        if (rp != null && rp.owner.fire(rp)) {
            return rp.owner;
        }
        return null;
    }

    /**
     * An event on {@code p}, one of this handle's ports. Called with xen.lock held.
     *
     * @return true when the eventfd must be signalled: the first pending port, or an overflow
     */
    private boolean fire(SimulatedPort p) {
        if (closed) {
            return false;
        }
        if (p.masked) {
            p.latched = true;
            return false;
        }
        p.masked = true;
        if (ringSize == ring.length) {
            ringOverflow = true;
        } else {
            ring[(ringHead + ringSize) % ring.length] = p.port;
            ringSize++;
        }
        return ringSize == 1 || ringOverflow;
    }

    /** 1, the value every signal adds to an eventfd; only ever read. */
    private static final Memory ONE = new Memory(8);

    static {
        ONE.setLong(0, 1);
    }

    /** Guards {@link #eventfd} between a kick made without xen.lock and {@link #close()}. */
    private final Object kickLock = new Object();

    /** Signals this handle's eventfd, unless it was closed meanwhile (its fd number may be another file's by then). */
    void kick() {
        synchronized (kickLock) {
            if (!closed) {
                // Only EAGAIN (counter at its maximum) can fail here, and then the eventfd is readable anyway.
                Syscalls.tryWrite(eventfd, Pointer.nativeValue(ONE), 8);
            }
        }
    }

    @Override
    public int fd() {
        return eventfd;
    }

    @Override
    public int pending(int[] ports) throws IOException {
        synchronized (xen.lock) {
            ensureOpen();
            if (ringOverflow) {
                throw error("read(evtchn)", LibC.EFBIG);
            }
            int n = Math.min(ports.length, ringSize);
            for (int i = 0; i < n; i++) {
                ports[i] = ring[ringHead];
                ringHead = (ringHead + 1) % ring.length;
                ringSize--;
            }
            if (ringSize == 0) {
                drainEventfd();
            }
            return n;
        }
    }

    private void drainEventfd() throws ErrnoException {
        long r = Syscalls.tryRead(eventfd, Pointer.nativeValue(counter), 8);
        if (r < 0 && r != -LibC.EAGAIN) {
            throw new ErrnoException("read(event channel eventfd " + eventfd + ")", (int) -r);
        }
    }

    /** As a write of {@code port} to the device: a port not bound through this handle is ignored. */
    @Override
    public void unmask(int port) throws IOException {
        boolean kick = false;
        synchronized (xen.lock) {
            ensureOpen();
            SimulatedPort p = ports.contains(port) ? domain.port(port) : null;
            if (p == null || !p.masked) {
                return;
            }
            p.masked = false;
            if (p.latched) {
                p.latched = false;
                kick = fire(p);
            }
        }
        // An event that arrived while the port was masked fires now: the eventfd must say so, or a thread polling
        // it sleeps with the port pending.
        if (kick) {
            kick();
        }
    }

    /** Empties the ring; as on Linux, the ports that were in it stay masked until unmasked. */
    @Override
    public void reset() throws IOException {
        synchronized (xen.lock) {
            ensureOpen();
            ringHead = 0;
            ringSize = 0;
            ringOverflow = false;
            drainEventfd();
        }
    }

    @Override
    public int boundPorts() {
        synchronized (xen.lock) {
            return ports.size();
        }
    }

    private void ensureOpen() {
        xen.ensureOpen();
        if (closed) {
            throw new IllegalStateException("simulated event channels are closed: domid=" + domain.domid());
        }
    }

    /** Unbinds every port still bound through this handle and closes the eventfd. */
    @Override
    public void close() throws IOException {
        synchronized (xen.lock) {
            if (closed) {
                return;
            }
            for (int port : ports.toArray(new Integer[0])) {
                closePort(port);
            }
            xen.unregistered(this);
            counter.close();
            synchronized (kickLock) {
                closed = true;
                Syscalls.close(eventfd);
            }
        }
    }

    @Override
    public String toString() {
        synchronized (xen.lock) {
            return "SimulatedEventChannels[dom" + domain.domid() + ", fd=" + eventfd + ", ports="
                    + domain.describePorts(ports) + (closed ? ", closed" : "") + "]";
        }
    }
}
