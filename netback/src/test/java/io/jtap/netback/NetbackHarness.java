package io.jtap.netback;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.jtap.tap.SimulatedTap;
import io.jtap.tap.TapDevice;
import io.jtap.testkit.netfront.NetfrontOptions;
import io.jtap.testkit.netfront.SimulatedNetfront;
import io.jtap.xen.sim.SimulatedDomain;
import io.jtap.xen.sim.SimulatedXen;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A netback service on a fresh {@link SimulatedXen} with simulated TAPs and a controllable clock, plus simulated
 * netfronts attached to it. Closing it closes the frontends, the service and the TAPs' host ends, and checks that
 * netback closed every TAP it opened.
 */
final class NetbackHarness implements AutoCloseable {
    static final Duration WAIT = Duration.ofSeconds(20);
    /** Frames each direction of a simulated TAP holds. */
    static final int TAP_CAPACITY = 4096;

    final SimulatedXen xen;
    final AtomicLong clockNs = new AtomicLong(1_000_000_000L);
    final NetbackService service;
    /** The TAPs netback opened, by name: the latest of each name. */
    final Map<String, SimulatedTap> taps = new ConcurrentHashMap<>();
    /** Every TAP netback opened, also those a later one of the same name replaced in {@link #taps}. */
    private final List<SimulatedTap> opened = new CopyOnWriteArrayList<>();
    final List<SimulatedNetfront> fronts = new ArrayList<>();
    private final int openEndsBefore = SimulatedTap.openEnds();

    NetbackHarness(SimulatedXen xen) throws IOException {
        this(xen, NetbackOptions.defaults().withMaxQueues(4).withIdlePollMs(20));
    }

    NetbackHarness(SimulatedXen xen, NetbackOptions options) throws IOException {
        this(xen, options, 1);
    }

    /** With {@code tapQueues > 1} the vifs' TAPs are multi-queue ({@link SimulatedTap#open(String, int, int)}). */
    NetbackHarness(SimulatedXen xen, NetbackOptions options, int tapQueues) throws IOException {
        this.xen = xen;
        TapFactory factory = new TapFactory() {
            @Override
            public TapDevice open(String name) throws IOException {
                return open(name, 1);
            }

            @Override
            public TapDevice open(String name, int maxQueues) throws IOException {
                SimulatedTap t = SimulatedTap.open(name, TAP_CAPACITY, Math.min(maxQueues, tapQueues));
                taps.put(name, t);
                opened.add(t);
                return t;
            }
        };
        this.service = NetbackService.start(xen.platform(SimulatedXen.DOM0), factory, options.withClock(clockNs::get));
    }

    /** A new guest with one vif (devid 0) created by the toolstack; not connected yet. */
    SimulatedNetfront attach(NetfrontOptions options) throws IOException {
        SimulatedDomain guest = xen.createDomain("guest" + (fronts.size() + 1));
        SimulatedNetfront f = SimulatedNetfront.create(xen, guest, 0, options);
        fronts.add(f);
        return f;
    }

    SimulatedNetfront connect(NetfrontOptions options) throws IOException {
        SimulatedNetfront f = attach(options);
        f.connect(WAIT);
        return f;
    }

    /**
     * {@code xl network-detach} and {@code network-attach} of {@code f}'s devid in one transaction, with
     * {@code options} ({@link SimulatedNetfront#recreate}); the new frontend, not connected.
     */
    SimulatedNetfront recreate(SimulatedNetfront f, NetfrontOptions options) throws IOException {
        SimulatedNetfront g = f.recreate(options);
        fronts.add(g);
        return g;
    }

    VifXenbus vif(SimulatedNetfront f) {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (true) {
            var v = service.vif(f.guest().domid(), 0);
            if (v.isPresent()) {
                return v.get();
            }
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("netback never served " + f.backendPath());
            }
            Thread.onSpinWait();
        }
    }

    /** The host end of the TAP netback made for {@code f}. */
    SimulatedTap host(SimulatedNetfront f) {
        String name = vif(f).tapName().orElseThrow();
        return taps.get(name).host();
    }

    /** Reads one frame from the host end, waiting up to {@link #WAIT}. */
    static ByteBuffer readFrame(TapDevice host) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(12 + TapDevice.MAX_FRAME_BYTES);
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (host.read(b) == 0) {
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("no frame on " + host + " within " + WAIT);
            }
            try {
                Thread.sleep(1);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException(e);
            }
        }
        b.flip();
        return b;
    }

    /** Waits until the vif's queue threads went idle {@code times} more times: everything queued was looked at. */
    static void awaitIdle(VifXenbus vif, int times) {
        long start = vif.stats().idleLoops.sum();
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (vif.stats().idleLoops.sum() < start + times) {
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("vif never went idle: " + vif.stats());
            }
            Thread.onSpinWait();
        }
    }

    @Override
    public void close() throws IOException {
        service.close(); // backend-initiated close first: the frontends' grants are unmapped before they end them
        for (SimulatedNetfront f : fronts) {
            f.close();
        }
        for (SimulatedTap t : opened) {
            t.host().close();
        }
        assertEquals(openEndsBefore, SimulatedTap.openEnds(), "netback closed every TAP it opened");
        for (SimulatedNetfront f : fronts) {
            f.assertNoViolations();
        }
    }
}
