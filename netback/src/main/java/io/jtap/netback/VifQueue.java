package io.jtap.netback;

import io.jtap.ring.BackRing;
import io.jtap.ring.netif.Netif;
import io.jtap.xen.EventChannels;
import io.jtap.xen.GrantMapping;
import io.jtap.xen.GrantTable;
import io.jtap.xen.XenPlatform;
import io.jtap.xen.linux.Syscalls;
import io.jtap.xen.linux.WakeupFd;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * One queue of a connected vif: its tx and rx rings (grant-mapped), its event channel(s), and the thread that serves
 * them in a duty cycle ({@link #doWork()}), sleeping in {@code poll} on the event-channel fd, a {@link WakeupFd} and
 * the TAP fd it reads (its own TAP queue's with a multi-queue TAP, else the TAP's for queue 0). Owns everything it maps
 * and binds; {@link #close()} stops the thread first and then releases them, so no mapping or port outlives the queue.
 */
final class VifQueue implements AutoCloseable {
    private final VifDevice vif;
    private final int index;
    private final GrantTable grants;
    private final EventChannels channels;
    private final WakeupFd wakeup;
    private final List<GrantMapping> mappings = new ArrayList<>();
    private final List<Integer> ports = new ArrayList<>();
    private final int txPort;
    private final int rxPort;
    private final TxPath tx;
    private final RxPath rx;
    private final int[] pending = new int[8];
    private final boolean[] notify = new boolean[1];
    /**
     * Whether the event channel fd may hold delivered events: at start, after poll reported it readable, and while a
     * read filled {@link #pending}. Reading it only then saves a system call per busy round.
     */
    private boolean eventsReady = true;
    private final int[] pollWithTap = new int[3];
    private final int[] pollWithoutTap = new int[2];
    private volatile boolean running = true;
    private Thread thread;

    /** Maps the rings and binds the channels of {@code rings}; on failure releases what it took and throws. */
    VifQueue(VifDevice vif, int index, FrontendConfig.QueueRings rings, XenPlatform platform) throws IOException {
        this.vif = vif;
        this.index = index;
        GrantTable g = null;
        EventChannels c = null;
        WakeupFd w = null;
        TxPath t = null;
        RxPath r = null;
        int txp;
        int rxp;
        try {
            g = platform.openGrantTable();
            c = platform.openEventChannels();
            w = new WakeupFd();
            GrantMapping txRing = g.map(vif.domid, new int[] {rings.txRingRef()}, true);
            mappings.add(txRing);
            GrantMapping rxRing = g.map(vif.domid, new int[] {rings.rxRingRef()}, true);
            mappings.add(rxRing);
            BackRing txBack = BackRing.attach(txRing.buffer(), 0, Netif.TX_ENTRY_LENGTH);
            BackRing rxBack = BackRing.attach(rxRing.buffer(), 0, Netif.RX_ENTRY_LENGTH);
            txp = c.bindInterdomain(vif.domid, rings.txEventChannel());
            ports.add(txp);
            if (rings.split()) {
                rxp = c.bindInterdomain(vif.domid, rings.rxEventChannel());
                ports.add(rxp);
            } else {
                rxp = txp;
            }
            CreditLimiter limiter = vif.backend.creditBytes() == Long.MAX_VALUE ? CreditLimiter.unlimited()
                    : new CreditLimiter(vif.backend.creditBytes(), vif.backend.creditUsec(),
                            vif.options.clockNs().getAsLong());
            t = new TxPath(vif, index, txBack, g, limiter);
            r = new RxPath(vif, index, rxBack, g);
        } catch (IOException | RuntimeException e) {
            release(g, c, w, t, r, e);
            throw e;
        }
        this.grants = g;
        this.channels = c;
        this.wakeup = w;
        this.tx = t;
        this.rx = r;
        this.txPort = txp;
        this.rxPort = rxp;
        pollWithTap[0] = pollWithoutTap[0] = c.fd();
        pollWithTap[1] = pollWithoutTap[1] = w.fd();
    }

    RxPath rx() {
        return rx;
    }

    void start() {
        thread = new Thread(this::run, "netback-" + vif.describe() + "-q" + index);
        thread.setDaemon(true);
        thread.start();
    }

    /** Wakes the thread (a frame was handed over, the vif halted, or it must stop). Thread-safe. */
    void wake() {
        wakeup.signal();
    }

    private void run() {
        try {
            while (running && !vif.halted()) {
                if (doWork() == 0) {
                    idle();
                }
            }
        } catch (GuestFatalException e) {
            vif.halt(e.getMessage() + ", queue=" + index);
        } catch (IOException | RuntimeException e) {
            if (running) {
                vif.halt("queue failed: queue=" + index + ", " + e);
            }
        }
    }

    /**
     * One round: take events, serve the tx ring, then the rx side.
     *
     * @return how much was done; 0 when idle
     */
    int doWork() throws IOException, GuestFatalException {
        if (eventsReady) {
            // Each delivered port stays masked until unmasked; while the rings keep this thread busy, events are
            // left queued (the rings are read anyway) and poll reports them before the thread sleeps.
            int n = channels.pending(pending);
            for (int i = 0; i < n; i++) {
                channels.unmask(pending[i]);
            }
            eventsReady = n == pending.length;
        }
        notify[0] = false;
        int work = tx.doWork(notify);
        if (notify[0]) {
            channels.notify(txPort);
        }
        notify[0] = false;
        work += rx.doWork(notify);
        if (notify[0]) {
            channels.notify(rxPort);
        }
        return work;
    }

    private void idle() throws IOException {
        vif.stats.idleLoops.increment();
        if (tx.finalCheck() || rx.hasWork()) {
            return;
        }
        long timeoutMs = vif.options.idlePollMs();
        if (tx.rateLimited()) {
            long waitNs = tx.retryAtNs() - vif.options.clockNs().getAsLong();
            timeoutMs = Math.max(1, Math.min(timeoutMs, waitNs / 1_000_000 + 1));
        }
        int[] fds;
        if (rx.wantsTap()) {
            fds = pollWithTap;
            fds[2] = vif.tapFor(index).fd();
        } else {
            fds = pollWithoutTap;
        }
        long ready = Syscalls.pollIn(fds, (int) timeoutMs);
        if ((ready & 1) != 0) {
            eventsReady = true;
        }
        if ((ready & 2) != 0) {
            wakeup.drain();
        }
    }

    /** Stops the thread, then unbinds the ports and unmaps the rings. Idempotent. */
    @Override
    public void close() throws IOException {
        running = false;
        wakeup.signal();
        if (thread != null && thread != Thread.currentThread()) {
            try {
                thread.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted stopping " + vif.describe() + " queue " + index, e);
            }
        }
        release(grants, channels, wakeup, tx, rx, null);
    }

    private void release(GrantTable g, EventChannels c, WakeupFd w, TxPath t, RxPath r, Throwable primary)
            throws IOException {
        IOException failure = null;
        if (t != null) {
            t.close();
        }
        if (r != null) {
            r.close();
        }
        if (c != null) {
            for (int port : ports) {
                try {
                    c.unbind(port);
                } catch (IOException e) {
                    failure = add(failure, e);
                }
            }
            ports.clear();
            try {
                c.close();
            } catch (IOException e) {
                failure = add(failure, e);
            }
        }
        for (GrantMapping m : mappings) {
            try {
                m.close();
            } catch (IOException e) {
                failure = add(failure, e);
            }
        }
        mappings.clear();
        if (g != null) {
            try {
                g.close();
            } catch (IOException e) {
                failure = add(failure, e);
            }
        }
        if (w != null) {
            try {
                w.close();
            } catch (IOException e) {
                failure = add(failure, e);
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

    private static IOException add(IOException first, IOException next) {
        if (first == null) {
            return next;
        }
        first.addSuppressed(next);
        return first;
    }
}
