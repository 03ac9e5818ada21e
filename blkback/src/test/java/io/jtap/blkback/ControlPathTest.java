package io.jtap.blkback;

import io.jtap.formats.ImageFormats;
import io.jtap.ring.blkif.Blkif;
import io.jtap.testkit.blkfront.SimulatedBlkfront.Features;
import io.jtap.testkit.blkfront.SimulatedBlkfront.Request;
import io.jtap.testkit.blkfront.SimulatedBlkfront;
import io.jtap.testkit.blkfront.SimulatedToolstack;
import io.jtap.xen.BackendClaim;
import io.jtap.xen.XenStore;
import io.jtap.xen.XenbusState;
import io.jtap.xen.sim.SimulatedXen;
import io.jtap.xen.sim.SimulatedXenExtension;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The xenbus side: reconnects, backend-initiated close, bad configuration, bad frontend nodes, resize. */
@ExtendWith(SimulatedXenExtension.class)
class ControlPathTest {
    private static final long SIZE = 4L << 20;
    private static final Duration WAIT = Duration.ofSeconds(10);
    private BlkbackFixture fx;

    @BeforeEach
    void setUp(SimulatedXen xen, @TempDir Path dir) throws Exception {
        fx = new BlkbackFixture(xen, dir);
    }

    @AfterEach
    void tearDown() throws Exception {
        fx.close();
    }

    @Test
    void bareParamsPathIsRawEvenWhenTheFileLooksLikeQcow2() throws Exception {
        Path image = fx.createImage("qcow2", "d.qcow2", SIZE);
        BlkbackFixture.Device d = fx.addDevice(image.toString(), "w", "disk", BlkbackConfig.defaults());
        SimulatedBlkfront f = fx.frontend(d, Features.defaults());
        f.connect();
        byte[] first = f.read(0, 0, 1);
        // Never probed: the guest sees the qcow2 header as the raw disk's first bytes.
        assertArrayEquals(new byte[] {'Q', 'F', 'I', (byte) 0xfb}, java.util.Arrays.copyOf(first, 4));
        assertEquals("raw", d.backend().image().formatName());
        f.disconnect();
    }

    @Test
    void reconnectCyclesKeepData() throws Exception {
        Path image = fx.createImage("qcow2", "d.qcow2", SIZE);
        BlkbackFixture.Device d = fx.addDevice("qcow2:" + image, "w", "disk", BlkbackConfig.defaults());
        SimulatedBlkfront f = fx.frontend(d, Features.defaults().withQueues(2));
        f.connect();
        for (int round = 0; round < 3; round++) {
            byte[] data = BlkbackFixture.pattern(round * 65536L, 65536, round + 1);
            f.write(round % 2, round * 128L, data);
            f.disconnect();
            assertEquals(XenbusState.Closed, BlkbackFixture.awaitState(d.backend(), XenbusState.Closed));
            assertEquals(0, f.grantsStillMapped());
            f.reconnect();
            assertEquals(XenbusState.Connected, BlkbackFixture.awaitState(d.backend(), XenbusState.Connected));
            for (int r = 0; r <= round; r++) {
                assertArrayEquals(BlkbackFixture.pattern(r * 65536L, 65536, r + 1), f.read(0, r * 128L, 128));
            }
        }
        f.disconnect();
    }

    @Test
    void frontendRestartWithoutClosingReconnects() throws Exception {
        Path image = fx.createImage("raw", "d.raw", SIZE);
        BlkbackFixture.Device d = fx.addDevice(image.toString(), "w", "disk", BlkbackConfig.defaults());
        SimulatedBlkfront f = fx.frontend(d, Features.defaults().withQueues(2).withRingPageOrder(1));
        f.connect();
        byte[] data = BlkbackFixture.pattern(0, 16384, 5);
        f.write(1, 0, data);
        f.restartWithoutClosing();
        assertEquals(0, f.grantsStillMapped(), "the backend unmapped the old rings and persistent grants");
        assertEquals(XenbusState.Connected, BlkbackFixture.awaitState(d.backend(), XenbusState.Connected));
        assertArrayEquals(data, f.read(0, 0, 32));
        f.disconnect();
    }

    @Test
    void onlineZeroAnswersEverythingPublishedThenCloses() throws Exception {
        RecordingFormat slow = new RecordingFormat();
        Path image = fx.createImage("raw", "d.raw", SIZE);
        BlkbackFixture.Device d = fx.addDevice("recording:" + image, "w", "disk", BlkbackConfig.defaults(),
                slow.registry());
        SimulatedBlkfront f = fx.frontend(d, Features.defaults().withRingPageOrder(1));
        f.connect();
        List<Request> requests = new ArrayList<>();
        for (int i = 0; i < 40; i++) {
            requests.add(f.submitWrite(0, Blkif.BLKIF_OP_WRITE, i * 8L, BlkbackFixture.pattern(i * 4096L, 4096, 7),
                    0));
        }
        SimulatedToolstack.setOffline(fx.xs, d.backendPath());
        f.awaitBackendState(WAIT, 6);
        f.awaitAll();
        for (Request r : requests) {
            assertEquals(Blkif.BLKIF_RSP_OKAY, r.status());
        }
        assertEquals(40, slow.events.stream().filter(e -> e.startsWith("write-done")).count());
        f.switchState(6);
        SimulatedToolstack.removeVbd(fx.xs, d.backendPath(), d.guest().domid(), d.devid());
    }

    /**
     * The toolstack removes both directories of a connected device: the backend sees its frontend vanish, drains and
     * goes Closed, but must not write that state into the removed directory (an XS_WRITE would re-create it, and the
     * service would take the stray node for a new device). Linux's xenbus_switch_state checks the same.
     */
    @Test
    void aRemovedDirectoryIsNotCreatedAgainByTheBackend() throws Exception {
        Path image = fx.createImage("raw", "d.raw", SIZE);
        BlkbackFixture.Device d = fx.addDevice(image.toString(), "w", "disk", BlkbackConfig.defaults());
        SimulatedBlkfront f = fx.frontend(d, Features.defaults());
        f.connect();
        f.write(0, 0, BlkbackFixture.pattern(0, 4096, 3));
        SimulatedToolstack.removeVbd(fx.xs, d.backendPath(), d.guest().domid(), d.devid());
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (d.backend().state() != XenbusState.Closed && System.nanoTime() < deadline) {
            Thread.sleep(2);
        }
        assertEquals(XenbusState.Closed, BlkbackFixture.awaitState(d.backend(), XenbusState.Closed));
        assertTrue(fx.xs.read(d.backendPath()).isEmpty(), "backend directory came back");
        assertEquals(List.of(), fx.xs.directory("/local/domain/0/backend/vbd/" + d.guest().domid()));
    }

    /**
     * A toolstack removes both directories of a device and writes them afresh in one transaction (a detach and an
     * attach of the same devid), with another image, while the frontend is connected or after it closed. The device
     * sees the new frontend's Initialising, perhaps before the service sees the new directory, and must not take that
     * directory for its own: it writes nothing there (an InitWait made the new frontend connect to it and be served
     * the old image), stays Closed, and is superseded, so that the service starts a new device with the new image.
     */
    @ParameterizedTest(name = "frontend closed first: {0}")
    @ValueSource(booleans = {true, false})
    void aDirectoryWrittenAfreshIsLeftToANewDevice(boolean closedFirst) throws Exception {
        Path image = fx.createImage("raw", "d.raw", SIZE);
        Path other = fx.createImage("raw", "e.raw", SIZE);
        BlkbackFixture.Device d = fx.addDevice(image.toString(), "w", "disk", BlkbackConfig.defaults());
        SimulatedBlkfront f = fx.frontend(d, Features.defaults());
        f.connect();
        f.write(0, 0, BlkbackFixture.pattern(0, 4096, 1));
        if (closedFirst) {
            f.disconnect();
            assertEquals(XenbusState.Closed, BlkbackFixture.awaitState(d.backend(), XenbusState.Closed));
        }
        assertFalse(d.backend().superseded(), "a device is not superseded by its own directory");
        int domid = d.guest().domid();
        fx.xs.transaction(tx -> {
            tx.rm(d.backendPath());
            tx.rm(SimulatedToolstack.frontendPath(domid, d.devid()));
            return SimulatedToolstack.writeVbd(tx, 0, "vbd", domid, d.devid(), other.toString(), "w", "disk");
        });
        // The transaction's events reached the device (its connection delivers them in order) once a watch's first
        // event, queued behind them, arrived; it has handled them once a task queued behind them on its thread ran.
        CountDownLatch delivered = new CountDownLatch(1);
        try (XenStore.Watch w = fx.xs.watch("/local/domain/0/jtap-test-sync", (path, token) -> delivered.countDown())) {
            assertTrue(delivered.await(WAIT.toSeconds(), TimeUnit.SECONDS), "the transaction's events never came");
        }
        assertEquals(0, d.backend().queueCount(), "the rings of the old connection are released");
        assertEquals("1", fx.xs.readString(d.backendPath() + "/state").orElseThrow(),
                "the old device wrote its state into the new directory");
        assertEquals(XenbusState.Closed, d.backend().state(), "the old device offered itself again");
        assertEquals(List.of(), fx.xs.directory(d.backendPath()).stream()
                .filter(n -> n.equals(BackendClaim.INSTANCE_NODE) || n.startsWith("feature-")).toList(),
                "the old device wrote into the new directory");
        assertTrue(d.backend().superseded(), "the new directory is a new device's");
    }

    /**
     * Offline is final: after {@code online} = 0 closed the device, a frontend that starts over (Initialising) does not
     * bring it back to InitWait; the toolstack removes the directory next.
     */
    @Test
    void anOfflineDeviceStaysClosed() throws Exception {
        Path image = fx.createImage("raw", "d.raw", SIZE);
        BlkbackFixture.Device d = fx.addDevice(image.toString(), "w", "disk", BlkbackConfig.defaults());
        SimulatedBlkfront f = fx.frontend(d, Features.defaults());
        f.connect();
        SimulatedToolstack.setOffline(fx.xs, d.backendPath());
        f.awaitBackendState(WAIT, 6);
        f.disconnect();
        f.switchState(1);
        Thread.sleep(200);
        assertEquals(XenbusState.Closed, BlkbackFixture.awaitState(d.backend(), XenbusState.Closed));
        assertEquals("6", fx.xs.readString(d.backendPath() + "/state").orElseThrow());
    }

    /** A device whose configuration failed still goes Closed when taken offline, so a detach does not time out. */
    @Test
    void aFailedDeviceGoesClosedWhenTakenOffline() throws Exception {
        BlkbackFixture.Device d = fx.addDevice("/nonexistent/disk.raw", "w", "disk", BlkbackConfig.defaults());
        assertEquals(XenbusState.Closing, BlkbackFixture.awaitState(d.backend(), XenbusState.Closing));
        SimulatedToolstack.setOffline(fx.xs, d.backendPath());
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (d.backend().state() != XenbusState.Closed && System.nanoTime() < deadline) {
            Thread.sleep(2);
        }
        assertEquals("6", fx.xs.readString(d.backendPath() + "/state").orElseThrow());
    }

    @ParameterizedTest(name = "{0}={1}")
    @CsvSource({
        "params, vmdk:/nonexistent",
        "params, relative/path",
        "params, /nonexistent/disk.raw",
        "mode, rw",
        "device-type, floppy",
        "frontend-id, banana",
        "frontend-id, 0",
    })
    void badBackendNodeClosesOnlyThatDevice(String key, String value) throws Exception {
        Path good = fx.createImage("raw", "good.raw", SIZE);
        BlkbackFixture.Device healthy = fx.addDevice(good.toString(), "w", "disk", BlkbackConfig.defaults());
        SimulatedBlkfront hf = fx.frontend(healthy, Features.defaults());
        hf.connect();

        Path other = fx.createImage("raw", "other.raw", SIZE);
        String params = key.equals("params") ? value : other.toString();
        String mode = key.equals("mode") ? value : "w";
        String type = key.equals("device-type") ? value : "disk";
        BlkbackFixture.Device bad;
        if (key.equals("frontend-id")) {
            bad = fx.addDevice(params, mode, type, BlkbackConfig.defaults(), io.jtap.formats.ImageFormats.defaults(),
                    be -> fx.xs.write(be + "/frontend-id", value));
        } else {
            bad = fx.addDevice(params, mode, type, BlkbackConfig.defaults());
        }
        assertEquals(XenbusState.Closing, BlkbackFixture.awaitState(bad.backend(), XenbusState.Closing));
        String error = fx.xs.readString(bad.backendPath() + "/error").orElseThrow();
        assertTrue(error.contains(key.equals("params") && value.startsWith("/nonexistent") ? "nonexistent" : key),
                error);
        assertEquals("5", fx.xs.readString(bad.backendPath() + "/state").orElseThrow());

        byte[] data = BlkbackFixture.pattern(0, 8192, 9);
        hf.write(0, 0, data);
        assertArrayEquals(data, hf.read(0, 0, 16));
        hf.disconnect();
    }

    @ParameterizedTest(name = "{0}={1}")
    @CsvSource({
        "ring-ref, banana",
        "ring-ref, 4294967296",
        "ring-ref, 999999",
        "event-channel, -1",
        "ring-page-order, 9",
        "multi-queue-num-queues, 99",
        "protocol, arm-abi",
        "feature-persistent, yes",
    })
    void badFrontendNodeClosesTheDevice(String key, String value) throws Exception {
        Path image = fx.createImage("raw", "d.raw", SIZE);
        BlkbackFixture.Device d = fx.addDevice(image.toString(), "w", "disk", BlkbackConfig.defaults());
        String fe = SimulatedToolstack.frontendPath(d.guest().domid(), d.devid());
        try (XenStore guestXs = fx.xen.platform(d.guest().domid()).openXenStore()) {
            guestXs.transaction(tx -> {
                tx.write(fe + "/ring-ref", "8");
                tx.write(fe + "/event-channel", "1");
                tx.write(fe + "/protocol", "x86_64-abi");
                tx.write(fe + "/" + key, value);
                return null;
            });
            guestXs.write(fe + "/state", "3");
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (d.backend().state() != XenbusState.Closing && System.nanoTime() < deadline) {
                Thread.sleep(2);
            }
            assertEquals(XenbusState.Closing, BlkbackFixture.awaitState(d.backend(), XenbusState.Closing));
            String error = fx.xs.readString(d.backendPath() + "/error").orElseThrow();
            assertTrue(error.contains(key) || error.contains("ring"), error);
            guestXs.write(fe + "/state", "6");
            while (d.backend().state() != XenbusState.Closed && System.nanoTime() < deadline) {
                Thread.sleep(2);
            }
            assertEquals(XenbusState.Closed, BlkbackFixture.awaitState(d.backend(), XenbusState.Closed));
        }
    }

    @Test
    void resizeRewritesSectorsAndTheFrontendSeesTheNewEnd() throws Exception {
        Path image = fx.createImage("raw", "d.raw", SIZE);
        BlkbackFixture.Device d = fx.addDevice(image.toString(), "w", "disk", BlkbackConfig.defaults());
        SimulatedBlkfront f = fx.frontend(d, Features.defaults());
        f.connect();
        long end = SIZE / 512;
        Request beyond = f.submitRead(0, end, 8, 0);
        assertEquals(Blkif.BLKIF_RSP_ERROR, f.await(beyond));
        d.backend().resize(2 * SIZE);
        assertEquals(Long.toString(2 * end), f.backendNode("sectors").orElseThrow());
        byte[] data = BlkbackFixture.pattern(SIZE, 4096, 3);
        f.write(0, end, data);
        assertArrayEquals(data, f.read(0, end, 8));
        f.disconnect();
    }

    @Test
    void vanishedFrontendTearsDown() throws Exception {
        Path image = fx.createImage("raw", "d.raw", SIZE);
        BlkbackFixture.Device d = fx.addDevice(image.toString(), "w", "disk", BlkbackConfig.defaults());
        SimulatedBlkfront f = fx.frontend(d, Features.defaults().withQueues(3));
        f.connect();
        f.write(1, 0, BlkbackFixture.pattern(0, 4096, 1));
        fx.xs.rm(SimulatedToolstack.frontendPath(d.guest().domid(), d.devid()));
        f.awaitBackendState(WAIT, 6);
        assertEquals(0, d.backend().queueCount());
    }

    /**
     * A failed read of the frontend's state (an xenstore error such as the EINVAL oxenstored answered once in the
     * real-Xen testbed) is not a frontend that closed: the device retries and connects; only a read that keeps
     * failing closes it, with an error naming the node.
     */
    @Test
    void failedReadsOfTheFrontendStateAreRetriedNotTakenForClosed() throws Exception {
        Path image = fx.createImage("raw", "d.raw", SIZE);
        FailingReadsXenStore store = new FailingReadsXenStore(fx.xs, "/state", "EINVAL");
        BlkbackFixture.Device d = fx.addDevice(image.toString(), "w", "disk", BlkbackConfig.defaults(),
                ImageFormats.defaults(), be -> { }, store);
        SimulatedBlkfront f = fx.frontend(d, Features.defaults());
        store.failures.set(BlkbackDevice.FRONTEND_READ_RETRIES);
        f.connect();
        assertEquals(XenbusState.Connected, BlkbackFixture.awaitState(d.backend(), XenbusState.Connected));
        byte[] data = BlkbackFixture.pattern(0, 4096, 7);
        f.write(0, 0, data);
        assertArrayEquals(data, f.read(0, 0, 8));
        f.disconnect();

        f.switchState(1); // Initialising again, as after a reconnect: the backend goes back to InitWait
        f.awaitBackendState(WAIT, 2);
        store.failures.set(Integer.MAX_VALUE);
        f.switchState(3); // Initialised: the backend cannot read it, ever
        f.awaitBackendState(WAIT, 5);
        assertTrue(d.backend().lastError().contains("cannot read the frontend's state"), d.backend().lastError());
        store.failures.set(0);
    }
}
