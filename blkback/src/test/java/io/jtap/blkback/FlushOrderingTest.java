package io.jtap.blkback;

import io.jtap.ring.blkif.Blkif;
import io.jtap.testkit.blkfront.SimulatedBlkfront;
import io.jtap.testkit.blkfront.SimulatedBlkfront.Features;
import io.jtap.testkit.blkfront.SimulatedBlkfront.Request;
import io.jtap.xen.sim.SimulatedXen;
import io.jtap.xen.sim.SimulatedXenExtension;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A flush (or barrier) is a fence: the image's flush starts only after every write consumed before it has
 * completed, so its response covers them all; writes consumed after it start only after it has finished.
 */
@ExtendWith(SimulatedXenExtension.class)
class FlushOrderingTest {
    private BlkbackFixture fx;

    @BeforeEach
    void setUp(SimulatedXen xen, @TempDir Path dir) throws Exception {
        fx = new BlkbackFixture(xen, dir);
    }

    @AfterEach
    void tearDown() throws Exception {
        fx.close();
    }

    /** Linux blkfront sends a FUA write as a barrier or flush with segments: the data is written, then durable. */
    @ParameterizedTest(name = "operation {0}")
    @ValueSource(ints = {Blkif.BLKIF_OP_FLUSH_DISKCACHE, Blkif.BLKIF_OP_WRITE_BARRIER})
    void flushOrBarrierWithDataWritesItDurably(int op) throws Exception {
        RecordingFormat recording = new RecordingFormat();
        Path image = fx.createImage("raw", "disk.raw", 4 << 20);
        BlkbackFixture.Device d = fx.addDevice("recording:" + image, "w", "disk", BlkbackConfig.defaults(),
                recording.registry());
        SimulatedBlkfront f = fx.frontend(d, Features.defaults());
        f.connect();
        byte[] data = BlkbackFixture.pattern(4096 * 512L, 11 * 4096, 4);
        assertEquals(Blkif.BLKIF_RSP_OKAY, f.await(f.submitWrite(0, op, 4096, data, 0)));
        List<String> events = List.copyOf(recording.events);
        int written = events.indexOf("write-done " + 4096 * 512L);
        assertTrue(written >= 0 && events.subList(written, events.size()).contains("flush-done"), events::toString);
        org.junit.jupiter.api.Assertions.assertArrayEquals(data, f.read(0, 4096, 88));
        f.disconnect();
    }

    @ParameterizedTest(name = "operation {0}")
    @ValueSource(ints = {Blkif.BLKIF_OP_FLUSH_DISKCACHE, Blkif.BLKIF_OP_WRITE_BARRIER})
    void fenceWaitsForEarlierWritesAndHoldsBackLaterOnes(int fenceOp) throws Exception {
        RecordingFormat recording = new RecordingFormat();
        Path image = fx.createImage("raw", "disk.raw", 4 << 20);
        BlkbackFixture.Device d = fx.addDevice("recording:" + image, "w", "disk", BlkbackConfig.defaults(),
                recording.registry());
        SimulatedBlkfront f = fx.frontend(d, Features.defaults().withRingPageOrder(1));
        f.connect();
        List<Request> requests = new ArrayList<>();
        for (int i = 0; i < 24; i++) {
            requests.add(f.submitWrite(0, Blkif.BLKIF_OP_WRITE, i * 16L, BlkbackFixture.pattern(i * 8192L, 4096, 1),
                    0));
        }
        Request fence = fenceOp == Blkif.BLKIF_OP_FLUSH_DISKCACHE ? f.submitFlush(0)
                : f.submitWrite(0, Blkif.BLKIF_OP_WRITE_BARRIER, 1000, BlkbackFixture.pattern(512000, 4096, 2), 0);
        for (int i = 0; i < 8; i++) {
            requests.add(f.submitWrite(0, Blkif.BLKIF_OP_WRITE, 2000 + i * 16L,
                    BlkbackFixture.pattern(1024000 + i * 8192L, 4096, 3), 0));
        }
        assertEquals(Blkif.BLKIF_RSP_OKAY, f.await(fence));
        f.awaitAll();
        for (Request r : requests) {
            assertEquals(Blkif.BLKIF_RSP_OKAY, r.status());
        }
        List<String> events = List.copyOf(recording.events);
        int firstFlush = events.indexOf("flush-start");
        int lastFlushDone = events.lastIndexOf("flush-done");
        assertTrue(firstFlush > 0, events.toString());
        for (int i = 0; i < 24; i++) {
            int done = events.indexOf("write-done " + i * 8192L);
            assertTrue(done >= 0 && done < firstFlush, "earlier write " + i + " done before the flush: " + events);
        }
        for (int i = 0; i < 8; i++) {
            int start = events.indexOf("write-start " + (2000 + i * 16L) * 512);
            assertTrue(start > lastFlushDone, "later write " + i + " started after the fence: " + events);
        }
        f.disconnect();
    }
}
