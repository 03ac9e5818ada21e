package io.jtap.blkback;

import io.jtap.testkit.blkfront.SimulatedBlkfront;
import io.jtap.testkit.blkfront.SimulatedBlkfront.Features;
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
}
