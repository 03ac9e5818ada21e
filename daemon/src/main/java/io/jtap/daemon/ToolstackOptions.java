package io.jtap.daemon;

import io.jtap.xen.XenStore;
import io.jtap.xen.linux.WireXenStore;
import io.jtap.xen.sim.SimulatedXen;

import java.io.IOException;
import java.math.BigDecimal;
import java.time.Duration;
import picocli.CommandLine.Option;

/**
 * The options {@code jtap attach} and {@code jtap detach} share (a picocli mixin): which Xen, which guest, which
 * backend. Names and values follow {@code jtap serve} ({@link ServeOptions}). Values are checked here, so that a bad
 * one is a usage error naming the option and the value.
 */
final class ToolstackOptions {
    @Option(names = "--xen", order = 10, paramLabel = "linux|simulated", defaultValue = "linux",
            description = "real Xen (xenstore over /dev/xen/xenbus or xenstored's socket) or the in-process"
                    + " simulation; default: ${DEFAULT-VALUE}")
    String xen;

    @Option(names = "--domid", order = 1, paramLabel = "D", required = true, description = "the guest's domain id")
    String domid;

    @Option(names = "--backend-domid", order = 11, paramLabel = "N", defaultValue = "0",
            description = "the domain whose jtap serve serves the disk; default: ${DEFAULT-VALUE}")
    String backendDomid;

    @Option(names = "--backend-kind", order = 12, paramLabel = "K", defaultValue = "vbd",
            description = "the backend directory jtap serve watches (its --backend-kind); default: ${DEFAULT-VALUE}")
    String kind;

    @Option(names = "--timeout", order = 13, paramLabel = "SECONDS", defaultValue = "30",
            description = "how long to wait for the backend; default: ${DEFAULT-VALUE}")
    String timeout;

    /** The largest domid a guest can have (DOMID_FIRST_RESERVED - 1). */
    static final int MAX_DOMID = 0x7fef;

    /** The device these options name, for {@code vdev}. */
    VbdToolstack.Device device(Vdev vdev) throws UsageException {
        return new VbdToolstack.Device(backendDomid(), kind(), guestDomid(), vdev);
    }

    int guestDomid() throws UsageException {
        return number("--domid", domid, 1, MAX_DOMID);
    }

    int backendDomid() throws UsageException {
        return number("--backend-domid", backendDomid, 0, MAX_DOMID);
    }

    String kind() throws UsageException {
        if (!kind.matches("[A-Za-z0-9_-]+")) {
            throw new UsageException("bad --backend-kind: value=" + kind + ", expected [A-Za-z0-9_-]+");
        }
        return kind;
    }

    Duration timeout() throws UsageException {
        try {
            BigDecimal seconds = new BigDecimal(timeout);
            if (seconds.signum() > 0 && seconds.compareTo(BigDecimal.valueOf(86_400)) <= 0) {
                return Duration.ofNanos(seconds.movePointRight(9).longValue());
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new UsageException("bad --timeout: value=" + timeout + ", expected seconds, more than 0 and at most"
                + " 86400 (e.g. 30 or 0.5)");
    }

    /** Checks {@code --xen} before anything is opened. */
    void checkXen() throws UsageException {
        if (!xen.equals("linux") && !xen.equals("simulated")) {
            throw new UsageException("bad --xen: value=" + xen + ", expected linux or simulated");
        }
    }

    static int number(String name, String value, int min, int max) throws UsageException {
        try {
            int v = Integer.parseInt(value);
            if (v >= min && v <= max) {
                return v;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new UsageException("bad " + name + ": value=" + value + ", expected " + min + ".." + max);
    }

    /**
     * Opens xenstore as the toolstack (dom0) in the chosen world: for "linux" xenstored over {@code /dev/xen/xenbus}
     * or its socket, failing with both reasons when neither is there (never the simulation); for "simulated",
     * {@code world} when the caller runs in-process with one, else a fresh simulated Xen that holds only dom0 and
     * lives as long as the connection.
     */
    ToolstackConnection connect(SimulatedXen world) throws IOException {
        if (xen.equals("linux")) {
            try {
                return new ToolstackConnection(WireXenStore.openDefault(), null);
            } catch (IOException e) {
                throw new VbdToolstack.ToolstackException("real Xen's xenstore is unavailable (--xen=linux): "
                        + e.getMessage());
            }
        }
        if (world != null) {
            return new ToolstackConnection(world.platform(SimulatedXen.DOM0).openXenStore(), null);
        }
        SimulatedXen fresh = new SimulatedXen();
        return new ToolstackConnection(fresh.platform(SimulatedXen.DOM0).openXenStore(), fresh);
    }

    /** A xenstore connection, and the simulated world it belongs to when the command made one. */
    record ToolstackConnection(XenStore xs, SimulatedXen ownedWorld) implements AutoCloseable {
        @Override
        public void close() throws IOException {
            try {
                xs.close();
            } finally {
                if (ownedWorld != null) {
                    ownedWorld.close();
                }
            }
        }
    }
}
