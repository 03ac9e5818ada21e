package io.jtap.netback;

import io.jtap.xen.XenbusState;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.tap.SimulatedTap;
import io.jtap.tap.TapDevice;
import io.jtap.testkit.netfront.NetfrontOptions;
import io.jtap.testkit.netfront.SimulatedNetfront;
import io.jtap.testkit.netfront.TxPacket;
import io.jtap.xen.XenStore;
import io.jtap.xen.sim.SimulatedDomain;
import io.jtap.xen.sim.SimulatedXen;
import io.jtap.xen.sim.SimulatedXenExtension;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/** The control path against {@link SimulatedNetfront}: xenbus states, features, bad values, reconnect, close. */
@ExtendWith(SimulatedXenExtension.class)
@Timeout(60)
class VifXenbusTest {
    private static final byte[] GUEST_MAC = TestFrames.mac(0x00163e000001L);
    private static final byte[] HOST_MAC = TestFrames.mac(0x02aabbccdd01L);

    @Test
    void tapExistsAtInitWaitAndConnectedWaitsForHotplugStatus(SimulatedXen xen) throws Exception {
        try (NetbackHarness h = new NetbackHarness(xen)) {
            SimulatedNetfront f = h.attach(NetfrontOptions.linuxDefaults().withHotplug(false));
            f.awaitBackendState(NetbackHarness.WAIT, 2);
            VifXenbus vif = h.vif(f);
            assertEquals("vif" + f.guest().domid() + ".0", vif.tapName().orElseThrow(), "TAP created before InitWait");
            for (String key : List.of("feature-rx-copy", "feature-sg", "feature-gso-tcpv4", "feature-gso-tcpv6",
                    "feature-ipv6-csum-offload", "feature-rx-notify", "feature-split-event-channels",
                    "feature-dynamic-multicast-control")) {
                assertEquals("1", f.readBackend(key).orElse(null), key);
            }
            assertEquals("4", f.readBackend("multi-queue-max-queues").orElseThrow());

            f.connect(NetbackHarness.WAIT, false);
            while (vif.queueCount() == 0) {
                Thread.onSpinWait();
            }
            NetbackHarness.awaitIdle(vif, 2);
            assertEquals(XenbusState.InitWait, vif.state(), "no Connected before hotplug-status=connected");
            assertEquals(2, f.backendState());
            f.playHotplug();
            f.awaitBackendState(NetbackHarness.WAIT, 4);
            assertEquals(XenbusState.Connected, vif.state());
        }
    }

    static Stream<Arguments> featureSets() {
        NetfrontOptions all = NetfrontOptions.linuxDefaults();
        NetfrontOptions none = NetfrontOptions.minimal();
        return Stream.of(
                Arguments.of("linux defaults", all, TapDevice.TUN_F_CSUM | TapDevice.TUN_F_TSO4 | TapDevice.TUN_F_TSO6),
                Arguments.of("minimal", none, 0),
                Arguments.of("sg off: no GSO to the guest", all.withSg(false), TapDevice.TUN_F_CSUM),
                Arguments.of("tcpv4 only", all.withGso(true, false), TapDevice.TUN_F_CSUM | TapDevice.TUN_F_TSO4),
                Arguments.of("tcpv6 only", all.withGso(false, true), TapDevice.TUN_F_CSUM | TapDevice.TUN_F_TSO6),
                Arguments.of("ipv4 csum only", all.withCsumOffload(true, false).withGso(false, false),
                        TapDevice.TUN_F_CSUM),
                Arguments.of("no csum offload", all.withCsumOffload(false, false).withGso(false, false), 0),
                Arguments.of("shared channel", all.withSplitChannels(false),
                        TapDevice.TUN_F_CSUM | TapDevice.TUN_F_TSO4 | TapDevice.TUN_F_TSO6),
                Arguments.of("3 queues", all.withQueues(3),
                        TapDevice.TUN_F_CSUM | TapDevice.TUN_F_TSO4 | TapDevice.TUN_F_TSO6),
                Arguments.of("8 queues wanted, 4 offered", all.withQueues(8).withSplitChannels(false),
                        TapDevice.TUN_F_CSUM | TapDevice.TUN_F_TSO4 | TapDevice.TUN_F_TSO6));
    }

    /** Each feature on and off: negotiated as netif.h says, the TAP offers only what the guest takes, traffic flows. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("featureSets")
    void handshakeWithFeatureSet(String name, NetfrontOptions options, int expectedOffload, SimulatedXen xen)
            throws Exception {
        try (NetbackHarness h = new NetbackHarness(xen)) {
            SimulatedNetfront f = h.connect(options);
            VifXenbus vif = h.vif(f);
            assertEquals(XenbusState.Connected, vif.state());
            assertEquals(Math.min(options.queues(), 4), vif.queueCount());
            assertEquals(Math.min(options.queues(), 4), f.queueCount());
            assertEquals(options.splitChannels(), f.splitChannels());
            assertEquals(expectedOffload, h.taps.get(vif.tapName().orElseThrow()).offload(), name);
            // One packet each way on queue 0.
            byte[] frame = TestFrames.udp4(HOST_MAC, GUEST_MAC, TestFrames.ip4(10, 0, 0, 2),
                    TestFrames.ip4(10, 0, 0, 1), 1000, 2000, TestFrames.payload(100, 1), TestFrames.Checksum.FULL);
            f.send(0, frame, TxPacket.plain());
            ByteBuffer got = NetbackHarness.readFrame(h.host(f));
            assertEquals(12 + frame.length, got.remaining());
            f.awaitTx(0, 1, NetbackHarness.WAIT);
        }
    }

    @Test
    void vifnameMacAndHandleAreHonoured(SimulatedXen xen) throws Exception {
        try (NetbackHarness h = new NetbackHarness(xen)) {
            SimulatedNetfront f = h.connect(NetfrontOptions.linuxDefaults().withVifname("guestnet0")
                    .withMac("00:16:3e:12:34:56"));
            VifXenbus vif = h.vif(f);
            assertEquals("guestnet0", vif.tapName().orElseThrow());
            assertTrue(h.taps.containsKey("guestnet0"));
        }
    }

    static Stream<Arguments> badFrontendValues() {
        return Stream.of(
                Arguments.of("tx-ring-ref", "abc"),
                Arguments.of("rx-ring-ref", "-5"),
                Arguments.of("event-channel-tx", "99999999999"),
                Arguments.of("multi-queue-num-queues", "99"),
                Arguments.of("request-rx-copy", "0"),
                Arguments.of("feature-rx-notify", "0"),
                Arguments.of("feature-sg", "yes"));
    }

    /** A bad frontend value fails that vif only, with an error naming the key and the value; a neighbour connects. */
    @ParameterizedTest(name = "{0}={1}")
    @MethodSource("badFrontendValues")
    void badFrontendValueFailsThatVifOnly(String key, String value, SimulatedXen xen) throws Exception {
        try (NetbackHarness h = new NetbackHarness(xen)) {
            SimulatedNetfront bad = h.attach(NetfrontOptions.linuxDefaults().withRequestRxCopy(!key.equals(
                    "request-rx-copy")));
            bad.awaitBackendState(NetbackHarness.WAIT, 2);
            bad.connectWithOverrides(NetbackHarness.WAIT, java.util.Map.of(key, value));
            bad.awaitBackendState(NetbackHarness.WAIT, 5);
            VifXenbus vif = h.vif(bad);
            String error = vif.lastError().orElseThrow();
            assertTrue(error.contains(key) && error.contains(value), error);
            assertEquals(0, vif.queueCount());
            SimulatedNetfront good = h.connect(NetfrontOptions.linuxDefaults());
            assertEquals(XenbusState.Connected, h.vif(good).state());
            bad.disconnect(NetbackHarness.WAIT);
        }
    }

    @ParameterizedTest(name = "{0}={1}")
    @MethodSource("badBackendValues")
    void badToolstackValueFailsThatVifOnly(String key, String value, SimulatedXen xen) throws Exception {
        try (NetbackHarness h = new NetbackHarness(xen)) {
            NetfrontOptions o = NetfrontOptions.linuxDefaults();
            o = switch (key) {
                case "mac" -> o.withMac(value);
                case "rate" -> o.withRate(value);
                default -> o.withVifname(value);
            };
            SimulatedNetfront bad = h.attach(o);
            bad.awaitBackendState(NetbackHarness.WAIT, 5);
            String error = h.vif(bad).lastError().orElseThrow();
            assertTrue(error.contains(key) && error.contains(value), error);
            try (var dom0 = h.xen.xenStore().connect(0)) {
                assertTrue(dom0.readString("/local/domain/0/error/backend/vif/" + bad.guest().domid() + "/0/error")
                        .isPresent(), "xenbus_dev_fatal's error node");
            }
            SimulatedNetfront good = h.connect(NetfrontOptions.linuxDefaults());
            assertEquals(XenbusState.Connected, h.vif(good).state());
        }
    }

    static Stream<Arguments> badBackendValues() {
        return Stream.of(Arguments.of("mac", "00:16:3e:zz:00:01"), Arguments.of("mac", "00:16:3e"),
                Arguments.of("rate", "fast"), Arguments.of("rate", "1000"), Arguments.of("rate", "0,100"),
                Arguments.of("vifname", "a-name-much-too-long"));
    }

    /** Suspend/resume: close and reconnect with fresh rings on the same TAP; traffic flows; nothing leaks. */
    @Test
    void reconnectAfterSuspendResume(SimulatedXen xen) throws Exception {
        try (NetbackHarness h = new NetbackHarness(xen)) {
            SimulatedNetfront f = h.connect(NetfrontOptions.linuxDefaults().withQueues(2));
            SimulatedTap host = h.host(f);
            for (int round = 0; round < 3; round++) {
                byte[] frame = TestFrames.udp4(HOST_MAC, GUEST_MAC, TestFrames.ip4(10, 0, 0, 2),
                        TestFrames.ip4(10, 0, 0, 1), 1000, 2000, TestFrames.payload(200, round),
                        TestFrames.Checksum.FULL);
                f.send(0, frame, TxPacket.plain());
                ByteBuffer got = NetbackHarness.readFrame(host);
                got.position(12);
                byte[] bytes = new byte[got.remaining()];
                got.get(bytes);
                assertTrue(Arrays.equals(frame, bytes), "round " + round);
                f.awaitTx(0, 1, NetbackHarness.WAIT);
                byte[] back = TestFrames.udp4(GUEST_MAC, HOST_MAC, TestFrames.ip4(10, 0, 0, 1),
                        TestFrames.ip4(10, 0, 0, 2), 2000, 1000, TestFrames.payload(300, round),
                        TestFrames.Checksum.FULL);
                host.write(TestFrames.withHeader(back, 0, 0, 0, 0, 0, 0));
                var rx = f.awaitRxAnyQueue(1, NetbackHarness.WAIT);
                assertTrue(rx.stream().flatMap(List::stream).anyMatch(p -> Arrays.equals(back, p.frame())));
                f.reconnect(NetbackHarness.WAIT);
                assertEquals(XenbusState.Connected, h.vif(f).state());
            }
            assertEquals(1, h.taps.size(), "the TAP outlives reconnects");
        }
    }

    /** Backend-initiated close while connected: Closed is written, every mapping and port released (leak check). */
    @Test
    void backendCloseReleasesEverything(SimulatedXen xen) throws Exception {
        NetbackHarness h = new NetbackHarness(xen);
        SimulatedNetfront f = h.connect(NetfrontOptions.linuxDefaults().withQueues(2));
        h.service.close();
        assertEquals(6, f.backendState());
        assertFalse(h.taps.values().iterator().next().host().isDeviceEnd());
        assertThrows(java.nio.channels.ClosedChannelException.class,
                () -> h.taps.values().iterator().next().read(ByteBuffer.allocate(70_000)));
        h.close();
    }

    /**
     * An operator detaches a vif and attaches the same devid again with another configuration, in one transaction (both
     * directories removed and written afresh), after the guest closed the vif or while it is still connected, with
     * another vifname or the default one again. The new directory is a new vif with the new configuration (mac, rate,
     * mtu, vifname, a TAP of its own, the features advertised afresh), and the old vif is closed with its TAP first.
     * The old vif used to stay and serve the new directory with its old TAP: it went back to InitWait there without
     * advertising any feature.
     */
    @ParameterizedTest(name = "frontend closed first: {0}, same TAP name: {1}")
    @CsvSource({"true, false", "false, false", "true, true", "false, true"})
    void aDirectoryWrittenAfreshIsANewVifWithTheNewConfiguration(boolean closedFirst, boolean sameName,
            SimulatedXen xen) throws Exception {
        try (NetbackHarness h = new NetbackHarness(xen)) {
            NetfrontOptions before = NetfrontOptions.linuxDefaults().withMac("00:16:3e:00:00:0a")
                    .withRate("100000,20000").withMtu("1400");
            SimulatedNetfront f = h.connect(sameName ? before : before.withVifname("vifold"));
            VifXenbus old = h.vif(f);
            TapDevice oldTap = old.tap().orElseThrow();
            assertEquals(1400, oldTap.mtu());
            if (closedFirst) {
                f.disconnect(NetbackHarness.WAIT);
            }
            NetfrontOptions after = NetfrontOptions.linuxDefaults().withMac("00:16:3e:00:00:0b").withMtu("9000");
            SimulatedNetfront g = h.recreate(f, sameName ? after : after.withVifname("vifnew"));
            VifXenbus vif = awaitReplaced(h, g, old);
            g.connect(NetbackHarness.WAIT);
            assertEquals(XenbusState.Connected, vif.state());
            assertEquals(sameName ? "vif" + g.guest().domid() + ".0" : "vifnew", vif.tapName().orElseThrow());
            BackendConfig c = vif.config();
            assertEquals(0x00163e00000bL, c.mac(), "mac");
            assertEquals(Long.MAX_VALUE, c.creditBytes(), "the old rate limit is gone");
            assertEquals(9000, c.mtu(), "mtu");
            assertEquals(9000, vif.tap().orElseThrow().mtu(), "the new TAP's mtu");
            assertEquals(XenbusState.Closed, old.state());
            assertThrows(java.nio.channels.ClosedChannelException.class,
                    () -> oldTap.read(ByteBuffer.allocate(70_000)), "the old TAP is closed");
            byte[] frame = TestFrames.udp4(HOST_MAC, TestFrames.mac(0x00163e00000bL), TestFrames.ip4(10, 0, 0, 2),
                    TestFrames.ip4(10, 0, 0, 1), 1000, 2000, TestFrames.payload(100, 1), TestFrames.Checksum.FULL);
            g.send(0, frame, TxPacket.plain());
            assertEquals(12 + frame.length, NetbackHarness.readFrame(h.host(g)).remaining());
            g.awaitTx(0, 1, NetbackHarness.WAIT);
        }
    }

    /** The vif the service serves for {@code g}'s directory once it is no longer {@code old}. */
    private static VifXenbus awaitReplaced(NetbackHarness h, SimulatedNetfront g, VifXenbus old) {
        long deadline = System.nanoTime() + NetbackHarness.WAIT.toNanos();
        while (true) {
            Optional<VifXenbus> v = h.service.vif(g.guest().domid(), 0);
            if (v.isPresent() && v.get() != old) {
                return v.get();
            }
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("the directory written afresh is still served by the old vif: " + v
                        + ", new directory's state=" + readQuietly(g, "state") + ", vifname="
                        + readQuietly(g, "vifname"));
            }
            Thread.onSpinWait();
        }
    }

    private static String readQuietly(SimulatedNetfront f, String key) {
        try {
            return f.readBackend(key).orElse(null);
        } catch (IOException e) {
            return e.toString();
        }
    }

    /**
     * The vif alone, no service: it sees the new frontend of a directory written afresh (a detach and an attach in one
     * transaction) before anyone else does, and must not take the directory for its own. It writes nothing there (an
     * InitWait made the new frontend connect to the old vif, without features), not even when it is closed; it lets
     * go of the old rings, is Closed and superseded, so that the service starts a new vif.
     */
    @ParameterizedTest(name = "frontend closed first: {0}")
    @ValueSource(booleans = {true, false})
    void theOldVifWritesNothingIntoADirectoryWrittenAfresh(boolean closedFirst, SimulatedXen xen) throws Exception {
        ExecutorService control = Executors.newSingleThreadExecutor();
        List<SimulatedTap> taps = new ArrayList<>();
        TapFactory factory = name -> {
            SimulatedTap t = SimulatedTap.open(name, NetbackHarness.TAP_CAPACITY);
            taps.add(t);
            return t;
        };
        SimulatedDomain guest = xen.createDomain("guest");
        XenStore xs = xen.platform(SimulatedXen.DOM0).openXenStore();
        SimulatedNetfront f = SimulatedNetfront.create(xen, guest, 0,
                NetfrontOptions.linuxDefaults().withVifname("vifold"));
        SimulatedNetfront g = null;
        String be = f.backendPath();
        VifXenbus vif = control.submit(() -> new VifXenbus(xs, xen.platform(SimulatedXen.DOM0), factory,
                NetbackOptions.defaults().withMaxQueues(4).withIdlePollMs(20), control, guest.domid(), 0, be)).get();
        try {
            f.connect(NetbackHarness.WAIT);
            assertEquals(XenbusState.Connected, vif.state());
            if (closedFirst) {
                f.disconnect(NetbackHarness.WAIT);
            }
            assertFalse(control.submit(vif::superseded).get(), "a vif is not superseded by its own directory");
            g = f.recreate(NetfrontOptions.linuxDefaults().withVifname("vifnew"));
            // The transaction's events reached the vif (its connection delivers them in order) once a watch's first
            // event, queued behind them, arrived; it has handled them once a task queued behind them ran.
            CountDownLatch delivered = new CountDownLatch(1);
            try (XenStore.Watch w = xs.watch("/local/domain/0/jtap-test-sync",
                    (path, token) -> delivered.countDown())) {
                assertTrue(delivered.await(NetbackHarness.WAIT.toSeconds(), TimeUnit.SECONDS),
                        "the transaction's events never came");
            }
            control.submit(() -> null).get();
            List<String> written = List.of("frontend", "frontend-id", "online", "state", "handle", "script", "mac",
                    "vifname");
            assertEquals("1", xs.readString(be + "/state").orElseThrow(),
                    "the old vif wrote its state into the new directory");
            assertEquals(written, xs.directory(be), "the old vif wrote into the new directory");
            assertEquals(0, vif.queueCount(), "the rings of the old connection are released");
            assertEquals(XenbusState.Closed, vif.state(), "the old vif offered itself again");
            assertTrue(control.submit(vif::superseded).get(), "the new directory is a new vif's");
            control.submit(() -> {
                vif.close();
                return null;
            }).get();
            assertEquals("1", xs.readString(be + "/state").orElseThrow(), "closing wrote into the new directory");
            assertEquals(written, xs.directory(be), "closing wrote into the new directory");
            assertEquals(List.of(), xs.directoryIfPresent("/local/domain/0/error"), "error nodes");
            assertEquals(List.of("vifold"), taps.stream().map(SimulatedTap::name).toList(), "TAPs opened");
            f.close();
            f.assertNoViolations();
        } finally {
            control.submit(() -> {
                vif.close();
                return null;
            }).get();
            control.shutdown();
            f.close();
            if (g != null) {
                g.close();
            }
            for (SimulatedTap t : taps) {
                t.host().close();
            }
            xs.close();
        }
    }

    /**
     * An event naming a served vif's directory itself, without a re-creation (xenstored fires one for a write of the
     * directory node), restarts nothing: the directory is still the vif's, and it stays Connected.
     */
    @Test
    void anEventForAServedDirectoryRestartsNothing(SimulatedXen xen) throws Exception {
        try (NetbackHarness h = new NetbackHarness(xen);
             XenStore xs = xen.platform(SimulatedXen.DOM0).openXenStore()) {
            SimulatedNetfront f = h.connect(NetfrontOptions.linuxDefaults());
            VifXenbus vif = h.vif(f);
            xs.write(f.backendPath(), "");
            // Any reconcile after the write has seen its event: another vif's attach is served after it.
            SimulatedNetfront other = h.connect(NetfrontOptions.linuxDefaults());
            assertEquals(XenbusState.Connected, h.vif(other).state());
            assertSame(vif, h.vif(f), "the vif was restarted");
            assertEquals(XenbusState.Connected, vif.state());
        }
    }

    /** The toolstack removes the device: netback stops serving it and closes its TAP. */
    @Test
    void detachedDeviceGoesAway(SimulatedXen xen) throws Exception {
        try (NetbackHarness h = new NetbackHarness(xen)) {
            SimulatedNetfront f = h.connect(NetfrontOptions.linuxDefaults());
            VifXenbus vif = h.vif(f);
            f.detach(NetbackHarness.WAIT);
            long deadline = System.nanoTime() + NetbackHarness.WAIT.toNanos();
            while (h.service.vif(f.guest().domid(), 0).isPresent()) {
                assertTrue(System.nanoTime() < deadline, "vif still served after detach");
                Thread.onSpinWait();
            }
            assertNotEquals(XenbusState.Connected, vif.state());
        }
    }
}
