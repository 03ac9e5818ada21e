package io.jtap.daemon;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.formats.CreateOptions;
import io.jtap.formats.ImageFormats;
import io.jtap.testkit.blkfront.SimulatedBlkfront;
import io.jtap.testkit.blkfront.SimulatedToolstack;
import io.jtap.xen.XenStore;
import io.jtap.xen.XenStoreException;
import io.jtap.xen.XenStorePermission;
import io.jtap.xen.linux.WireXenStore;
import io.jtap.xen.sim.SimulatedDomain;
import io.jtap.xen.sim.SimulatedXen;
import io.jtap.xen.sim.SimulatedXenExtension;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@code jtap attach} and {@code jtap detach}, run through {@link Main} in-process as the command line runs them,
 * against {@code jtap serve} (also through {@link Main}) in the same simulated Xen, with a simulated guest whose
 * blkfront connects to the device attach created. The simulation checks for leaked mappings, ports, watches and
 * transactions after each test.
 */
@ExtendWith(SimulatedXenExtension.class)
class AttachDetachTest {
    private static final Duration WAIT = Duration.ofSeconds(10);
    private static final int XVDB = 51728;
    private static final long SIZE = 4L << 20;

    private SimulatedXen xen;
    private Path dir;
    private XenStore xs;
    private ExecutorService daemon;
    private CountDownLatch stop;
    private Future<Integer> serving;
    private final ByteArrayOutputStream serveOut = new ByteArrayOutputStream();
    private final ByteArrayOutputStream serveErr = new ByteArrayOutputStream();

    @BeforeEach
    void setUp(SimulatedXen xen, @TempDir Path dir) throws IOException {
        this.xen = xen;
        this.dir = dir;
        this.xs = xen.platform(SimulatedXen.DOM0).openXenStore();
    }

    @AfterEach
    void tearDown() throws Exception {
        try {
            if (serving != null) {
                stop.countDown();
                assertEquals(0, serving.get(WAIT.toSeconds(), TimeUnit.SECONDS), this::serveLog);
            }
        } finally {
            if (daemon != null) {
                daemon.shutdownNow();
            }
            xs.close();
        }
    }

    /** What a command printed and returned. */
    private record Result(int code, String out, String err) {
        @Override
        public String toString() {
            return "exit=" + code + "\nstdout: " + out + "\nstderr: " + err;
        }
    }

    private Result jtap(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = Main.run(args, new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8), new CountDownLatch(1), xen);
        return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    /** {@code jtap serve --xen=simulated} in this test's world, block devices only, until the test ends. */
    private void serve() throws Exception {
        stop = new CountDownLatch(1);
        daemon = Executors.newSingleThreadExecutor();
        serving = daemon.submit(() -> Main.run(new String[] {"serve", "--xen=simulated", "--net=off", "--workers=2"},
                new PrintStream(serveOut, true, StandardCharsets.UTF_8),
                new PrintStream(serveErr, true, StandardCharsets.UTF_8), stop, xen));
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (!serveOut.toString(StandardCharsets.UTF_8).contains("jtap serve:") && System.nanoTime() < deadline) {
            Thread.sleep(5);
        }
        assertTrue(serveOut.toString(StandardCharsets.UTF_8).contains("/local/domain/0/backend/vbd on simulated Xen"),
                this::serveLog);
    }

    private String serveLog() {
        return "serve stdout: " + serveOut.toString(StandardCharsets.UTF_8) + "\nserve stderr: "
                + serveErr.toString(StandardCharsets.UTF_8);
    }

    private Path image(String format, String name) throws IOException {
        Path p = dir.resolve(name);
        ImageFormats.defaults().get(format).create(p, CreateOptions.ofSize(SIZE));
        return p;
    }

    private static String be(SimulatedDomain guest, int devid) {
        return "/local/domain/0/backend/vbd/" + guest.domid() + "/" + devid;
    }

    private static String fe(SimulatedDomain guest, int devid) {
        return "/local/domain/" + guest.domid() + "/device/vbd/" + devid;
    }

    private String node(String path) throws IOException {
        return xs.readString(path).orElse(null);
    }

    /** Neither directory, nor the parents attach may have made, is left. */
    private void assertNothingLeft(SimulatedDomain guest, int devid) throws IOException {
        for (String p : List.of(fe(guest, devid), be(guest, devid), "/local/domain/0/backend/vbd/" + guest.domid(),
                "/local/domain/" + guest.domid() + "/device/vbd")) {
            assertEquals(null, node(p), "left in xenstore: " + p);
        }
    }

    /** Self-describing data: each 8-byte word holds {@code tag << 48 | byte offset on the disk}. */
    private static byte[] pattern(long offset, int length, int tag) {
        ByteBuffer b = ByteBuffer.allocate(length).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < length; i += 8) {
            b.putLong(i, ((long) tag << 48) | (offset + i));
        }
        return b.array();
    }

    /** File descriptors of this process open on {@code file}. */
    private static int openDescriptors(Path file) throws IOException {
        Path real = file.toRealPath();
        int n = 0;
        try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
            for (Path fd : fds.toList()) {
                try {
                    if (Files.readSymbolicLink(fd).equals(real)) {
                        n++;
                    }
                } catch (IOException e) {
                    // closed meanwhile (the listing's own descriptor, a worker's)
                }
            }
        }
        return n;
    }

    private static void awaitNoDescriptors(Path file) throws Exception {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (openDescriptors(file) > 0 && System.nanoTime() < deadline) {
            Thread.sleep(5);
        }
        assertEquals(0, openDescriptors(file), "jtap serve still has the image open: " + file);
    }

    /** Leaked grant mappings, grant-table or event-channel handles (the serving daemon's xenstore watch is fine). */
    private List<String> mappingsAndPorts() {
        return xen.leaks().stream().filter(l -> l.startsWith("grant") || l.startsWith("event channel")).toList();
    }

    @Test
    void attachServesTheImageDetachLetsGoAndAttachWorksAgain() throws Exception {
        serve();
        SimulatedDomain guest = xen.createDomain("guest");
        Path image = image("raw", "disk2.img");
        String id = Integer.toString(guest.domid());

        Result attach = jtap("attach", "--xen=simulated", "--domid", id, "--target", "raw:" + image, "--vdev",
                "xvdb", "--timeout", "10");
        assertEquals(0, attach.code(), attach::toString);
        assertTrue(attach.out().startsWith("jtap attach: attached: domid=" + id + ", vdev=xvdb, devid=51728"),
                attach::toString);
        assertTrue(attach.out().contains("state=InitWait(2)"), attach::toString);
        assertEquals("", attach.err());

        // The nodes libxl writes, with libxl's permissions: the guest owns the frontend, dom0 the backend.
        String be = be(guest, XVDB);
        String fe = fe(guest, XVDB);
        assertEquals(fe, node(be + "/frontend"));
        assertEquals(id, node(be + "/frontend-id"));
        assertEquals("1", node(be + "/online"));
        assertEquals("raw:" + image, node(be + "/params"));
        assertEquals("w", node(be + "/mode"));
        assertEquals("disk", node(be + "/device-type"));
        assertEquals("xvdb", node(be + "/dev"));
        assertEquals("phy", node(be + "/type"));
        assertEquals("0", node(be + "/removable"));
        assertEquals("1", node(be + "/bootable"));
        assertEquals("1", node(be + "/discard-enable"));
        assertEquals(be, node(fe + "/backend"));
        assertEquals("0", node(fe + "/backend-id"));
        assertEquals("51728", node(fe + "/virtual-device"));
        assertEquals("disk", node(fe + "/device-type"));
        assertEquals("1", node(fe + "/trusted"));
        assertEquals(List.of(XenStorePermission.parse("n0"), XenStorePermission.parse("r" + id)),
                xs.getPermissions(be + "/params"));
        assertEquals(List.of(XenStorePermission.parse("n" + id), XenStorePermission.parse("r0")),
                xs.getPermissions(fe + "/virtual-device"));
        try (XenStore guestXs = xen.platform(guest.domid()).openXenStore()) {
            XenStoreException e = assertThrows(XenStoreException.class, () -> guestXs.write(be + "/params", "/x"));
            assertTrue(e.is(XenStoreException.EACCES), e.getMessage());
            assertEquals("51728", guestXs.readString(fe + "/virtual-device").orElseThrow());
        }

        // The guest's blkfront connects; what it writes lands in the image file.
        byte[] data = pattern(8192, 65536, 1);
        try (SimulatedBlkfront f = new SimulatedBlkfront(xen, guest, XVDB, SimulatedBlkfront.Features.defaults())) {
            f.connect();
            assertEquals(SIZE / 512, f.sectors());
            f.write(0, 16, data);
            assertEquals(0, f.await(f.submitFlush(0)));
            assertArrayEquals(data, f.read(0, 16, 128));
            assertArrayEquals(data, Arrays.copyOfRange(Files.readAllBytes(image), 8192, 8192 + 65536));

            Result detach = jtap("detach", "--xen=simulated", "--domid", id, "--vdev", "xvdb", "--timeout", "10");
            assertEquals(0, detach.code(), detach::toString);
            assertTrue(detach.out().contains("the backend closed: state=Closed(6)"), detach::toString);
            assertNothingLeft(guest, XVDB);
        }
        // Closing the frontend ended every grant: the backend had unmapped them all before it went Closed.
        awaitNoDescriptors(image);
        assertEquals(List.of(), mappingsAndPorts());

        // The same devid again: a new device, serving the same image with what was written.
        attach = jtap("attach", "--xen=simulated", "--domid", id, "--target", "raw:" + image, "--vdev", "51728",
                "--timeout", "10");
        assertEquals(0, attach.code(), attach::toString);
        try (SimulatedBlkfront f = new SimulatedBlkfront(xen, guest, XVDB, SimulatedBlkfront.Features.defaults())) {
            f.connect();
            assertArrayEquals(data, f.read(0, 16, 128));
            f.write(0, 0, pattern(0, 4096, 2));
            assertEquals(0, f.await(f.submitFlush(0)));
            Result detach = jtap("detach", "--xen=simulated", "--domid", id, "--vdev", "xvdb");
            assertEquals(0, detach.code(), detach::toString);
            assertEquals(0, f.grantsStillMapped());
        }
        assertArrayEquals(pattern(0, 4096, 2), Arrays.copyOf(Files.readAllBytes(image), 4096));
        assertNothingLeft(guest, XVDB);
        awaitNoDescriptors(image);
        assertEquals(List.of(), mappingsAndPorts());
    }

    @Test
    void attachWithNothingServingFailsAfterTheTimeoutAndLeavesNothing() throws Exception {
        SimulatedDomain guest = xen.createDomain("guest");
        Path image = image("qcow2", "d.qcow2");
        long t0 = System.nanoTime();
        Result r = jtap("attach", "--xen=simulated", "--domid", Integer.toString(guest.domid()), "--target",
                "qcow2:" + image, "--vdev", "xvdc", "--timeout", "0.5");
        long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
        assertEquals(1, r.code(), r::toString);
        assertTrue(r.err().startsWith("jtap attach: no backend picked the device up in 500 ms: state=Initialising(1)"),
                r::toString);
        assertTrue(r.err().contains("is jtap serve --backend-kind=vbd running in domain 0?"), r::toString);
        assertTrue(r.err().contains("removed " + fe(guest, 51744) + " and " + be(guest, 51744)), r::toString);
        assertEquals("", r.out());
        assertTrue(ms >= 500, "gave up after " + ms + " ms");
        assertNothingLeft(guest, 51744);
    }

    /**
     * Detach and attach of the same devid back to back, alternating two images: each attach gets a new device that
     * serves the image it names (jtap serve must not keep the previous, Closed device for the re-created directory).
     */
    @Test
    void detachAndAttachBackToBackServeTheImageNamedEachTime() throws Exception {
        serve();
        SimulatedDomain guest = xen.createDomain("guest");
        String id = Integer.toString(guest.domid());
        Path[] images = {image("raw", "a.raw"), image("raw", "b.raw")};
        int[] lastTag = {0, 0};
        for (int round = 1; round <= 12; round++) {
            int which = round % 2;
            Result r = jtap("attach", "--xen=simulated", "--domid", id, "--target", "raw:" + images[which],
                    "--vdev", "xvdb", "--timeout", "10");
            assertEquals(0, r.code(), () -> "round " + r);
            try (SimulatedBlkfront f = new SimulatedBlkfront(xen, guest, XVDB,
                    SimulatedBlkfront.Features.defaults())) {
                f.connect();
                byte[] expected = lastTag[which] == 0 ? new byte[4096] : pattern(0, 4096, lastTag[which]);
                assertArrayEquals(expected, f.read(0, 0, 8), "round " + round + ": served the wrong image");
                f.write(0, 0, pattern(0, 4096, round));
                lastTag[which] = round;
                Result d = jtap("detach", "--xen=simulated", "--domid", id, "--vdev", "xvdb", "--timeout", "10");
                assertEquals(0, d.code(), () -> "round " + d);
            }
        }
        for (Path image : images) {
            awaitNoDescriptors(image);
        }
        assertEquals(List.of(), mappingsAndPorts());
    }

    /**
     * The guest's xenstore home goes away (as on {@code xl destroy}) while its disk is served: jtap serve sees the
     * frontend vanish and closes; detach then removes what is left, and attach refuses the missing domain.
     */
    @Test
    void detachAfterTheGuestIsGoneRemovesWhatIsLeft() throws Exception {
        serve();
        SimulatedDomain guest = xen.createDomain("guest");
        String id = Integer.toString(guest.domid());
        Path image = image("raw", "d.raw");
        assertEquals(0, jtap("attach", "--xen=simulated", "--domid", id, "--target", "raw:" + image, "--vdev",
                "xvdb").code());
        try (SimulatedBlkfront f = new SimulatedBlkfront(xen, guest, XVDB, SimulatedBlkfront.Features.defaults())) {
            f.connect();
            f.write(0, 0, pattern(0, 4096, 1));
            xs.rm("/local/domain/" + id);
            f.awaitBackendState(WAIT, 6);
        }
        Result r = jtap("detach", "--xen=simulated", "--domid", id, "--vdev", "xvdb");
        assertEquals(0, r.code(), r::toString);
        assertTrue(r.out().contains("the backend was Closed already, removed=" + be(guest, XVDB)), r::toString);
        assertEquals(null, node("/local/domain/0/backend/vbd/" + id));
        awaitNoDescriptors(image);
        assertEquals(List.of(), mappingsAndPorts());
        r = jtap("attach", "--xen=simulated", "--domid", id, "--target", "raw:" + image, "--vdev", "xvdb");
        assertEquals(1, r.code(), r::toString);
        assertTrue(r.err().startsWith("jtap attach: no such domain: domid=" + id), r::toString);
    }

    /** A backend in another domain (a driver domain): its directory and permissions; the image is not checked here. */
    @Test
    void aBackendInAnotherDomain() throws Exception {
        SimulatedDomain driver = xen.createDomain("driver");
        SimulatedDomain guest = xen.createDomain("guest");
        String id = Integer.toString(guest.domid());
        String drv = Integer.toString(driver.domid());
        Result r = jtap("attach", "--xen=simulated", "--domid", id, "--backend-domid", drv, "--target",
                "qcow2:/in/the/driver/domain.qcow2", "--vdev", "xvdc", "--no-wait");
        assertEquals(0, r.code(), r::toString);
        assertTrue(r.err().contains("the image is not checked here: the backend runs in domain " + drv
                + ", this is domain 0"), r::toString);
        String be = "/local/domain/" + drv + "/backend/vbd/" + id + "/51744";
        assertEquals("qcow2:/in/the/driver/domain.qcow2", node(be + "/params"));
        assertEquals(be, node(fe(guest, 51744) + "/backend"));
        assertEquals(drv, node(fe(guest, 51744) + "/backend-id"));
        assertEquals(List.of(XenStorePermission.parse("n" + drv), XenStorePermission.parse("r" + id)),
                xs.getPermissions(be));
        assertEquals(List.of(XenStorePermission.parse("n" + id), XenStorePermission.parse("r" + drv)),
                xs.getPermissions(fe(guest, 51744)));
        try (XenStore driverXs = xen.platform(driver.domid()).openXenStore()) {
            driverXs.write(be + "/state", "2"); // the driver domain's backend may write its own directory
        }
        r = jtap("detach", "--xen=simulated", "--domid", id, "--backend-domid", drv, "--vdev", "xvdc", "--force");
        assertEquals(0, r.code(), r::toString);
        assertEquals(null, node(be));
        assertEquals(null, node("/local/domain/" + drv + "/backend/vbd/" + id));
        assertNothingLeft(guest, 51744);
    }

    /** A backend that refuses the device (state Closing, an error node): attach fails with that error, undoes. */
    @Test
    void aDeviceTheBackendRefusesIsRemovedAndTheErrorShown() throws Exception {
        SimulatedDomain guest = xen.createDomain("guest");
        Path image = image("raw", "d.raw");
        String be = be(guest, XVDB);
        // A stand-in backend, so that the refusal comes after attach's own checks passed.
        Future<?> backend = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "refusing-backend");
            t.setDaemon(true);
            return t;
        }).submit(() -> {
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (!"1".equals(node(be + "/state")) && System.nanoTime() < deadline) {
                Thread.sleep(2);
            }
            xs.write(be + "/error", "cannot configure device: no, thank you");
            xs.write(be + "/state", "5");
            return null;
        });
        Result r = jtap("attach", "--xen=simulated", "--domid", Integer.toString(guest.domid()), "--target",
                "raw:" + image, "--vdev", "xvdb", "--timeout", "10");
        backend.get(WAIT.toSeconds(), TimeUnit.SECONDS);
        assertEquals(1, r.code(), r::toString);
        assertTrue(r.err().startsWith("jtap attach: the backend refused the device: state=Closing(5), error=cannot"
                + " configure device: no, thank you, domid="), r::toString);
        assertNothingLeft(guest, XVDB);
    }

    /**
     * jtap serve refuses a device another tool wrote (its image is missing): detach still gets it to Closed, and
     * removes it.
     */
    @Test
    void detachOfADeviceServeRefused() throws Exception {
        serve();
        SimulatedDomain guest = xen.createDomain("guest");
        String be = SimulatedToolstack.addVbd(xs, guest.domid(), XVDB, "raw:" + dir.resolve("missing.raw"), "w",
                "disk");
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (!"5".equals(node(be + "/state")) && System.nanoTime() < deadline) {
            Thread.sleep(5);
        }
        assertTrue(node(be + "/error").contains("cannot configure device"), node(be + "/error"));
        Result r = jtap("detach", "--xen=simulated", "--domid", Integer.toString(guest.domid()), "--vdev", "xvdb",
                "--timeout", "10");
        assertEquals(0, r.code(), r::toString);
        assertTrue(r.out().contains("the backend closed: state=Closed(6)"), r::toString);
        assertNothingLeft(guest, XVDB);
    }

    @Test
    void noWaitLeavesTheDirectoriesAndDetachRemovesADeviceNobodyServed() throws Exception {
        SimulatedDomain guest = xen.createDomain("guest");
        Path image = image("raw", "d.raw");
        String id = Integer.toString(guest.domid());
        Result r = jtap("attach", "--xen=simulated", "--domid", id, "--target", image.toString(), "--no-wait");
        assertEquals(0, r.code(), r::toString);
        assertTrue(r.out().startsWith("jtap attach: written, not waiting for a backend: domid=" + id
                + ", vdev=xvda, devid=51712"), r::toString);
        assertEquals("raw:" + image, node(be(guest, 51712) + "/params"));
        assertEquals("1", node(be(guest, 51712) + "/state"));

        // The next attach without --vdev takes the next free disk.
        r = jtap("attach", "--xen=simulated", "--domid", id, "--target", "raw:" + image(("raw"), "e.raw"),
                "--no-wait", "--mode", "ro");
        assertEquals(0, r.code(), r::toString);
        assertTrue(r.out().contains("vdev=xvdb, devid=51728"), r::toString);
        assertEquals("r", node(be(guest, XVDB) + "/mode"));
        assertEquals("0", node(be(guest, XVDB) + "/discard-enable"));

        r = jtap("detach", "--xen=simulated", "--domid", id, "--vdev", "xvda");
        assertEquals(0, r.code(), r::toString);
        assertTrue(r.out().contains("no backend had picked the device up (state=Initialising(1))"), r::toString);
        assertEquals(null, node(be(guest, 51712)));
        assertEquals("1", node(be(guest, XVDB) + "/state"), "the other device is left alone");
        r = jtap("detach", "--xen=simulated", "--domid", id, "--vdev", "xvdb");
        assertEquals(0, r.code(), r::toString);
        assertNothingLeft(guest, 51712);
        assertNothingLeft(guest, XVDB);
    }

    @Test
    void detachOfABackendThatNeverClosesTimesOutAndRemovesAnyway() throws Exception {
        SimulatedDomain guest = xen.createDomain("guest");
        String id = Integer.toString(guest.domid());
        Path image = image("raw", "d.raw");
        for (boolean force : new boolean[] {false, true}) {
            assertEquals(0, jtap("attach", "--xen=simulated", "--domid", id, "--target", "raw:" + image,
                    "--vdev", "xvdb", "--no-wait").code());
            xs.write(be(guest, XVDB) + "/state", "4"); // a backend that says Connected and then never answers
            List<String> args = new ArrayList<>(List.of("detach", "--xen=simulated", "--domid", id, "--vdev", "xvdb",
                    "--timeout", "0.3"));
            if (force) {
                args.add("--force");
            }
            Result r = jtap(args.toArray(String[]::new));
            if (force) {
                assertEquals(0, r.code(), r::toString);
                assertTrue(r.out().contains("forced: removed without waiting for the backend to close (state was"
                        + " Connected(4))"), r::toString);
            } else {
                assertEquals(1, r.code(), r::toString);
                assertTrue(r.err().contains("the backend did not reach Closed in 300 ms (state=Closing(5)),"
                        + " removed anyway"), r::toString);
                assertEquals("", r.out());
            }
            assertNothingLeft(guest, XVDB);
        }
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        // usage errors: exit 2, the option and the value named
        "--target vmdk:/x.vmdk | 2 | bad --target: unknown format: value=vmdk:/x.vmdk, format=vmdk, known=[raw, qcow2]",
        "--vdev xvdB | 2 | bad --vdev: value=xvdB",
        "--vdev 12345 | 2 | bad --vdev: value=12345, not an xvd device number",
        "--domid 0 | 2 | bad --domid: value=0, expected 1..32751",
        "--domid guest | 2 | bad --domid: value=guest",
        "--mode rwx | 2 | bad --mode: value=rwx, expected r or w",
        "--device-type floppy | 2 | bad --device-type: value=floppy, expected disk or cdrom",
        "--device-type cdrom --mode w | 2 | bad --mode: value=w, a cdrom is read-only",
        "--timeout 0 | 2 | bad --timeout: value=0",
        "--timeout soon | 2 | bad --timeout: value=soon",
        "--xen kvm | 2 | bad --xen: value=kvm, expected linux or simulated",
        "--backend-kind ../x | 2 | bad --backend-kind: value=../x",
        "--frobnicate 1 | 2 | Unknown options: '--frobnicate'",
        // the world refuses: exit 1, what and where named
        "--domid 42 | 1 | no such domain: domid=42 (/local/domain/42 is missing)",
        "--backend-domid 9 | 1 | no such backend domain: backend-domid=9",
        "--target raw:/nonexistent/d.img | 1 | image does not exist: path=/nonexistent/d.img",
        "--target qcow2:IMAGE | 1 | image does not open as qcow2: path=IMAGE",
        "--vdev xvda | 1 | device exists: domid=DOMID, vdev=xvda (51712), path=/local/domain/DOMID/device/vbd/51712",
        "--vdev xvdc | 1 | image already attached: path=IMAGE, by=/local/domain/0/backend/vbd/DOMID/51712, mode=w",
    })
    void attachRefusesClearly(String extra, int code, String message) throws Exception {
        SimulatedDomain guest = xen.createDomain("guest");
        String id = Integer.toString(guest.domid());
        Path image = image("raw", "d.raw");
        Path other = image("raw", "other.raw");
        // xvda exists already, attached writable with d.raw.
        assertEquals(0, jtap("attach", "--xen=simulated", "--domid", id, "--target", "raw:" + image, "--vdev", "xvda",
                "--no-wait").code());
        List<String> args = new ArrayList<>(List.of("attach", "--xen", "simulated", "--domid", id, "--target",
                "raw:" + (extra.startsWith("--vdev xvdc") ? image : other), "--vdev", "xvdb", "--no-wait"));
        String before = dump("/local/domain");
        Result r = jtap(withOptions(args, extra.replace("IMAGE", image.toString())));
        assertEquals(code, r.code(), r::toString);
        assertTrue(r.err().contains("jtap attach: " + message.replace("IMAGE", image.toString())
                .replace("DOMID", id)), r::toString);
        assertEquals("", r.out());
        assertEquals(before, dump("/local/domain"), "a refused attach wrote nothing");
    }

    /** {@code args} with each "--name value" pair of {@code extra} replacing the option's value, or added. */
    private static String[] withOptions(List<String> args, String extra) {
        String[] words = extra.split(" ");
        for (int i = 0; i < words.length; i += 2) {
            int at = args.indexOf(words[i]);
            if (at >= 0) {
                args.set(at + 1, words[i + 1]);
            } else {
                args.add(words[i]);
                args.add(words[i + 1]);
            }
        }
        return args.toArray(String[]::new);
    }

    /** Every node below {@code path} with its value, one per line. */
    private String dump(String path) throws IOException {
        StringBuilder b = new StringBuilder(path).append('=').append(node(path)).append('\n');
        for (String child : xs.directory(path)) {
            b.append(dump(path + "/" + child));
        }
        return b.toString();
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        "--vdev sda | 2 | bad --vdev: value=sda",
        "--timeout -1 | 2 | bad --timeout: value=-1",
        "--vdev xvdz | 1 | no such device: domid=DOMID, vdev=xvdz, devid=268441856",
        "--domid 42 | 1 | no such device: domid=42, vdev=xvdb",
    })
    void detachRefusesClearly(String extra, int code, String message) throws Exception {
        SimulatedDomain guest = xen.createDomain("guest");
        String id = Integer.toString(guest.domid());
        List<String> args = new ArrayList<>(List.of("detach", "--xen", "simulated", "--domid", id, "--vdev", "xvdb"));
        Result r = jtap(withOptions(args, extra));
        assertEquals(code, r.code(), r::toString);
        assertTrue(r.err().startsWith("jtap detach: " + message.replace("DOMID", id)), r::toString);
        Result missing = jtap("detach", "--xen=simulated", "--domid", id);
        assertEquals(2, missing.code(), missing::toString);
        assertTrue(missing.err().contains("Missing required option: '--vdev=xvdb|51728'"), missing::toString);
    }

    /** {@code --xen=linux} means real Xen: where there is none, the commands fail saying so, never simulate. */
    @Test
    void linuxWithoutXenFailsAndSaysWhy() {
        Assumptions.assumeFalse(WireXenStore.availability().isAvailable(), "this host has a xenstore");
        Result r = jtap("attach", "--domid", "1", "--target", "raw:/x.img", "--vdev", "xvdb");
        assertEquals(1, r.code(), r::toString);
        assertTrue(r.err().startsWith("jtap attach: real Xen's xenstore is unavailable (--xen=linux): "), r::toString);
        r = jtap("detach", "--xen=linux", "--domid", "1", "--vdev", "xvdb");
        assertEquals(1, r.code(), r::toString);
        assertTrue(r.err().startsWith("jtap detach: real Xen's xenstore is unavailable (--xen=linux): "), r::toString);
    }
}
