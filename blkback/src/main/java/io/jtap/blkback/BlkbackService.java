package io.jtap.blkback;

import io.jtap.formats.ImageFormats;
import io.jtap.xen.BackendDirectoryEvents;
import io.jtap.xen.XenPlatform;
import io.jtap.xen.XenStore;

import java.io.IOException;
import java.lang.System.Logger;
import java.lang.System.Logger.Level;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * Serves every block device the toolstack creates under {@code /local/domain/<self>/backend/<kind>}: watches that
 * directory, starts a {@link BlkbackDevice} for each {@code <frontend-domid>/<devid>} that appears, and closes it
 * when its directory goes away (Linux: the xenbus driver core's backend watch). One bad device never stops the
 * others.
 *
 * <p>A device directory removed and created again at the same path between two rescans (a detach followed at once
 * by an attach of the same devid, or both in one transaction) is a new device: the watch event naming the directory
 * itself (xenstored fires it for the directory's creation and its removal, not for writes below it) marks the key
 * ({@link BackendDirectoryEvents}), and the next rescan closes the old device and starts a new one if the old one is
 * finished or its directory was written afresh: the node that named the old device is gone
 * ({@link BlkbackDevice#superseded()}; Linux: {@code xenbus_dev_changed} on the event's path). The old device, which
 * sees the new frontend on its own thread, perhaps before this rescan, writes nothing into a directory that no longer
 * names it and never connects again. A creation event that arrives after its device started, as libxl's usually do,
 * restarts nothing. Children's events never restart a device.
 *
 * <p>Owns one xenstore connection, the bounded worker pool that runs image IO for all devices, the budget of pages
 * their rings may keep mapped persistently ({@link BlkbackConfig#maxPersistentGrantsTotal()}), and the devices.
 * Rescans run on one service thread; watch events only enqueue a rescan.
 */
public final class BlkbackService implements AutoCloseable {
    private static final Logger LOG = System.getLogger("io.jtap.blkback");

    private final XenPlatform platform;
    private final String root;
    private final BlkbackConfig config;
    private final ImageFormats formats;
    private final XenStore xs;
    private final ThreadPoolExecutor workers;
    /** Pages all devices' rings may keep mapped persistently together. */
    private final PersistentGrantBudget persistentBudget;
    private final ExecutorService service;
    private final Map<String, BlkbackDevice> devices = new LinkedHashMap<>();
    /** The device directories a watch event named since the last rescan: filled on the watch thread. */
    private final BackendDirectoryEvents touched;
    private XenStore.Watch watch;

    /**
     * @param kind          the backend kind, e.g. "vbd" (Linux blkback's) or "qdisk"/"vbd3" to coexist with others
     * @param workerThreads threads of the image IO pool shared by all devices
     */
    public BlkbackService(XenPlatform platform, String kind, BlkbackConfig config, ImageFormats formats,
                          int workerThreads) throws IOException {
        if (!kind.matches("[A-Za-z0-9_-]+")) {
            throw new IllegalArgumentException("bad backend kind: kind=" + kind);
        }
        this.platform = platform;
        this.root = "/local/domain/" + platform.domid() + "/backend/" + kind;
        this.touched = new BackendDirectoryEvents(root);
        this.config = config;
        this.formats = formats;
        this.persistentBudget = new PersistentGrantBudget(config.maxPersistentGrantsTotal());
        this.xs = platform.openXenStore();
        this.workers = new ThreadPoolExecutor(workerThreads, workerThreads, 0, TimeUnit.SECONDS,
                new LinkedBlockingQueue<>(), daemonThreads("jtap-blkback-io"));
        this.service = Executors.newSingleThreadExecutor(daemonThreads("jtap-blkback-service"));
    }

    private static java.util.concurrent.ThreadFactory daemonThreads(String name) {
        return r -> {
            Thread t = new Thread(r, name);
            t.setDaemon(true);
            return t;
        };
    }

    /** The watched directory, e.g. {@code /local/domain/0/backend/vbd}. */
    public String root() {
        return root;
    }

    /** Starts watching; devices already present are served at once. */
    public void start() throws IOException {
        watch = xs.watch(root, (path, token) -> {
            touched.note(path);
            try {
                service.execute(this::rescan);
            } catch (java.util.concurrent.RejectedExecutionException e) {
                // closing: a late event
            }
        });
        LOG.log(Level.INFO, "serving " + root + " on " + platform.describe());
    }

    /** The devices served now, by {@code <domid>/<devid>}. */
    public Map<String, BlkbackDevice> devices() {
        try {
            return service.submit(() -> Map.copyOf(devices)).get();
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    /** {@link BlkbackDevice#superseded()}, true when it cannot tell (xenstore failing: start afresh). */
    private static boolean superseded(BlkbackDevice d) {
        try {
            return d.superseded();
        } catch (IOException | RuntimeException e) {
            LOG.log(Level.WARNING, "cannot tell whether " + d.backendPath() + " is a new device: " + e.getMessage());
            return true;
        }
    }

    private void rescan() {
        Set<String> recreated = touched.drain();
        Set<String> present = new HashSet<>();
        try {
            for (String domid : xs.directoryIfPresent(root)) {
                for (String devid : xs.directoryIfPresent(root + "/" + domid)) {
                    present.add(domid + "/" + devid);
                }
            }
        } catch (IOException e) {
            LOG.log(Level.WARNING, "cannot list " + root + ": " + e.getMessage());
            return;
        }
        for (String key : List.copyOf(devices.keySet())) {
            boolean gone = !present.contains(key);
            if (gone || BackendDirectoryEvents.covers(recreated, key) && superseded(devices.get(key))) {
                BlkbackDevice d = devices.remove(key);
                try {
                    d.close();
                    LOG.log(Level.INFO, (gone ? "device gone: " : "device directory re-created, restarting: ")
                            + d.backendPath());
                } catch (IOException | RuntimeException e) {
                    LOG.log(Level.WARNING, "closing " + d.backendPath() + ": " + e.getMessage());
                }
            }
        }
        for (String key : present) {
            if (devices.containsKey(key)) {
                continue;
            }
            BlkbackDevice d = new BlkbackDevice(platform, xs, root + "/" + key, config, formats, workers,
                    persistentBudget);
            devices.put(key, d);
            try {
                d.start();
            } catch (IOException | RuntimeException e) {
                LOG.log(Level.WARNING, "starting " + d.backendPath() + ": " + e.getMessage());
            }
        }
    }

    /** Stops watching, closes every device (draining its rings), the pool and the connection. Idempotent. */
    @Override
    public void close() throws IOException {
        if (service.isShutdown()) {
            return;
        }
        try {
            service.submit(() -> {
                if (watch != null) {
                    watch.close();
                }
                for (BlkbackDevice d : devices.values()) {
                    try {
                        d.close();
                    } catch (IOException | RuntimeException e) {
                        LOG.log(Level.WARNING, "closing " + d.backendPath() + ": " + e.getMessage());
                    }
                }
                devices.clear();
                return null;
            }).get();
        } catch (Exception e) {
            throw new IOException("closing blkback service: " + e.getMessage(), e);
        } finally {
            service.shutdown();
            workers.shutdown();
            try {
                workers.awaitTermination(30, TimeUnit.SECONDS);
                service.awaitTermination(30, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            xs.close();
        }
    }
}
