package io.jtap.xen;

import io.jtap.xen.linux.Syscalls;
import java.io.IOException;

/**
 * Event channels of one open of the event-channel device ({@code /dev/xen/evtchn}): bind ports, notify peers, learn
 * which of this handle's ports fired.
 *
 * <p>Shaped after the Linux device because an event loop needs exactly its properties: one pollable {@link #fd()},
 * readable while a port is pending; a port that fires is reported once and then masked until {@link #unmask(int)}
 * (events that arrive meanwhile are latched and reported again after unmasking, none is lost, several coalesce).
 * An event is a hint ("look at the ring"), never a count: a port may fire spuriously, for example right after
 * {@link #bindInterdomain} (Xen sets the new port pending in case the peer notified before the bind).
 *
 * <p>Implementations: {@code io.jtap.xen.linux.LinuxEventChannels} and {@code io.jtap.xen.sim.SimulatedEventChannels};
 * both pass {@code EventChannelsContract}. Binding, notifying and unmasking are thread-safe; {@link #pending} and
 * {@link #awaitPending} belong to the one thread that runs the event loop.
 */
public interface EventChannels extends AutoCloseable {
    /**
     * Binds a new local port to {@code remotePort} of {@code remoteDomid}, which must be unbound and reserved for this
     * domain ({@code IOCTL_EVTCHN_BIND_INTERDOMAIN}).
     *
     * @return the local port
     */
    int bindInterdomain(int remoteDomid, int remotePort) throws IOException;

    /**
     * Allocates a local port that {@code remoteDomid} may bind to ({@code IOCTL_EVTCHN_BIND_UNBOUND_PORT}); what a
     * frontend does for its backend.
     *
     * @return the local port
     */
    int bindUnboundPort(int remoteDomid) throws IOException;

    /** Closes {@code port}, which must be bound through this handle ({@code IOCTL_EVTCHN_UNBIND}). */
    void unbind(int port) throws IOException;

    /**
     * Sends an event to the peer of {@code port}, which must be bound through this handle
     * ({@code IOCTL_EVTCHN_NOTIFY}).
     */
    void notify(int port) throws IOException;

    /**
     * A descriptor that polls readable ({@code POLLIN}) while a port of this handle is pending. Owned by this handle.
     */
    int fd();

    /**
     * Takes the pending ports without blocking. Each returned port is masked until {@link #unmask(int)}.
     *
     * @return how many ports were stored in {@code ports} (0 when none is pending)
     */
    int pending(int[] ports) throws IOException;

    /**
     * Like {@link #pending(int[])} but waits up to {@code timeoutNs} for a port to fire, polling {@link #fd()}.
     *
     * @return how many ports were stored in {@code ports}, 0 on timeout
     */
    default int awaitPending(int[] ports, long timeoutNs) throws IOException {
        long deadline = System.nanoTime() + timeoutNs;
        int[] fds = {fd()};
        while (true) {
            int n = pending(ports);
            if (n > 0) {
                return n;
            }
            long remainingNs = deadline - System.nanoTime();
            if (remainingNs <= 0) {
                return 0;
            }
            // Round up so that a short remaining time still waits instead of spinning.
            long timeoutMs = Math.min(Integer.MAX_VALUE, (remainingNs + 999_999) / 1_000_000);
            Syscalls.pollIn(fds, (int) timeoutMs);
        }
    }

    /** Re-enables {@code port} after its event was handled; a latched event then fires again. */
    void unmask(int port) throws IOException;

    /** Discards pending ports not yet read and clears an overflow condition ({@code IOCTL_EVTCHN_RESET}). */
    void reset() throws IOException;

    /** The number of ports bound through this handle (for leak checks). */
    int boundPorts();

    /** Closes the handle; the device unbinds every port still bound through it. Idempotent. */
    @Override
    void close() throws IOException;
}
