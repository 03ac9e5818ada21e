package io.jtap.blkback;

import io.jtap.aio.BlockIoEngine;
import io.jtap.aio.BlockIoEngines;
import io.jtap.formats.Image;
import io.jtap.formats.ImageFormat;
import io.jtap.formats.ImageFormats;
import io.jtap.formats.OpenOptions;
import io.jtap.formats.qcow2.Qcow2Image;
import io.jtap.ring.blkif.Blkif;
import io.jtap.xen.BackendClaim;
import io.jtap.xen.BadXenStoreValueException;
import io.jtap.xen.EventChannels;
import io.jtap.xen.GrantMapping;
import io.jtap.xen.GrantTable;
import io.jtap.xen.XenPlatform;
import io.jtap.xen.XenStore;
import io.jtap.xen.XenbusState;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.lang.System.Logger;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

/**
 * The control path of one virtual block device: the backend side of the xenbus state machine, driven by the
 * device's xenstore nodes. Linux: {@code xen-blkback/xenbus.c} ({@code xen_blkbk_probe}, {@code frontend_changed},
 * {@code connect_ring}, {@code connect}); the data path is {@link BlkifQueue}.
 *
 * <p>Life cycle: {@link #start()} claims the backend directory ({@link BackendClaim#INSTANCE_NODE}), reads
 * {@code params}, {@code mode}, {@code device-type}, {@code frontend} and {@code frontend-id} from it, opens the image
 * (format from {@code params}, never probed), advertises the features and goes to InitWait. When the frontend is
 * Initialised (or Connected) it reads the frontend's ring nodes, maps the rings, binds the channels, writes the disk's
 * geometry, goes Connected and then starts one {@link BlkifQueue} per queue. Frontend Closing/Closed (or a vanished
 * frontend) drains and tears the rings down; Initialising after Closed goes back to InitWait for a reconnect.
 * {@code online} = 0 drains and closes, for good.
 * A bad xenstore value or a ring the frontend broke writes an {@code error} node naming it and moves this device,
 * and only it, to Closing.
 *
 * <p>The directory is this device's only while its {@link BackendClaim#INSTANCE_NODE} names it: every write checks
 * that in the same transaction, and a device that finds the directory removed, or removed and written afresh by a
 * toolstack (a detach and an attach of the same devid, even in one transaction), writes nothing more, never connects
 * again and is {@link #superseded()}: the new directory's frontend is served by a new device with the new image,
 * whatever order the service and this device see the watch events in (they handle them on different threads).
 *
 * <p>Threading: every state change runs on the device's own control thread; watch events only enqueue work.
 * Ownership: the device owns its image, watches and queues; {@link #close()} releases them (the xenstore
 * connection is borrowed).
 */
public final class BlkbackDevice implements AutoCloseable {
    private static final Logger LOG = System.getLogger("io.jtap.blkback");
    /** How long a disconnect waits for the rings to drain before it reports them as stuck. */
    private static final long DRAIN_TIMEOUT_S = 60;

    private final XenPlatform platform;
    private final XenStore xs;
    private final String backendPath;
    private final String name;
    private final BlkbackConfig config;
    private final ImageFormats formats;
    private final Executor workers;
    private final PersistentGrantBudget persistentBudget;
    private final ExecutorService control;
    /**
     * This device's hold on its directory ({@link BackendClaim#INSTANCE_NODE}): taken before the configuration is
     * read; {@link #publish} writes only while it still names this device.
     */
    private final BackendClaim claim;
    /**
     * Reads of the frontend's state that failed in a row. A failed read (an xenstore error, not a missing node) says
     * nothing about the frontend, and the frontend may be waiting for us, so the read is retried a few times before
     * the device gives up with an error; a missing node is a frontend that went away. Control thread only.
     */
    private int frontendReadFailures;
    static final int FRONTEND_READ_RETRIES = 5;
    static final long FRONTEND_READ_RETRY_MS = 200;
    private final List<BlkifQueue> queues = new ArrayList<>();
    private final List<XenStore.Watch> watches = new ArrayList<>();

    private RateLimitedLog log;
    private String frontendPath;
    private int frontendId = -1;
    private DeviceParams params;
    private volatile Image image;
    private volatile long sectors;
    private volatile XenbusState state = XenbusState.Unknown;
    private volatile String lastError;
    private volatile boolean online = true;
    private boolean closed;

    /**
     * A device with a persistent-grant budget of its own ({@link BlkbackConfig#maxPersistentGrantsTotal()} pages).
     *
     * @param xs          the daemon's xenstore connection (borrowed)
     * @param backendPath absolute backend directory, e.g. {@code /local/domain/0/backend/vbd/5/51712}
     * @param workers     the bounded pool that runs image IO (borrowed)
     */
    public BlkbackDevice(XenPlatform platform, XenStore xs, String backendPath, BlkbackConfig config,
                         ImageFormats formats, Executor workers) {
        this(platform, xs, backendPath, config, formats, workers,
                new PersistentGrantBudget(config.maxPersistentGrantsTotal()));
    }

    /** @param persistentBudget the pages its rings may keep mapped persistently, shared with other devices */
    BlkbackDevice(XenPlatform platform, XenStore xs, String backendPath, BlkbackConfig config, ImageFormats formats,
                  Executor workers, PersistentGrantBudget persistentBudget) {
        this.persistentBudget = persistentBudget;
        this.platform = platform;
        this.xs = xs;
        this.backendPath = backendPath;
        this.claim = new BackendClaim(backendPath);
        String[] parts = backendPath.split("/");
        this.name = parts.length >= 3 ? parts[parts.length - 3] + "/" + parts[parts.length - 2] + "/"
                + parts[parts.length - 1] : backendPath;
        this.config = config;
        this.formats = formats;
        this.workers = workers;
        this.log = new RateLimitedLog(-1, name);
        this.control = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "jtap-blkback-" + name.replace('/', '-'));
            t.setDaemon(true);
            return t;
        });
    }

    /** Probes the device (see the class comment) on the control thread and waits for that to finish. */
    public void start() throws IOException {
        runOnControl(this::probe);
    }

    /**
     * Whether the directory at this device's path now belongs to a new device (the service then restarts it): this
     * device went offline, which is final for it; it never claimed the directory (it was gone when the device
     * started, or xenstore failed); or the directory's {@link BackendClaim#INSTANCE_NODE} no longer names this device
     * (a toolstack removed the directory and wrote it afresh, as for a detach and an attach in one transaction, whether
     * or not this device has noticed yet): {@link BackendClaim#superseded}. A creation event that arrives after the
     * device claimed its directory is not a new device. For the service's thread, between starts: {@link #start()}
     * claims before it returns.
     */
    boolean superseded() throws IOException {
        return !online || claim.superseded(xs);
    }

    /** The state this backend is in: the one it last published, or Closing or Closed once its directory is lost. */
    public XenbusState state() {
        return state;
    }

    /** The last error written to the {@code error} node, or null. */
    public String lastError() {
        return lastError;
    }

    public String backendPath() {
        return backendPath;
    }

    /** The open image, or null before start or after a failed start. */
    public Image image() {
        return image;
    }

    /** Connected queues (0 when not connected). */
    public int queueCount() {
        return runOnControlQuietly(queues::size);
    }

    /** Pages mapped persistently across the queues now. */
    public int persistentGrants() {
        return runOnControlQuietly(() -> queues.stream().mapToInt(BlkifQueue::persistentGrants).sum());
    }

    /** Reads the current connection's queues served through io_uring. */
    public long engineReads() {
        return runOnControlQuietly(() -> queues.stream().mapToLong(BlkifQueue::engineReads).sum());
    }

    /** Writes whose data the current connection's queues sent through io_uring. */
    public long engineWrites() {
        return runOnControlQuietly(() -> queues.stream().mapToLong(BlkifQueue::engineWrites).sum());
    }

    /** Vectored IOs the current connection's queues submitted to io_uring (one per contiguous host extent). */
    public long engineIos() {
        return runOnControlQuietly(() -> queues.stream().mapToLong(BlkifQueue::engineIos).sum());
    }

    /** Reads sent to a worker because their mapping needed metadata not in memory, summed over queues. */
    public long mapsDeferred() {
        return runOnControlQuietly(() -> queues.stream().mapToLong(BlkifQueue::mapsDeferred).sum());
    }

    /** Writes the current connection's queues mapped on their ring threads, without a worker, summed over queues. */
    public long writesMappedOnRing() {
        return runOnControlQuietly(() -> queues.stream().mapToLong(BlkifQueue::writesMappedOnRing).sum());
    }

    /** Times the rings published responses (moved rsp_prod), summed over queues. */
    public long responsePushes() {
        return runOnControlQuietly(() -> queues.stream().mapToLong(BlkifQueue::responsePushes).sum());
    }

    /** Flushes and discards the current connection's queues sent to io_uring (raw images). */
    public long engineFences() {
        return runOnControlQuietly(() -> queues.stream().mapToLong(BlkifQueue::engineFences).sum());
    }

    /** Responses sent by the current connection's queues. */
    public long requestsServed() {
        return runOnControlQuietly(() -> queues.stream().mapToLong(BlkifQueue::requestsServed).sum());
    }

    /**
     * Resizes the image and tells a connected frontend: rewrites {@code sectors} and writes the unchanged
     * {@code state} in the same transaction, which fires the frontend's watch (Linux: {@code xen_vbd_resize}).
     */
    public void resize(long newSizeBytes) throws IOException {
        runOnControl(() -> {
            image.resize(newSizeBytes);
            long newSectors = image.size() >> Blkif.SECTOR_SHIFT;
            if (newSectors == sectors) {
                return;
            }
            sectors = newSectors;
            if (state == XenbusState.Connected) {
                publish(tx -> {
                    tx.write(backendPath + "/sectors", Long.toString(newSectors));
                    tx.write(backendPath + "/state", state.toXenStore());
                });
            }
            LOG.log(Level.INFO, "device=" + name + ": resized, sectors=" + newSectors);
        });
    }

    // --- control thread ---------------------------------------------------------------------------------------

    private void probe() throws IOException {
        if (!claim.claim(xs)) {
            LOG.log(Level.INFO, "device=" + name + ": directory gone before the device started");
            return;
        }
        try {
            frontendPath = required("frontend");
            frontendId = (int) FrontendRings.unsigned(xs, backendPath + "/frontend-id", 1, 0x7fef, -1);
            log = new RateLimitedLog(frontendId, name);
            params = DeviceParams.parse(backendPath, read("params").orElse(null), read("mode").orElse(null),
                    read("device-type").orElse(null));
            Optional<ImageFormat> format = formats.find(params.format());
            if (format.isEmpty()) {
                throw new BadXenStoreValueException(backendPath + "/params", read("params").orElse(null),
                        "unknown image format, known=" + formats.names());
            }
            image = format.get().open(params.path(), OpenOptions.defaults().withReadOnly(params.readOnly()));
            sectors = image.size() >> Blkif.SECTOR_SHIFT;
        } catch (IOException | RuntimeException e) {
            fail("cannot configure device: " + e.getMessage());
            // Still let the toolstack take it offline (jtap detach, xl block-detach wait for Closed).
            watches.add(xs.watch(backendPath + "/online", (path, token) -> schedule(this::onlineChanged)));
            return;
        }
        boolean discard = discardEnabled();
        boolean published = publish(tx -> {
            tx.write(backendPath + "/feature-flush-cache", "1");
            tx.write(backendPath + "/feature-barrier", "1");
            tx.write(backendPath + "/feature-discard", discard ? "1" : "0");
            if (discard) {
                tx.write(backendPath + "/discard-granularity", Integer.toString(discardGranularity()));
                tx.write(backendPath + "/discard-alignment", "0");
                tx.write(backendPath + "/discard-secure", "1");
            }
            tx.write(backendPath + "/feature-persistent", config.grantMode() == GrantMode.PERSISTENT ? "1" : "0");
            tx.write(backendPath + "/feature-max-indirect-segments", Integer.toString(config.maxIndirectSegments()));
            tx.write(backendPath + "/max-ring-page-order", Integer.toString(config.maxRingPageOrder()));
            tx.write(backendPath + "/multi-queue-max-queues", Integer.toString(config.maxQueues()));
            tx.write(backendPath + "/state", XenbusState.InitWait.toXenStore());
        });
        if (!published) {
            return;
        }
        state = XenbusState.InitWait;
        watches.add(xs.watch(frontendPath + "/state", (path, token) -> schedule(this::frontendChanged)));
        watches.add(xs.watch(backendPath + "/online", (path, token) -> schedule(this::onlineChanged)));
    }

    /**
     * The advertised {@code discard-granularity}: the image's allocation unit where it has one (a qcow2 cluster; a
     * discard of less than a cluster cannot give space back), else the configured value.
     */
    int discardGranularity() {
        if (image instanceof Qcow2Image q) {
            return Math.max(q.clusterSize(), config.discardGranularity());
        }
        return config.discardGranularity();
    }

    private boolean discardEnabled() {
        return config.discard() && params != null && !params.readOnly();
    }

    private void frontendChanged() {
        if (closed || image == null || !online || claim.lost()) {
            // Offline or the directory lost: the device drained and closed for good; a re-created directory (and the
            // frontend that the toolstack created with it) is a new device's.
            return;
        }
        XenbusState fs;
        try {
            // A missing node means the frontend is gone (the toolstack removed its directory): Unknown, and the
            // device closes. A failed read says nothing about the frontend: see frontendReadFailures.
            fs = XenbusState.parse(xs.readString(frontendPath + "/state").orElse(null));
        } catch (IOException e) {
            if (++frontendReadFailures <= FRONTEND_READ_RETRIES) {
                LOG.log(Level.WARNING, "device=" + name + ": cannot read the frontend's state, retrying, state="
                        + state + ", attempt=" + frontendReadFailures + ": " + e.getMessage());
                CompletableFuture.delayedExecutor(FRONTEND_READ_RETRY_MS, TimeUnit.MILLISECONDS)
                        .execute(() -> schedule(this::frontendChanged));
            } else {
                fail("cannot read the frontend's state: path=" + frontendPath + "/state, attempts="
                        + frontendReadFailures + ", error=" + e.getMessage());
            }
            return;
        }
        frontendReadFailures = 0;
        if (fs != state && (fs == XenbusState.Closing || fs == XenbusState.Closed || fs == XenbusState.Unknown)) {
            LOG.log(Level.INFO, "device=" + name + ": frontend state=" + fs + ", closing from state=" + state);
        }
        try {
            switch (fs) {
                case Initialising -> {
                    if (state == XenbusState.Closed || state == XenbusState.Connected) {
                        disconnect();
                        switchState(XenbusState.InitWait);
                    }
                }
                case Initialised, Connected -> {
                    if (state == XenbusState.InitWait && online) {
                        connect();
                    }
                }
                case Closing -> {
                    disconnect();
                    switchState(XenbusState.Closing);
                }
                case Closed, Unknown -> {
                    disconnect();
                    switchState(XenbusState.Closed);
                }
                default -> {
                    // InitWait, Reconfiguring, Reconfigured: nothing for a block backend to do
                }
            }
        } catch (IOException | RuntimeException e) {
            fail("frontend state change failed: frontend_state=" + fs + ", error=" + e.getMessage());
        }
    }

    /**
     * {@code online} = 0 (the toolstack detaching the device): Closing, drain and release the rings, Closed. Taking a
     * device offline is final for this object: it no longer follows the frontend, and the toolstack removes the
     * directory next (a directory re-created at the same path is served by a new device, see BlkbackService). A device
     * whose configuration failed (no image) goes Closed too, so that a detach need not time out.
     */
    private void onlineChanged() {
        if (closed || !online || claim.lost()) {
            return;
        }
        try {
            Optional<String> v = read("online");
            if (v.isPresent() && v.get().trim().equals("0")) {
                online = false;
                if (state != XenbusState.Closed) {
                    switchState(XenbusState.Closing);
                }
                disconnect();
                switchState(XenbusState.Closed);
                LOG.log(Level.INFO, "device=" + name + ": offline, closed");
            }
        } catch (IOException | RuntimeException e) {
            fail("online change failed: error=" + e.getMessage());
        }
    }

    private void connect() throws IOException {
        FrontendRings rings;
        try {
            rings = FrontendRings.read(xs, frontendPath, config.maxRingPageOrder(), config.maxQueues());
        } catch (BadXenStoreValueException e) {
            fail("frontend published bad ring nodes: " + e.getMessage());
            return;
        }
        GrantMode mode = config.grantMode();
        if (mode == GrantMode.PERSISTENT && !rings.persistent()) {
            mode = GrantMode.MAP;
        }
        try {
            for (int q = 0; q < rings.queues().size(); q++) {
                queues.add(openQueue(q, rings, mode));
            }
        } catch (IOException | RuntimeException e) {
            closeQueues();
            fail("cannot connect rings: " + e.getMessage());
            return;
        }
        int info = (params.readOnly() ? Blkif.VDISK_READONLY : 0) | (params.cdrom() ? Blkif.VDISK_CDROM : 0);
        long s = sectors;
        boolean published;
        try {
            published = publish(tx -> {
                tx.write(backendPath + "/sectors", Long.toString(s));
                tx.write(backendPath + "/info", Integer.toString(info));
                tx.write(backendPath + "/sector-size", Integer.toString(Blkif.SECTOR_SIZE));
                tx.write(backendPath + "/physical-sector-size", Integer.toString(config.physicalSectorSize()));
                tx.write(backendPath + "/state", XenbusState.Connected.toXenStore());
            });
        } catch (IOException | RuntimeException e) {
            closeQueues();
            throw e;
        }
        if (!published) {
            // The directory is no longer this device's, and the rings read may be a new device's frontend's: they are
            // released unserved.
            closeQueues();
            state = XenbusState.Closed;
            return;
        }
        // Served only now, as Linux starts its ring threads after connect(): a ring is never served for a directory
        // this device lost (Connected and the directory check commit together).
        for (BlkifQueue queue : queues) {
            queue.start();
        }
        state = XenbusState.Connected;
        LOG.log(Level.INFO, "device=" + name + ": connected, domid=" + frontendId + ", queues=" + queues.size()
                + ", ring-page-order=" + rings.order() + ", abi=" + rings.abi() + ", grants=" + mode + ", reads="
                + config.ioEngine());
    }

    private BlkifQueue openQueue(int q, FrontendRings rings, GrantMode mode) throws IOException {
        FrontendRings.Queue fq = rings.queues().get(q);
        GrantTable grants = platform.openGrantTable();
        GrantMapping ring = null;
        EventChannels evtchn = null;
        BlockIoEngine engine = null;
        int port = -1;
        try {
            if (config.ioEngine().equals(BlkbackConfig.IO_ENGINE_IO_URING)) {
                engine = BlockIoEngines.open(BlockIoEngines.IO_URING, BlockIoEngines.DEFAULT_QUEUE_DEPTH,
                        Math.max(BlockIoEngines.DEFAULT_MAX_SEGMENTS, config.maxIndirectSegments()));
                engine.offloadReadsFrom(config.offloadReadBytes());
            }
            ring = grants.map(frontendId, fq.refs(), true);
            evtchn = platform.openEventChannels();
            port = evtchn.bindInterdomain(frontendId, fq.remotePort());
            return new BlkifQueue(queueOwner, name, frontendId, q, rings.abi(), rings.order(), ring, grants, evtchn,
                    port, mode, config, persistentBudget, config.maxIndirectSegments(), workers, log, engine);
        } catch (IOException | RuntimeException e) {
            if (engine != null) {
                engine.close();
            }
            if (evtchn != null) {
                evtchn.close();
            }
            if (ring != null) {
                ring.close();
            }
            grants.close();
            throw e;
        }
    }

    private final BlkifQueue.Owner queueOwner = new BlkifQueue.Owner() {
        @Override
        public Image image() {
            return image;
        }

        @Override
        public long sectors() {
            return sectors;
        }

        @Override
        public boolean readOnly() {
            return params.readOnly();
        }

        @Override
        public boolean discardEnabled() {
            return BlkbackDevice.this.discardEnabled();
        }

        @Override
        public void ringHalted(BlkifQueue queue, String reason) {
            schedule(() -> {
                if (state == XenbusState.Connected) {
                    fail("ring " + queue.index() + " halted: " + reason);
                }
            });
        }
    };

    /** Stops every queue, draining requests in flight, and releases the rings. Idempotent. */
    private void disconnect() {
        closeQueues();
    }

    private void closeQueues() {
        for (BlkifQueue q : queues) {
            q.requestStop();
        }
        for (BlkifQueue q : queues) {
            try {
                if (!q.awaitStopped(DRAIN_TIMEOUT_S, TimeUnit.SECONDS)) {
                    LOG.log(Level.ERROR, "device=" + name + ": ring " + q.index() + " did not drain in "
                            + DRAIN_TIMEOUT_S + " s");
                }
                q.close();
            } catch (IOException e) {
                LOG.log(Level.WARNING, "device=" + name + ": closing ring " + q.index() + ": " + e.getMessage());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        queues.clear();
    }

    /**
     * Publishes {@code s} (Linux: {@code xenbus_switch_state}). Nothing is written once the directory is not this
     * device's ({@link #publish}); the device then goes Closing or Closed all the same (its rings are down), but
     * never InitWait or Connected: it does not offer itself to a directory it lost, it is Closed.
     */
    private void switchState(XenbusState s) throws IOException {
        if (state == s) {
            return;
        }
        boolean published = publish(tx -> tx.write(backendPath + "/state", s.toXenStore()));
        state = published || s == XenbusState.Closing ? s : XenbusState.Closed;
    }

    /**
     * Runs {@code writes} in one transaction if the directory is still this device's ({@link BackendClaim#publish}),
     * else writes nothing and the directory is lost: a write below a removed directory would re-create it (XS_WRITE
     * makes missing ancestors), and one into a directory written afresh would be taken for the new device's (an
     * InitWait there used to make the new frontend connect to this device and its old image). Linux's
     * {@code xenbus_switch_state} checks that the directory exists.
     *
     * @return whether the directory was this device's and the writes were made
     */
    private boolean publish(BackendClaim.Writes writes) throws IOException {
        return claim.publish(xs, writes);
    }

    /** Reports an error in the {@code error} node and moves the device to Closing (Linux: xenbus_dev_fatal). */
    private void fail(String message) {
        lastError = message;
        log.warn(message);
        try {
            String text = message.length() > 1024 ? message.substring(0, 1024) : message;
            publish(tx -> tx.write(backendPath + "/error", text));
            switchState(XenbusState.Closing);
        } catch (IOException | RuntimeException e) {
            LOG.log(Level.WARNING, "device=" + name + ": cannot report error: " + e.getMessage());
        }
    }

    /** Runs {@code task} on the control thread, unless the device is closed (late watch events are dropped). */
    private void schedule(Runnable task) {
        try {
            control.execute(task);
        } catch (java.util.concurrent.RejectedExecutionException e) {
            // closed: nothing left to do for this device
        }
    }

    private String required(String key) throws IOException {
        Optional<String> v = read(key);
        if (v.isEmpty() || v.get().isBlank()) {
            throw new BadXenStoreValueException(backendPath + "/" + key, v.orElse(null), "required");
        }
        return v.get();
    }

    private Optional<String> read(String key) throws IOException {
        return xs.readString(backendPath + "/" + key);
    }

    @FunctionalInterface
    private interface ControlTask {
        void run() throws IOException;
    }

    private void runOnControl(ControlTask task) throws IOException {
        try {
            control.submit(() -> {
                task.run();
                return null;
            }).get();
        } catch (ExecutionException e) {
            if (e.getCause() instanceof IOException io) {
                throw io;
            }
            throw new IOException("device=" + name + ": " + e.getCause(), e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted: device=" + name, e);
        }
    }

    private <T> T runOnControlQuietly(java.util.concurrent.Callable<T> task) {
        try {
            return control.submit(task).get();
        } catch (ExecutionException | InterruptedException e) {
            throw new IllegalStateException("device=" + name + ": " + e, e);
        }
    }

    /**
     * Stops watching, drains and releases the rings, and closes the image. Does not write the device's state (its
     * directory is usually gone by then). Idempotent.
     */
    @Override
    public void close() throws IOException {
        if (control.isShutdown()) {
            return;
        }
        try {
            runOnControl(() -> {
                closed = true;
                for (XenStore.Watch w : watches) {
                    w.close();
                }
                watches.clear();
                disconnect();
                if (image != null) {
                    image.close();
                    image = null;
                }
            });
        } finally {
            control.shutdown();
            try {
                control.awaitTermination(DRAIN_TIMEOUT_S, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
