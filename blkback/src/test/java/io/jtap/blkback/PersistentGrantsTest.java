package io.jtap.blkback;

import io.jtap.ring.blkif.Blkif;
import io.jtap.testkit.blkfront.SimulatedBlkfront;
import io.jtap.testkit.blkfront.SimulatedBlkfront.Features;
import io.jtap.testkit.blkfront.SimulatedBlkfront.Request;
import io.jtap.xen.sim.SimulatedXen;
import io.jtap.xen.sim.SimulatedXenExtension;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Persistent grants through a whole device, with Linux blkfront's default request shape (32 segments, 128 KiB, plus
 * the indirect page: 33 grants) and its last-in first-out reuse of grants, counted through the grant table: a
 * working set larger than the cache costs at most one map call per request (never one per page), the cache never
 * holds more than its limit or the budget, a working set that fits is served without any map or copy, and the data
 * is right through persistent and per-request pages alike.
 */
@ExtendWith(SimulatedXenExtension.class)
class PersistentGrantsTest {
    /** Linux blkfront's default {@code max_indirect_segments}. */
    private static final int SEGMENTS = 32;
    private static final int SECTORS = SEGMENTS * 8;
    private static final int GRANTS_PER_REQUEST = SEGMENTS + 1;
    /** 16 MiB: 128 requests' worth. */
    private static final int SIZE = 16 << 20;
    private static final int SLOTS = SIZE / (SECTORS * 512);

    private SimulatedXen xen;
    private BlkbackFixture fx;
    private final CountingGrantTable.Counts counts = new CountingGrantTable.Counts();

    @BeforeEach
    void setUp(SimulatedXen xen, @TempDir Path dir) throws Exception {
        this.xen = xen;
        fx = new BlkbackFixture(xen, dir);
    }

    @AfterEach
    void tearDown() throws Exception {
        fx.close();
    }

    /** A device whose image holds {@link #expected} data in every slot, its grant calls counted. */
    private BlkbackFixture.Device device(BlkbackConfig config) throws Exception {
        Path image = fx.createImage("raw", "disk.raw", SIZE);
        try (FileChannel ch = FileChannel.open(image, StandardOpenOption.WRITE)) {
            for (int slot = 0; slot < SLOTS; slot++) {
                long sector = (long) slot * SECTORS;
                ch.write(ByteBuffer.wrap(expected(sector)), sector * 512);
            }
        }
        return fx.addDevice("raw:" + image, "w", "disk", config,
                CountingGrantTable.platform(xen.platform(SimulatedXen.DOM0), counts));
    }

    /**
     * What {@link #run} did: requests, the map and copy calls they cost, and the most pages the backend held
     * persistently after a round (a purge pass under pressure may empty a small cache between rounds).
     */
    private record Run(int requests, long maps, long copies, int mostPersistent) {
    }

    /**
     * {@code rounds} rounds of {@code depth} requests in flight per queue, each a 128 KiB write or read of its own slot
     * (in the first {@code writeRounds} rewrites of the self-describing data the image holds, then reads checked
     * against it); after each round the backend's persistent pages are checked against {@code limit}.
     */
    private Run run(SimulatedBlkfront f, BlkbackFixture.Device d, int depth, int rounds, int writeRounds, int limit)
            throws Exception {
        long maps = counts.maps();
        long copies = counts.copies();
        int requests = 0;
        int next = 0;
        int most = 0;
        for (int round = 0; round < rounds; round++) {
            List<Request> inFlight = new ArrayList<>();
            List<Long> sectors = new ArrayList<>();
            for (int q = 0; q < f.queueCount(); q++) {
                for (int k = 0; k < depth; k++) {
                    long sector = (long) (next++ % SLOTS) * SECTORS;
                    sectors.add(sector);
                    inFlight.add(round < writeRounds
                            ? f.submitWrite(q, Blkif.BLKIF_OP_WRITE, sector, expected(sector), 0)
                            : f.submitRead(q, sector, SECTORS, 0));
                }
            }
            for (int i = 0; i < inFlight.size(); i++) {
                Request r = inFlight.get(i);
                assertEquals(Blkif.BLKIF_RSP_OKAY, f.await(r), "request " + r.id());
                if (round >= writeRounds) {
                    assertArrayEquals(expected(sectors.get(i)), r.data(), "data at sector " + sectors.get(i));
                }
            }
            requests += inFlight.size();
            int mapped = d.backend().persistentGrants();
            assertTrue(mapped <= limit, "persistent pages over the limit: mapped=" + mapped + ", limit=" + limit);
            most = Math.max(most, mapped);
        }
        return new Run(requests, counts.maps() - maps, counts.copies() - copies, most);
    }

    private static byte[] expected(long sector) {
        return BlkbackFixture.pattern(sector * 512, SECTORS * 512, 7);
    }

    /**
     * 16 requests of 33 grants in flight (528 grants, blkfront's working set) against a cache of 132: the old policy
     * evicted and mapped one page per miss, about 33 map calls per request; now a request's new grants are one map
     * call, persistent or not.
     */
    @Test
    void aWorkingSetLargerThanTheCacheCostsAtMostOneMapPerRequest() throws Exception {
        int capacity = 4 * GRANTS_PER_REQUEST;
        BlkbackFixture.Device d = device(BlkbackConfig.defaults().withMaxPersistentGrants(capacity));
        SimulatedBlkfront f = fx.frontend(d, Features.defaults().withIndirect(SEGMENTS));
        f.connect();
        Run run = run(f, d, 16, 24, 8, capacity);
        assertTrue(run.maps() <= run.requests(), "map calls: maps=" + run.maps() + ", requests=" + run.requests());
        assertTrue(run.copies() <= run.requests(), "copy calls (indirect pages): copies=" + run.copies()
                + ", requests=" + run.requests());
        assertTrue(run.mostPersistent() > 0, "some grants stayed persistent");
        f.disconnect();
        assertEquals(0, f.grantsStillMapped());
    }

    /** Two rings whose own limits would allow 4 x 528 pages share a budget of 100: together they never exceed it. */
    @Test
    void theBudgetBoundsAllRingsTogether() throws Exception {
        int budget = 100;
        BlkbackFixture.Device d = device(BlkbackConfig.defaults().withMaxPersistentGrants(4 * 528)
                .withMaxPersistentGrantsTotal(budget));
        SimulatedBlkfront f = fx.frontend(d, Features.defaults().withIndirect(SEGMENTS).withQueues(2));
        f.connect();
        assertEquals(2, f.queueCount());
        Run run = run(f, d, 8, 12, 4, budget);
        assertTrue(run.maps() <= run.requests(), "map calls: maps=" + run.maps() + ", requests=" + run.requests());
        assertTrue(run.mostPersistent() > 0, "some grants stayed persistent");
        f.disconnect();
    }

    /**
     * 8 requests of 33 grants in flight (264) against Linux blkback's 1056: once each grant has been seen, requests
     * are served by persistent grants alone, indirect pages included: no map call, no copy.
     */
    @Test
    void aWorkingSetWithinTheCacheIsServedWithoutMapsOrCopies() throws Exception {
        BlkbackFixture.Device d = device(BlkbackConfig.defaults().withMaxPersistentGrants(32 * GRANTS_PER_REQUEST));
        SimulatedBlkfront f = fx.frontend(d, Features.defaults().withIndirect(SEGMENTS));
        f.connect();
        Run warm = run(f, d, 8, 4, 2, Integer.MAX_VALUE);
        assertTrue(warm.maps() > 0, "the first requests map their grants");
        Run steady = run(f, d, 8, 12, 0, 32 * GRANTS_PER_REQUEST);
        assertEquals(0, steady.maps(), "map calls once warm, requests=" + steady.requests());
        assertEquals(0, steady.copies(), "copy calls once warm, requests=" + steady.requests());
        assertTrue(d.backend().persistentGrants() <= 8 * GRANTS_PER_REQUEST,
                "no more than the working set: " + d.backend().persistentGrants());
        f.disconnect();
    }
}
