package io.jtap.blkback;

import io.jtap.formats.CreateOptions;
import io.jtap.formats.ImageFormats;
import io.jtap.testkit.blkfront.SimulatedBlkfront;
import io.jtap.testkit.blkfront.SimulatedToolstack;
import io.jtap.xen.XenPlatform;
import io.jtap.xen.XenStore;
import io.jtap.xen.XenbusState;
import io.jtap.xen.sim.SimulatedDomain;
import io.jtap.xen.sim.SimulatedXen;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * A simulated host for blkback tests: dom0's xenstore connection, a worker pool, images in a temporary directory,
 * and devices with their guests and frontends. Closes everything it made, frontends and devices first.
 */
final class BlkbackFixture implements AutoCloseable {
    final SimulatedXen xen;
    final Path dir;
    final XenStore xs;
    final ExecutorService workers;
    private final List<AutoCloseable> owned = new ArrayList<>();

    BlkbackFixture(SimulatedXen xen, Path dir) throws IOException {
        this.xen = xen;
        this.dir = dir;
        this.xs = xen.platform(SimulatedXen.DOM0).openXenStore();
        this.workers = new ThreadPoolExecutor(4, 4, 0, TimeUnit.SECONDS, new LinkedBlockingQueue<>(), r -> {
            Thread t = new Thread(r, "jtap-blkback-test-worker");
            t.setDaemon(true);
            return t;
        });
    }

    /** Creates an image of {@code size} bytes and returns its path. */
    Path createImage(String format, String name, long size) throws IOException {
        Path p = dir.resolve(name);
        ImageFormats.defaults().get(format).create(p, CreateOptions.ofSize(size));
        return p;
    }

    /** A device (toolstack nodes + backend started) for a new guest. */
    Device addDevice(String params, String mode, String deviceType, BlkbackConfig config) throws IOException {
        return addDevice(params, mode, deviceType, config, ImageFormats.defaults());
    }

    /** A device whose image is opened through {@code formats}. */
    Device addDevice(String params, String mode, String deviceType, BlkbackConfig config, ImageFormats formats)
            throws IOException {
        return addDevice(params, mode, deviceType, config, formats, be -> { });
    }

    /** Edits the backend directory before the backend starts. */
    @FunctionalInterface
    interface BackendEdit {
        void edit(String backendPath) throws IOException;
    }

    Device addDevice(String params, String mode, String deviceType, BlkbackConfig config, ImageFormats formats,
                     BackendEdit edit) throws IOException {
        return addDevice(params, mode, deviceType, config, formats, edit, xs);
    }

    /** A device whose backend talks to xenstore through {@code store} (for example one that injects failures). */
    Device addDevice(String params, String mode, String deviceType, BlkbackConfig config, ImageFormats formats,
                     BackendEdit edit, XenStore store) throws IOException {
        return addDevice(params, mode, deviceType, config, xen.platform(SimulatedXen.DOM0), formats, edit, store);
    }

    /** A device whose backend reaches Xen through {@code platform} (for example one that counts grant maps). */
    Device addDevice(String params, String mode, String deviceType, BlkbackConfig config, XenPlatform platform)
            throws IOException {
        return addDevice(params, mode, deviceType, config, platform, ImageFormats.defaults(), be -> { }, xs);
    }

    private Device addDevice(String params, String mode, String deviceType, BlkbackConfig config,
                             XenPlatform platform, ImageFormats formats, BackendEdit edit, XenStore store)
            throws IOException {
        SimulatedDomain guest = xen.createDomain("guest" + (owned.size() + 1));
        int devid = 51712;
        String be = SimulatedToolstack.addVbd(xs, guest.domid(), devid, params, mode, deviceType);
        edit.edit(be);
        BlkbackDevice device = new BlkbackDevice(platform, store, be, config, formats, workers);
        owned.add(device);
        device.start();
        return new Device(guest, devid, be, device);
    }

    /** A frontend for {@code d}, closed with the fixture (before the backend). */
    SimulatedBlkfront frontend(Device d, SimulatedBlkfront.Features features) throws IOException {
        SimulatedBlkfront f = new SimulatedBlkfront(xen, d.guest, d.devid, features);
        owned.add(f);
        return f;
    }

    record Device(SimulatedDomain guest, int devid, String backendPath, BlkbackDevice backend) {
    }

    /** Self-describing data: each 8-byte word holds {@code tag << 48 | byte offset on the disk}. */
    /**
     * The device's state once it equals {@code want}, or after 10 s whatever it is then. A device records its state
     * after the xenstore write that a frontend waits for has committed, so a test that saw the node change may
     * otherwise look a moment too early.
     */
    static XenbusState awaitState(BlkbackDevice d, XenbusState want) throws InterruptedException {
        long deadline = System.nanoTime() + java.time.Duration.ofSeconds(10).toNanos();
        while (d.state() != want && System.nanoTime() < deadline) {
            Thread.sleep(1);
        }
        return d.state();
    }

    static byte[] pattern(long offset, int length, int tag) {
        ByteBuffer b = ByteBuffer.allocate(length).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < length; i += 8) {
            b.putLong(i, ((long) tag << 48) | (offset + i));
        }
        return b.array();
    }

    @Override
    public void close() throws Exception {
        Exception first = null;
        // Devices before frontends: a device drains and unmaps, then the frontend can end its grants.
        for (int pass = 0; pass < 2; pass++) {
            for (int i = owned.size() - 1; i >= 0; i--) {
                AutoCloseable c = owned.get(i);
                if ((pass == 1) != (c instanceof SimulatedBlkfront)) {
                    continue;
                }
                try {
                    c.close();
                } catch (Exception e) {
                    if (first == null) {
                        first = e;
                    }
                }
            }
        }
        owned.clear();
        workers.shutdownNow();
        workers.awaitTermination(10, TimeUnit.SECONDS);
        xs.close();
        if (first != null) {
            throw first;
        }
    }
}
