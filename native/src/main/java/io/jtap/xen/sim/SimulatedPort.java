package io.jtap.xen.sim;

/**
 * One event-channel port of a simulated domain: Xen's {@code struct evtchn} state plus the Linux device's mask bit.
 * All fields are guarded by the world's lock.
 */
final class SimulatedPort {
    /** Xen {@code ECS_UNBOUND}: allocated, waiting for {@link #remoteDomid} to bind to it. */
    static final int ECS_UNBOUND = 1;
    /** Xen {@code ECS_INTERDOMAIN}: connected to {@link #remotePort} of {@link #remoteDomid}. */
    static final int ECS_INTERDOMAIN = 2;

    final int port;
    final SimulatedEventChannels owner;
    int state;
    int remoteDomid;
    int remotePort;
    /** The Linux device masks a port when it reports it, until userspace writes it back. */
    boolean masked;
    /** Xen's pending bit, set by an event that arrived while masked. */
    boolean latched;

    SimulatedPort(int port, SimulatedEventChannels owner) {
        this.port = port;
        this.owner = owner;
    }

    @Override
    public String toString() {
        return state == ECS_INTERDOMAIN
                ? port + "->dom" + remoteDomid + ":" + remotePort
                : port + ":unbound(for dom" + remoteDomid + ")";
    }
}
