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

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * A 1 MiB request (indirect, 256 segments) over a host-contiguous range becomes one vectored IO with 256 iovecs, not
 * 256 IOs: counted at the engine, for raw and for qcow2 once its clusters are allocated.
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
}
