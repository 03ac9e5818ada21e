package io.jtap.netback;

import io.jtap.tap.TapDevice;
import io.jtap.xen.BackendClaim;
import io.jtap.xen.XenPlatform;
import io.jtap.xen.XenStore;
import io.jtap.xen.XenbusState;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;

/**
 * The control path of one vif, {@code backend/vif/<domid>/<devid>} (Linux: xen-netback's {@code xenbus.c}): on probe
 * it creates the TAP {@code vif<domid>.<handle>} (or {@code vifname}), advertises netback's features and switches to
 * InitWait; when the frontend is Initialised or Connected it reads the frontend's rings, channels and features
 * ({@link FrontendConfig}), maps and binds them ({@link VifQueue}s) and switches to Connected once the hotplug script
 * wrote {@code hotplug-status = connected}; when the frontend closes it releases every mapping and port and follows
 * to Closing / Closed; a frontend that starts again (suspend/resume, migration) gets InitWait and a fresh connection
 * on the same TAP. A bad value in xenstore fails this vif only: the error names the node and the value, it is written
 * to {@code error/backend/vif/<domid>/<devid>/error} (as Linux's {@code xenbus_dev_fatal}) and the backend goes to
 * Closing.
 *
 * <p>The directory is this vif's only while its {@link BackendClaim#INSTANCE_NODE} names it: the probe claims it
 * before it reads the configuration, and every write (features, state, error, the Closed of a backend-initiated
 * close) checks that in the same transaction. A vif that finds its directory removed, or removed and written afresh by
 * a toolstack (a detach and an attach of the same devid, even in one transaction, perhaps with another configuration),
 * writes nothing more, lets go of the rings, never connects again and is {@link #superseded()}: the service closes it
 * and serves the new directory with a new vif, its TAP and its configuration.
 *
 * <p>Thread confinement: every method except the getters runs on the {@link NetbackService}'s control thread.
 */
public final class VifXenbus implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger("io.jtap.netback");

    private final XenStore xs;
    private final XenPlatform platform;
    private final NetbackOptions options;
    private final Executor control;
    private final int domid;
    private final int devid;
    private final String backend;
    private final VifStats stats = new VifStats();
    /** This vif's hold on its directory ({@link BackendClaim#INSTANCE_NODE}). */
    private final BackendClaim claim;
    private volatile BackendConfig config;
    private TapDevice tap;
    private XenStore.Watch frontendWatch;
    /** {@code request-multicast-control} of the connected frontend (Linux {@code xen_register_watchers}). */
    private XenStore.Watch multicastWatch;
    private VifDevice device;
    private List<VifQueue> queues = List.of();
    private volatile XenbusState state = XenbusState.Unknown;
    private volatile String lastError;
    private volatile VifDevice lastDevice;
    private boolean closed;

    VifXenbus(XenStore xs, XenPlatform platform, TapFactory taps, NetbackOptions options, Executor control, int domid,
            int devid, String backend) {
        this.xs = xs;
        this.platform = platform;
        this.options = options;
        this.control = control;
        this.domid = domid;
        this.devid = devid;
        this.backend = backend;
        this.claim = new BackendClaim(backend);
        try {
            if (!claim.claim(xs)) {
                LOG.log(System.Logger.Level.INFO, "netback: " + backend + " gone before the vif started");
                return;
            }
            config = BackendConfig.read(xs, backend, domid, devid);
            tap = taps.open(config.tapName(), options.maxQueues());
            // In the daemon's namespace, before the hotplug script may move the interface elsewhere; a new TAP has
            // Ethernet's 1500 already.
            if (config.mtu() != BackendConfig.ETH_DATA_LEN) {
                tap.setMtu(config.mtu());
            }
            frontendWatch = xs.watch(config.frontend() + "/state", (path, token) -> schedule());
            advertise();
        } catch (IOException | RuntimeException e) {
            fail("probe failed: " + e.getMessage());
        }
    }

    public int domid() {
        return domid;
    }

    public int devid() {
        return devid;
    }

    /** The backend directory, {@code /local/domain/<be>/backend/vif/<domid>/<devid>}. */
    public String backendPath() {
        return backend;
    }

    /** The backend state netback last wrote. */
    public XenbusState state() {
        return state;
    }

    /** The host-side interface's name, or empty when the probe failed before creating it. */
    public Optional<String> tapName() {
        TapDevice t = tap;
        return t == null ? Optional.empty() : Optional.of(t.name());
    }

    /** The TAP netback created for this vif (owned by netback; for tests and the host-side plumbing). */
    public Optional<TapDevice> tap() {
        return Optional.ofNullable(tap);
    }

    /** The last control-path error (bad xenstore value, mapping refused), or empty. */
    public Optional<String> lastError() {
        return Optional.ofNullable(lastError);
    }

    /** Why the data path halted (Linux {@code fatal_tx_err}), or empty while it runs or is not connected. */
    public Optional<String> haltReason() {
        VifDevice d = lastDevice;
        return d == null ? Optional.empty() : Optional.ofNullable(d.haltReason());
    }

    /** Number of queues of the current connection, 0 when not connected. */
    public int queueCount() {
        return queues.size();
    }

    /** The configuration read from the backend directory at the probe or the last connect; null if it failed. */
    BackendConfig config() {
        return config;
    }

    /**
     * Whether the directory at this vif's path now belongs to a new vif (the service then closes this one and starts
     * another): this vif never claimed it, lost it, or its {@link BackendClaim#INSTANCE_NODE} no longer names this vif
     * ({@link BackendClaim#superseded}). Control thread.
     */
    boolean superseded() throws IOException {
        return claim.superseded(xs);
    }

    public VifStats stats() {
        return stats;
    }

    private void schedule() {
        try {
            control.execute(this::refresh);
        } catch (RejectedExecutionException e) {
            // The service is closing; close() takes care of this vif.
        }
    }

    /**
     * Feature nodes and InitWait in one transaction (Linux {@code netback_probe}), after the TAP exists; nothing if the
     * directory is no longer this vif's.
     */
    private void advertise() throws IOException {
        boolean published = claim.publish(xs, tx -> {
            tx.write(backend + "/feature-sg", "1");
            tx.write(backend + "/feature-gso-tcpv4", "1");
            tx.write(backend + "/feature-gso-tcpv6", "1");
            tx.write(backend + "/feature-ipv6-csum-offload", "1");
            tx.write(backend + "/feature-rx-copy", "1");
            tx.write(backend + "/feature-rx-flip", "0");
            tx.write(backend + "/feature-rx-notify", "1");
            tx.write(backend + "/feature-split-event-channels", "1");
            tx.write(backend + "/multi-queue-max-queues", Integer.toString(options.maxQueues()));
            tx.write(backend + "/feature-multicast-control", "1");
            tx.write(backend + "/feature-dynamic-multicast-control", "1");
            tx.write(backend + "/state", XenbusState.InitWait.toXenStore());
        });
        if (published) {
            state = XenbusState.InitWait;
        }
    }

    /**
     * Re-reads the frontend's state and hotplug-status and moves the backend state machine (Linux frontend_changed).
     */
    void refresh() {
        if (closed || config == null || state == XenbusState.Unknown || claim.lost()) {
            // Lost: the directory (and the frontend the toolstack wrote with it) is a new vif's.
            return;
        }
        try {
            XenbusState fe = XenbusState.parse(xs.readString(config.frontend() + "/state").orElse(null));
            switch (fe) {
                case Initialising -> {
                    if (state == XenbusState.Closed || state == XenbusState.Connected) {
                        disconnect();
                        switchState(XenbusState.InitWait);
                    }
                }
                case Initialised, Connected -> {
                    if (device == null && (state == XenbusState.InitWait || state == XenbusState.Closed)) {
                        connect();
                    }
                    if (device != null && state != XenbusState.Connected && hotplugConnected()) {
                        switchState(XenbusState.Connected);
                    }
                }
                case Closing -> {
                    disconnect();
                    if (state != XenbusState.Closed) {
                        switchState(XenbusState.Closing);
                    }
                }
                case Closed, Unknown -> {
                    disconnect();
                    switchState(XenbusState.Closed);
                }
                default -> {
                    // Reconfiguring / Reconfigured: not used by netfront.
                }
            }
        } catch (IOException | RuntimeException e) {
            fail(e.getMessage());
        }
    }

    private boolean hotplugConnected() throws IOException {
        return xs.readString(backend + "/hotplug-status").map(s -> s.equals("connected")).orElse(false);
    }

    private void connect() throws IOException {
        if (!claim.holds(xs)) {
            // The frontend read may be a new vif's: its rings are left alone.
            state = XenbusState.Closed;
            return;
        }
        int previousMtu = config.mtu();
        config = BackendConfig.read(xs, backend, domid, devid); // rate, mac and mtu may have changed meanwhile
        if (config.mtu() != previousMtu) {
            tap.setMtu(config.mtu());
        }
        FrontendConfig fe = FrontendConfig.read(xs, config.frontend(), options.maxQueues());
        VifDevice d = new VifDevice(domid, config.handle(), tap, fe, config, options, stats);
        List<VifQueue> made = new ArrayList<>();
        int n = fe.queues().size();
        try {
            for (int i = 0; i < n; i++) {
                made.add(new VifQueue(d, i, fe.queues().get(i), platform));
            }
            tap.setOffload(offloadFor(fe));
            if (tap.maxQueues() > 1) {
                // A TAP queue per netback queue, so that each reads the flows the kernel steers to it.
                tap.setQueueCount(Math.min(n, tap.maxQueues()));
            }
            d.setQueues(made.toArray(new VifQueue[0]));
            // Linux xen_register_watchers: the frontend may switch multicast control at any time.
            multicastWatch = xs.watch(config.frontend() + "/request-multicast-control",
                    (path, token) -> scheduleMulticastControl(d));
        } catch (IOException | RuntimeException e) {
            closeQueues(made, e);
            throw e;
        }
        device = d;
        lastDevice = d;
        queues = made;
        for (VifQueue q : made) {
            q.start();
        }
        LOG.log(System.Logger.Level.INFO, "netback: " + d.describe() + " connected: tap=" + tap.name() + ", queues="
                + made.size() + (d.perQueueTap() ? " (a TAP queue each)" : "") + ", sg=" + fe.sg() + ", gso-tcpv4="
                + fe.gsoTcpv4() + ", gso-tcpv6=" + fe.gsoTcpv6() + ", split=" + fe.queues().get(0).split()
                + ", mtu=" + config.mtu());
    }

    /** What the TAP may hand netback for this frontend: only what the guest can take (GSO needs sg). */
    static int offloadFor(FrontendConfig fe) {
        if (!fe.csumIpv4() && !fe.csumIpv6()) {
            return 0;
        }
        int flags = TapDevice.TUN_F_CSUM;
        if (fe.sg() && fe.gsoTcpv4()) {
            flags |= TapDevice.TUN_F_TSO4;
        }
        if (fe.sg() && fe.gsoTcpv6()) {
            flags |= TapDevice.TUN_F_TSO6;
        }
        return flags;
    }

    private void scheduleMulticastControl(VifDevice d) {
        try {
            control.execute(() -> refreshMulticastControl(d));
        } catch (RejectedExecutionException e) {
            // The service is closing.
        }
    }

    /** Linux {@code xen_mcast_ctrl_changed}: re-reads {@code request-multicast-control} for the connected device. */
    private void refreshMulticastControl(VifDevice d) {
        if (closed || device != d) {
            return;
        }
        try {
            d.setMulticastControl(FrontendConfig.readFlag(xs, config.frontend() + "/request-multicast-control"));
        } catch (IOException | RuntimeException e) {
            fail(e.getMessage());
        }
    }

    private void disconnect() throws IOException {
        List<VifQueue> q = queues;
        queues = List.of();
        device = null;
        if (multicastWatch != null) {
            multicastWatch.close();
            multicastWatch = null;
        }
        closeQueues(q, null);
        if (tap != null && tap.queueCount() > 1) {
            tap.setQueueCount(1);
        }
    }

    private static void closeQueues(List<VifQueue> list, Throwable primary) throws IOException {
        IOException failure = null;
        for (VifQueue q : list) {
            try {
                q.close();
            } catch (IOException e) {
                if (failure == null) {
                    failure = e;
                } else {
                    failure.addSuppressed(e);
                }
            }
        }
        if (failure != null) {
            if (primary != null) {
                primary.addSuppressed(failure);
            } else {
                throw failure;
            }
        }
    }

    /**
     * Publishes {@code next} (Linux {@code xenbus_switch_state}) if the directory is still this vif's. Otherwise
     * nothing is written, the rings are let go, and the vif is Closing or Closed, never InitWait or Connected: it does
     * not offer itself to a directory it lost.
     */
    private void switchState(XenbusState next) throws IOException {
        if (state == next) {
            return;
        }
        XenbusState previous = state;
        state = next; // before the write: whoever sees the node sees the field too
        boolean published;
        try {
            published = claim.publish(xs, tx -> tx.write(backend + "/state", next.toXenStore()));
        } catch (IOException | RuntimeException e) {
            state = previous;
            throw e;
        }
        if (!published) {
            state = next == XenbusState.Closing ? XenbusState.Closing : XenbusState.Closed;
            disconnect();
        }
    }

    /** Linux {@code xenbus_dev_fatal}: record the error, stop the data path, go to Closing. This vif only. */
    private void fail(String message) {
        lastError = message + ", vif=" + domid + "/" + devid;
        LOG.log(System.Logger.Level.ERROR, "netback: " + lastError);
        try {
            disconnect();
        } catch (IOException | RuntimeException e) {
            LOG.log(System.Logger.Level.ERROR, "netback: disconnect after error failed: " + e);
        }
        try {
            String home = "/local/domain/" + platform.domid();
            String error = lastError;
            claim.publish(xs, tx -> {
                tx.write(home + "/error" + backend.substring(home.length()) + "/error", error);
                tx.write(backend + "/state", XenbusState.Closing.toXenStore());
            });
            state = XenbusState.Closing;
        } catch (IOException | RuntimeException e) {
            LOG.log(System.Logger.Level.ERROR, "netback: cannot report the error in xenstore: " + e);
            state = XenbusState.Closing;
        }
    }

    /**
     * Closes the vif: stops the data path, releases every mapping and port, writes Closed (when the backend directory
     * is still this vif's: a backend-initiated close; never into a directory written afresh), closes the TAP.
     * Idempotent.
     */
    @Override
    public void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        IOException failure = null;
        try {
            disconnect();
        } catch (IOException e) {
            failure = e;
        }
        if (frontendWatch != null) {
            frontendWatch.close();
        }
        try {
            if (claim.claimed() && !claim.lost()) {
                claim.publish(xs, tx -> tx.write(backend + "/state", XenbusState.Closed.toXenStore()));
            }
            state = XenbusState.Closed;
        } catch (IOException e) {
            // The toolstack may remove the directory concurrently; nothing to tell the frontend then.
            state = XenbusState.Closed;
        }
        if (tap != null) {
            try {
                tap.close();
            } catch (IOException e) {
                if (failure == null) {
                    failure = e;
                } else {
                    failure.addSuppressed(e);
                }
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    @Override
    public String toString() {
        return "VifXenbus{" + backend + ", state=" + state + (lastError != null ? ", error=" + lastError : "") + "}";
    }
}
