package io.jtap.xen;

import java.io.IOException;

/**
 * The Xen facilities a userspace backend uses, as seen from one domain: its grant table, event channels and xenstore.
 *
 * <p>Why this shape: a backend is written once against this interface and runs unchanged on a real host
 * ({@code io.jtap.xen.linux.LinuxXenPlatform}, over {@code /dev/xen}) and in the simulation
 * ({@code io.jtap.xen.sim.SimulatedXen#platform(int)}); which one is used is the caller's explicit choice, never a
 * fallback. Each {@code open*} call returns a new handle that the caller owns and must close; a backend typically
 * opens one xenstore connection for the daemon, and a grant table and an event-channel handle per device or per
 * ring thread.
 *
 * <p>Thread-safe: the factory methods may be called from any thread.
 */
public interface XenPlatform {
    /** The domain this platform acts as (0 for dom0, the driver domain's id otherwise). */
    int domid();

    /** Opens a grant-table handle (Linux: {@code /dev/xen/gntdev}). */
    GrantTable openGrantTable() throws IOException;

    /** Opens an event-channel handle (Linux: {@code /dev/xen/evtchn}). */
    EventChannels openEventChannels() throws IOException;

    /** Opens a xenstore connection as {@link #domid()}. */
    XenStore openXenStore() throws IOException;

    /** A one-line description for logs, e.g. "simulated Xen, domid=0". */
    String describe();
}
