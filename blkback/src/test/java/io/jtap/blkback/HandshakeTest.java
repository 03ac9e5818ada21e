package io.jtap.blkback;

import io.jtap.ring.blkif.BlkifAbi;
import io.jtap.testkit.blkfront.SimulatedBlkfront.Features;
import io.jtap.testkit.blkfront.SimulatedBlkfront;
import io.jtap.xen.XenbusState;
import io.jtap.xen.sim.SimulatedXen;
import io.jtap.xen.sim.SimulatedXenExtension;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Path;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** The xenbus handshake with each frontend feature on and off, and a data round trip over the result. */
@ExtendWith(SimulatedXenExtension.class)
class HandshakeTest {
    private static final long SIZE = 16L << 20;
    private BlkbackFixture fx;

    @BeforeEach
    void setUp(SimulatedXen xen, @TempDir Path dir) throws Exception {
        fx = new BlkbackFixture(xen, dir);
    }

    @AfterEach
    void tearDown() throws Exception {
        fx.close();
    }

    static Stream<Arguments> features() {
        Features d = Features.defaults();
        return Stream.of(
                Arguments.of("defaults", d),
                Arguments.of("no persistent", d.withPersistent(false)),
                Arguments.of("no indirect", d.withIndirect(0)),
                Arguments.of("ring order 4", d.withRingPageOrder(4)),
                Arguments.of("ring order 2, 4 queues", d.withRingPageOrder(2).withQueues(4)),
                Arguments.of("x86_32", d.withAbi(BlkifAbi.X86_32)),
                Arguments.of("everything off", d.withPersistent(false).withIndirect(0)));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("features")
    void handshakeNegotiatesAndServes(String name, Features features) throws Exception {
        Path image = fx.createImage("raw", "disk.raw", SIZE);
        BlkbackFixture.Device d = fx.addDevice(image.toString(), "w", "disk", BlkbackConfig.defaults());
        assertEquals(XenbusState.InitWait, BlkbackFixture.awaitState(d.backend(), XenbusState.InitWait));
        SimulatedBlkfront f = fx.frontend(d, features);
        f.connect();
        assertEquals(XenbusState.Connected, BlkbackFixture.awaitState(d.backend(), XenbusState.Connected));
        assertEquals("1", f.backendNode("feature-flush-cache").orElseThrow());
        assertEquals("1", f.backendNode("feature-barrier").orElseThrow());
        assertEquals("1", f.backendNode("feature-discard").orElseThrow());
        assertEquals("4096", f.backendNode("discard-granularity").orElseThrow());
        assertEquals("256", f.backendNode("feature-max-indirect-segments").orElseThrow());
        assertEquals("4", f.backendNode("max-ring-page-order").orElseThrow());
        assertEquals("4", f.backendNode("multi-queue-max-queues").orElseThrow());
        assertEquals("512", f.backendNode("sector-size").orElseThrow());
        assertEquals("0", f.backendNode("info").orElseThrow());
        assertEquals(SIZE / 512, f.sectors());
        assertEquals(features.persistent(), f.persistent());
        assertEquals(features.queues(), d.backend().queueCount());

        for (int q = 0; q < f.queueCount(); q++) {
            long sector = 2048L * (q + 1);
            byte[] small = BlkbackFixture.pattern(sector * 512, 4096, q + 1);
            f.write(q, sector, small);
            assertArrayEquals(small, f.read(q, sector, 8));
            // 160 KiB: indirect when negotiated, else split by the caller
            int big = features.maxIndirectSegments() > 0 ? 40 * 4096 : 11 * 4096;
            byte[] data = BlkbackFixture.pattern(sector * 512 + 8192, big, q + 1);
            f.write(q, sector + 16, data);
            assertArrayEquals(data, f.read(q, sector + 16, big / 512));
        }
        if (features.persistent()) {
            org.junit.jupiter.api.Assertions.assertTrue(d.backend().persistentGrants() > 0);
        } else {
            assertEquals(0, d.backend().persistentGrants());
        }
        f.disconnect();
        assertEquals(XenbusState.Closed, BlkbackFixture.awaitState(d.backend(), XenbusState.Closed));
        assertEquals(0, f.grantsStillMapped());
    }

    @Test
    void readOnlyCdromAdvertisesInfoAndNoDiscard() throws Exception {
        Path image = fx.createImage("raw", "cd.iso", SIZE);
        BlkbackFixture.Device d = fx.addDevice("raw:" + image, "r", "cdrom", BlkbackConfig.defaults());
        SimulatedBlkfront f = fx.frontend(d, Features.defaults());
        f.connect();
        assertEquals("5", f.backendNode("info").orElseThrow()); // VDISK_CDROM | VDISK_READONLY
        assertEquals("0", f.backendNode("feature-discard").orElseThrow());
        f.disconnect();
    }

    @Test
    void qcow2DiscardGranularityIsTheClusterSize() throws Exception {
        Path image = fx.createImage("qcow2", "disk.qcow2", SIZE);
        BlkbackFixture.Device d = fx.addDevice("qcow2:" + image, "w", "disk", BlkbackConfig.defaults());
        SimulatedBlkfront f = fx.frontend(d, Features.defaults());
        f.connect();
        int cluster = ((io.jtap.formats.qcow2.Qcow2Image) d.backend().image()).clusterSize();
        assertEquals(65536, cluster);
        assertEquals(Integer.toString(cluster), f.backendNode("discard-granularity").orElseThrow());
        f.disconnect();
    }
}
