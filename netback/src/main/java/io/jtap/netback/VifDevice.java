package io.jtap.netback;

import io.jtap.tap.TapDevice;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The data-path state one connected vif shares among its queues: the TAP (one writer at a time), the frontend's
 * features, the multicast filter, the halt flag of {@code fatal_tx_err}, the counters. Created on connect, dropped on
 * disconnect; the TAP itself belongs to the {@link VifXenbus} and outlives reconnects.
 */
final class VifDevice {
    private static final System.Logger LOG = System.getLogger("io.jtap.netback");
    /** Linux {@code XEN_NETBK_MCAST_MAX}. */
    static final int XEN_NETBK_MCAST_MAX = 64;
    /** How many times a frame is offered to a TAP that reports itself full before it is dropped. */
    private static final int TAP_FULL_RETRIES = 2000;
    /** At most one guest-triggered log line per second per vif. */
    private static final long LOG_INTERVAL_NS = 1_000_000_000L;

    final int domid;
    final int handle;
    final TapDevice tap;
    final FrontendConfig frontend;
    final BackendConfig backend;
    final NetbackOptions options;
    final VifStats stats;
    private final Object tapWriteLock = new Object();
    private final Set<Long> multicast = ConcurrentHashMap.newKeySet();
    private final AtomicLong lastLogNs = new AtomicLong(System.nanoTime() - LOG_INTERVAL_NS);
    private volatile String haltReason;
    private volatile boolean multicastControl;
    private volatile VifQueue[] queues = new VifQueue[0];

    VifDevice(int domid, int handle, TapDevice tap, FrontendConfig frontend, BackendConfig backend,
            NetbackOptions options, VifStats stats) {
        this.domid = domid;
        this.handle = handle;
        this.tap = tap;
        this.frontend = frontend;
        this.backend = backend;
        this.options = options;
        this.stats = stats;
        this.multicastControl = frontend.multicastControl();
    }

    /**
     * Whether rx multicast is filtered by the frontend's list ({@code request-multicast-control}); the frontend may
     * switch it while connected (Linux: {@code xen_mcast_ctrl_changed}, for {@code feature-dynamic-multicast-control}).
     */
    boolean multicastControl() {
        return multicastControl;
    }

    void setMulticastControl(boolean on) {
        multicastControl = on;
    }

    void setQueues(VifQueue[] queues) {
        this.queues = queues;
    }

    /**
     * Whether every queue has a TAP queue of its own (a multi-queue TAP with as many queues attached as the frontend
     * negotiated): then each queue reads and writes its own fd, without the write lock and without handing frames over.
     */
    boolean perQueueTap() {
        int n = queues.length;
        return n > 1 && tap.queueCount() == n;
    }

    /** The TAP queue that queue {@code q} reads: its own with {@link #perQueueTap()}, otherwise the TAP (queue 0). */
    TapDevice tapFor(int q) {
        return perQueueTap() ? tap.queue(q) : tap;
    }

    int queueCount() {
        return queues.length;
    }

    String describe() {
        return "vif" + domid + "." + handle;
    }

    /**
     * Writes one frame (virtio-net header + Ethernet frame) to the TAP; queue threads take turns. A TAP that stays
     * full drops the frame, as a host stack would.
     *
     * @return whether the frame was taken
     */
    boolean writeToTap(int q, ByteBuffer frame) {
        if (perQueueTap()) {
            return write(tap.queue(q), frame); // the queue's own fd: this queue's thread is its only writer
        }
        synchronized (tapWriteLock) {
            return write(tap, frame);
        }
    }

    private boolean write(TapDevice device, ByteBuffer frame) {
        try {
            for (int i = 0; i < TAP_FULL_RETRIES; i++) {
                if (device.write(frame) != 0) {
                    return true;
                }
                Thread.onSpinWait();
                if (i > 100) {
                    Thread.yield();
                }
            }
            return false;
        } catch (IOException | IllegalArgumentException e) {
            warnGuest("TAP refused a frame from the guest: " + e.getMessage());
            return false;
        }
    }

    /**
     * Hands a frame read from the TAP to queue {@code q}'s rx backlog; false when that backlog is full. Does not wake
     * {@code q}: the caller does, once for its batch, with {@link #wakeQueue}.
     */
    boolean dispatchRx(int q, byte[] frame) {
        return queues[q].rx().offerHeld(frame);
    }

    /** Wakes queue {@code q}'s thread after frames were handed to it with {@link #dispatchRx}; thread-safe. */
    void wakeQueue(int q) {
        queues[q].wake();
    }

    /** Linux {@code xenvif_fatal_tx_err}: stops every queue of this vif; the first reason wins. */
    void halt(String reason) {
        synchronized (this) {
            if (haltReason != null) {
                return;
            }
            haltReason = reason;
        }
        LOG.log(System.Logger.Level.ERROR, "netback: " + describe() + " halted, guest domid=" + domid + ": " + reason);
        for (VifQueue q : queues) {
            q.wake();
        }
    }

    boolean halted() {
        return haltReason != null;
    }

    String haltReason() {
        return haltReason;
    }

    /** Linux {@code xenvif_mcast_add}: false when the list is full. */
    boolean addMulticast(long mac) {
        if (multicast.size() >= XEN_NETBK_MCAST_MAX && !multicast.contains(mac)) {
            return false;
        }
        multicast.add(mac);
        return true;
    }

    void removeMulticast(long mac) {
        multicast.remove(mac);
    }

    boolean multicastAllowed(long mac) {
        return multicast.contains(mac);
    }

    /** A rate-limited warning about something the guest did, naming domain and device. */
    void warnGuest(String message) {
        long now = System.nanoTime();
        long last = lastLogNs.get();
        if (now - last >= LOG_INTERVAL_NS && lastLogNs.compareAndSet(last, now)) {
            LOG.log(System.Logger.Level.WARNING, "netback: " + describe() + ", domid=" + domid + ": " + message);
        }
    }
}
