package io.jtap.blkback;

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

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * For a raw image, a flush without data and a plain discard go through io_uring ({@code fdatasync},
 * {@code fallocate(PUNCH_HOLE)}) and answer OKAY with the disk as expected; other fences still go to the workers.
 */
@ExtendWith(SimulatedXenExtension.class)
class EngineFenceTest {
    private static final int SIZE = 8 << 20;
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
    void rawFlushAndDiscardGoThroughTheEngine() throws Exception {
        Path image = fx.createImage("raw", "disk.raw", SIZE);
        BlkbackFixture.Device d = fx.addDevice("raw:" + image, "w", "disk", BlkbackConfig.defaults());
        SimulatedBlkfront f = fx.frontend(d, Features.defaults());
        f.connect();
        byte[] data = BlkbackFixture.pattern(0, 64 << 10, 1);
        f.write(0, 0, data);
        assertEquals(Blkif.BLKIF_RSP_OKAY, f.await(f.submitFlush(0)));
        assertEquals(1, d.backend().engineFences());
        // Punch the middle 16 KiB: reads as zeros, the rest is untouched.
        assertEquals(Blkif.BLKIF_RSP_OKAY, f.await(f.submitDiscard(0, 32, 32, false)));
        assertEquals(2, d.backend().engineFences());
        byte[] expected = data.clone();
        java.util.Arrays.fill(expected, 16 << 10, 32 << 10, (byte) 0);
        assertArrayEquals(expected, f.read(0, 0, data.length / 512));
        // Secure discard (zeroing with fallbacks) stays on the workers.
        assertEquals(Blkif.BLKIF_RSP_OKAY, f.await(f.submitDiscard(0, 0, 8, true)));
        assertEquals(2, d.backend().engineFences());
        java.util.Arrays.fill(expected, 0, 4096, (byte) 0);
        assertArrayEquals(expected, f.read(0, 0, data.length / 512));
        f.disconnect();
    }
}
