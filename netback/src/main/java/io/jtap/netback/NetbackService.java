package io.jtap.netback;

import io.jtap.xen.BackendDirectoryEvents;
import io.jtap.xen.XenPlatform;
import io.jtap.xen.XenStore;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;

/**
 * jtap's network backend as a service: watches {@code backend/vif/} under its own domain's xenstore home and serves
 * every device that appears there ({@link VifXenbus}), until its directory goes away. The daemon's wiring is one line:
 * {@code NetbackService.start(platform, LinuxTap::open)}.
 *
 * <p>A vif directory removed and written afresh at the same path (a detach and an attach of the same devid, even in
 * one transaction, perhaps with another {@code mac}, {@code vifname}, {@code rate} or {@code mtu}) is a new vif: the
 * watch event naming the directory itself marks its key ({@link BackendDirectoryEvents}), and the next reconcile
 * closes the old vif (and its TAP) before it starts the new one if the old one's claim on the directory is gone
 * ({@link VifXenbus#superseded()}). The old vif, should it see the new frontend first, writes nothing into the new
 * directory and never connects again. An event for a directory that is still its vif's restarts nothing, and a
 * frontend that starts over in the same directory (suspend/resume) reconnects to the same vif.
 *
 * <p>Threads: one control thread ({@code netback-xenbus}) runs every xenstore reaction, in order; each connected
 * queue has its own data-path thread. A vif's failure — a bad xenstore value, a malicious ring — stays with that vif.
 */
public final class NetbackService implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger("io.jtap.netback");

    private final XenPlatform platform;
    private final TapFactory taps;
    private final NetbackOptions options;
    private final XenStore xs;
    private final String base;
    private final ExecutorService control;
    private final Map<String, VifXenbus> vifs = new ConcurrentHashMap<>();
    /** The vif directories a watch event named since the last reconcile: filled on the watch thread. */
    private final BackendDirectoryEvents touched;
    private final XenStore.Watch watch;
    private boolean closed;
    private final java.util.concurrent.atomic.AtomicBoolean closing = new java.util.concurrent.atomic.AtomicBoolean();

    private NetbackService(XenPlatform platform, TapFactory taps, NetbackOptions options) throws IOException {
        this.platform = platform;
        this.taps = taps;
        this.options = options;
        this.xs = platform.openXenStore();
        this.base = "/local/domain/" + platform.domid() + "/backend/vif";
        this.touched = new BackendDirectoryEvents(base);
        this.control = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "netback-xenbus");
            t.setDaemon(true);
            return t;
        });
        XenStore.Watch w;
        try {
            w = xs.watch(base, (path, token) -> {
                touched.note(path);
                schedule();
            });
        } catch (IOException | RuntimeException e) {
            control.shutdownNow();
            xs.close();
            throw e;
        }
        this.watch = w;
    }

    /** Starts serving with {@link NetbackOptions#defaults()}. */
    public static NetbackService start(XenPlatform platform, TapFactory taps) throws IOException {
        return start(platform, taps, NetbackOptions.defaults());
    }

    public static NetbackService start(XenPlatform platform, TapFactory taps, NetbackOptions options)
            throws IOException {
        return new NetbackService(platform, taps, options);
    }

    /** The vifs served now. */
    public List<VifXenbus> vifs() {
        return List.copyOf(vifs.values());
    }

    public Optional<VifXenbus> vif(int domid, int devid) {
        return Optional.ofNullable(vifs.get(domid + "/" + devid));
    }

    private void schedule() {
        try {
            control.execute(this::reconcile);
        } catch (RejectedExecutionException e) {
            // closing
        }
    }

    /**
     * Brings the served set in line with {@code backend/vif/} and lets every vif react. Control thread. A vif whose
     * directory is gone, or was written afresh ({@link VifXenbus#superseded()}, asked only when an event named the
     * directory), is closed before a vif is started for what is there now: the new one may want the same TAP name.
     */
    private void reconcile() {
        if (closed) {
            return;
        }
        Set<String> events = touched.drain();
        Map<String, String> present = new LinkedHashMap<>();
        Set<String> named = new HashSet<>();
        try {
            for (String d : xs.directoryIfPresent(base)) {
                int domid = parseId(d);
                if (domid < 0) {
                    continue;
                }
                for (String h : xs.directoryIfPresent(base + "/" + d)) {
                    int devid = parseId(h);
                    if (devid < 0) {
                        continue;
                    }
                    String key = domid + "/" + devid;
                    present.put(key, base + "/" + d + "/" + h);
                    if (BackendDirectoryEvents.covers(events, d + "/" + h)) {
                        named.add(key);
                    }
                }
            }
        } catch (IOException | RuntimeException e) {
            LOG.log(System.Logger.Level.ERROR, "netback: cannot list " + base + ": " + e);
            return;
        }
        for (Map.Entry<String, VifXenbus> e : new ArrayList<>(vifs.entrySet())) {
            boolean gone = !present.containsKey(e.getKey());
            if (gone || named.contains(e.getKey()) && superseded(e.getValue())) {
                vifs.remove(e.getKey());
                if (!gone) {
                    LOG.log(System.Logger.Level.INFO, "netback: vif directory written afresh, restarting: "
                            + e.getValue().backendPath());
                }
                closeQuietly(e.getValue());
            }
        }
        for (Map.Entry<String, String> e : present.entrySet()) {
            String key = e.getKey();
            String dir = e.getValue();
            try {
                // A toolstack writes the directory in one transaction; until frontend and state are there, it is not
                // a device yet (the vif claims the directory only if state is there).
                if (!vifs.containsKey(key) && xs.read(dir + "/frontend").isPresent()
                        && xs.read(dir + "/state").isPresent()) {
                    String[] ids = key.split("/");
                    vifs.put(key, new VifXenbus(xs, platform, taps, options, control, Integer.parseInt(ids[0]),
                            Integer.parseInt(ids[1]), dir));
                }
            } catch (IOException | RuntimeException ex) {
                LOG.log(System.Logger.Level.ERROR, "netback: cannot read " + dir + ": " + ex);
            }
        }
        for (VifXenbus v : vifs.values()) {
            v.refresh();
        }
    }

    /** {@link VifXenbus#superseded()}, true when it cannot tell (xenstore failing: start afresh). */
    private static boolean superseded(VifXenbus v) {
        try {
            return v.superseded();
        } catch (IOException | RuntimeException e) {
            LOG.log(System.Logger.Level.WARNING, "netback: cannot tell whether " + v.backendPath()
                    + " is a new vif: " + e);
            return true;
        }
    }

    private static int parseId(String s) {
        try {
            int v = Integer.parseInt(s);
            return v >= 0 ? v : -1;
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    private static void closeQuietly(VifXenbus v) {
        try {
            v.close();
        } catch (IOException | RuntimeException e) {
            LOG.log(System.Logger.Level.ERROR, "netback: closing " + v + " failed: " + e);
        }
    }

    /**
     * Stops watching, closes every vif (backend-initiated close: Closed is written, mappings and ports released, TAPs
     * closed) and the xenstore connection. Idempotent.
     */
    @Override
    public void close() throws IOException {
        if (!closing.compareAndSet(false, true)) {
            return;
        }
        watch.close();
        Future<?> done = control.submit(() -> {
            closed = true;
            for (VifXenbus v : vifs.values()) {
                closeQuietly(v);
            }
            vifs.clear();
        });
        try {
            done.get(30, TimeUnit.SECONDS);
        } catch (Exception e) {
            throw new IOException("netback: closing the vifs failed", e);
        } finally {
            control.shutdown();
            try {
                control.awaitTermination(30, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            xs.close();
        }
    }
}
