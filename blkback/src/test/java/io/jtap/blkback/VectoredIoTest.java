package io.jtap.blkback;

import io.jtap.formats.CreateOptions;
import io.jtap.formats.Image;
import io.jtap.formats.ImageFormats;
import io.jtap.formats.OpenOptions;
import io.jtap.ring.blkif.Blkif;
import io.jtap.testkit.blkfront.SimulatedBlkfront;
import io.jtap.testkit.blkfront.SimulatedBlkfront.Features;
import io.jtap.xen.sim.SimulatedXen;
import io.jtap.xen.sim.SimulatedXenExtension;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A 1 MiB request (indirect, 256 segments) over a host-contiguous range becomes one vectored IO with 256 iovecs, not
 * 256 IOs: counted at the engine, for raw and for qcow2 once its clusters are allocated. And a ring full of requests
 * is answered in parts, not all at the end.
 */
@ExtendWith(SimulatedXenExtension.class)
class VectoredIoTest {
    private static final int SIZE = 8 << 20;
    private static final int MIB = 1 << 20;
    private BlkbackFixture fx;

    @BeforeEach
    void setUp(SimulatedXen xen, @TempDir Path dir) throws Exception {
        fx = new BlkbackFixture(xen, dir);
    }

    @AfterEach
    void tearDown() throws Exception {
        fx.close();
    }

    @ParameterizedTest
    @ValueSource(strings = {"raw", "qcow2"})
    void oneMebibyteRequestIsOneVectoredIo(String format) throws Exception {
        Path image = fx.createImage(format, "disk." + format, SIZE);
        BlkbackFixture.Device d = fx.addDevice(format + ":" + image, "w", "disk", BlkbackConfig.defaults());
        SimulatedBlkfront f = fx.frontend(d, Features.defaults());
        f.connect();
        long sector = 2 * MIB / 512;
        byte[] first = BlkbackFixture.pattern(2 * MIB, MIB, 1);
        // Allocates (qcow2): may take more than one IO.
        f.write(0, sector, first);
        byte[] data = BlkbackFixture.pattern(2 * MIB, MIB, 2);
        long before = d.backend().engineIos();
        f.write(0, sector, data);
        assertEquals(1, d.backend().engineIos() - before, "IOs for a 1 MiB overwrite");
        before = d.backend().engineIos();
        assertArrayEquals(data, f.read(0, sector, MIB / 512));
        assertEquals(1, d.backend().engineIos() - before, "IOs for a 1 MiB read");
        f.disconnect();
    }

    /**
     * 32 reads published at once are answered at least eight at a time as they are served: the frontend can refill
     * the ring while the rest are served, instead of waiting for the whole ring's worth.
     */
    @ParameterizedTest
    @ValueSource(strings = {"raw", "qcow2"})
    void aFullRingIsAnsweredInParts(String format) throws Exception {
        Path image = fx.createImage(format, "disk." + format, SIZE);
        BlkbackFixture.Device d = fx.addDevice(format + ":" + image, "w", "disk", BlkbackConfig.defaults());
        SimulatedBlkfront f = fx.frontend(d, Features.defaults());
        f.connect();
        byte[] data = BlkbackFixture.pattern(0, MIB, 3);
        f.write(0, 0, data);
        f.deferPushes(true);
        List<SimulatedBlkfront.Request> reads = new ArrayList<>();
        for (int i = 0; i < 32; i++) {
            reads.add(f.submitRead(0, i * 64L, 8, 0));
        }
        long before = d.backend().responsePushes();
        f.pushRaw(0);
        f.awaitAll();
        f.deferPushes(false);
        assertTrue(d.backend().responsePushes() - before >= 4,
                "response pushes for 32 requests published at once: " + (d.backend().responsePushes() - before));
        for (int i = 0; i < 32; i++) {
            int at = i * 64 * 512;
            assertArrayEquals(Arrays.copyOfRange(data, at, at + 4096), reads.get(i).data(), "read " + i);
        }
        f.disconnect();
    }

    /**
     * A qcow2 overlay over a qcow2 layer over a raw base: reads of clusters the top does not hold go to the image of
     * the chain that does, through the engine (as vectored reads straight into the guest's pages), not through a
     * worker; the data is each layer's.
     */
    @Test
    void readsFromABackingChainGoThroughTheEngine(@TempDir Path dir) throws Exception {
        Path base = dir.resolve("base.raw");
        Path mid = dir.resolve("mid.qcow2");
        Path top = dir.resolve("top.qcow2");
        ImageFormats formats = ImageFormats.defaults();
        formats.get("raw").create(base, CreateOptions.ofSize(SIZE));
        byte[] inBase = BlkbackFixture.pattern(0, SIZE, 1);
        Files.write(base, inBase, StandardOpenOption.WRITE);
        formats.get("qcow2").create(mid, CreateOptions.ofSize(SIZE).withBacking(base.toString(),
                "raw"));
        byte[] inMid = BlkbackFixture.pattern(MIB, MIB, 2);
        try (Image m = formats.get("qcow2").open(mid, OpenOptions.defaults())) {
            m.write(MIB, ByteBuffer.wrap(inMid));
            m.flush();
        }
        formats.get("qcow2").create(top, CreateOptions.ofSize(SIZE).withBacking(mid.toString(),
                "qcow2"));
        BlkbackFixture.Device d = fx.addDevice("qcow2:" + top, "w", "disk", BlkbackConfig.defaults());
        SimulatedBlkfront f = fx.frontend(d, Features.defaults());
        f.connect();
        byte[] inTop = BlkbackFixture.pattern(3 * MIB / 2, 64 * 1024, 3);
        f.write(0, 3 * MIB / 2 / 512, inTop);
        byte[] expected = inBase.clone();
        System.arraycopy(inMid, 0, expected, MIB, MIB);
        System.arraycopy(inTop, 0, expected, 3 * MIB / 2, inTop.length);
        // The first pass loads the layers' L2 tables (on a worker where one is not cached); the second is all
        // through the engine.
        for (int pass = 0; pass < 2; pass++) {
            long reads = d.backend().engineReads();
            for (int at = 0; at < 4 * MIB; at += MIB) {
                assertArrayEquals(Arrays.copyOfRange(expected, at, at + MIB), f.read(0, at / 512, MIB / 512),
                        "MiB at " + at + ", pass " + pass);
            }
            if (pass == 1) {
                assertEquals(4, d.backend().engineReads() - reads, "reads through the engine, of 4");
            }
        }
        f.disconnect();
    }

    /**
     * A read whose qcow2 L2 table is not in the cache yet is not mapped on the ring thread (a metadata read there
     * would stall every request of the ring): a worker serves it, loading the table, and the next read of the range
     * goes through the engine.
     */
    @Test
    void aReadWhoseL2TableIsNotCachedIsMappedByAWorker(@TempDir Path dir) throws Exception {
        Path image = dir.resolve("cold.qcow2");
        ImageFormats.defaults().get("qcow2").create(image, CreateOptions.ofSize(SIZE));
        byte[] data = BlkbackFixture.pattern(2 * MIB, MIB, 4);
        try (Image img = ImageFormats.defaults().get("qcow2").open(image, OpenOptions.defaults())) {
            img.write(2 * MIB, ByteBuffer.wrap(data));
            img.flush();
        }
        BlkbackFixture.Device d = fx.addDevice("qcow2:" + image, "w", "disk", BlkbackConfig.defaults());
        SimulatedBlkfront f = fx.frontend(d, Features.defaults());
        f.connect();
        long deferred = d.backend().mapsDeferred();
        long reads = d.backend().engineReads();
        assertArrayEquals(data, f.read(0, 2 * MIB / 512, MIB / 512), "first read");
        assertEquals(1, d.backend().mapsDeferred() - deferred, "mappings sent to a worker");
        assertEquals(0, d.backend().engineReads() - reads, "reads through the engine");
        assertArrayEquals(data, f.read(0, 2 * MIB / 512, MIB / 512), "second read");
        assertEquals(1, d.backend().mapsDeferred() - deferred, "mappings sent to a worker, after the second read");
        assertEquals(1, d.backend().engineReads() - reads, "reads through the engine, after the second read");
        f.disconnect();
    }

    /**
     * A qcow2 write into clusters the image already owns is mapped on the ring thread and written through the engine
     * with no worker trip; one that allocates is mapped by a worker. Both read back, also after a reopen.
     */
    @Test
    void aQcow2WriteInPlaceIsMappedOnTheRingAndAnAllocatingOneByAWorker(@TempDir Path dir) throws Exception {
        Path image = dir.resolve("inplace.qcow2");
        ImageFormats.defaults().get("qcow2").create(image, CreateOptions.ofSize(SIZE));
        try (Image img = ImageFormats.defaults().get("qcow2").open(image, OpenOptions.defaults())) {
            img.write(MIB, ByteBuffer.wrap(new byte[MIB]));
            img.flush();
        }
        BlkbackFixture.Device d = fx.addDevice("qcow2:" + image, "w", "disk", BlkbackConfig.defaults());
        SimulatedBlkfront f = fx.frontend(d, Features.defaults());
        f.connect();
        // Load the L2 table (a read whose table is not cached goes to a worker, which caches it).
        f.read(0, MIB / 512, 8);
        long onRing = d.backend().writesMappedOnRing();
        long writes = d.backend().engineWrites();
        byte[] owned = BlkbackFixture.pattern(MIB, 256 * 1024, 5);
        f.write(0, (MIB + 64 * 1024) / 512, owned);
        assertEquals(1, d.backend().writesMappedOnRing() - onRing, "the in-place write, mapped on the ring");
        assertEquals(1, d.backend().engineWrites() - writes, "... and written through the engine");
        byte[] fresh = BlkbackFixture.pattern(3 * MIB, 128 * 1024, 6);
        f.write(0, 3 * MIB / 512, fresh);
        assertEquals(1, d.backend().writesMappedOnRing() - onRing, "an allocating write is mapped by a worker");
        assertEquals(2, d.backend().engineWrites() - writes, "... its data through the engine all the same");
        assertArrayEquals(owned, f.read(0, (MIB + 64 * 1024) / 512, owned.length / 512), "in place, read back");
        assertArrayEquals(fresh, f.read(0, 3 * MIB / 512, fresh.length / 512), "allocated, read back");
        assertEquals(Blkif.BLKIF_RSP_OKAY, f.await(f.submitFlush(0)));
        f.disconnect();
        try (Image img = ImageFormats.defaults().get("qcow2").open(image, OpenOptions.defaults())) {
            ByteBuffer back = ByteBuffer.allocate(owned.length);
            img.read(MIB + 64 * 1024, back);
            assertArrayEquals(owned, back.array(), "in place, after a reopen");
            back = ByteBuffer.allocate(fresh.length);
            img.read(3 * MIB, back);
            assertArrayEquals(fresh, back.array(), "allocated, after a reopen");
        }
    }
}
