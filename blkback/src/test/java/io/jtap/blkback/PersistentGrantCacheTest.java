package io.jtap.blkback;

import io.jtap.xen.GrantTable;
import io.jtap.xen.sim.GuestPages;
import io.jtap.xen.sim.SimulatedDomain;
import io.jtap.xen.sim.SimulatedXen;
import io.jtap.xen.sim.SimulatedXenExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The cache on its own: a request's new grants are one mapping, lookups map nothing, a full cache neither maps nor
 * unmaps until the purge, which is bounded and spares what requests hold, the budget is shared, and a seeded random
 * run matches a reference model.
 */
@ExtendWith(SimulatedXenExtension.class)
class PersistentGrantCacheTest {
    private static final long IDLE_NS = 1_000;

    @Test
    void newGrantsOfARequestAreOneMappingAndEachIsLookedUp(SimulatedXen xen) throws Exception {
        SimulatedDomain guest = xen.createDomain("guest");
        GuestPages pages = guest.allocatePages(4);
        int[] refs = pages.grantAll(0, false);
        CountingGrantTable.Counts counts = new CountingGrantTable.Counts();
        try (GrantTable grants = new CountingGrantTable(xen.platform(0).openGrantTable(), counts);
             PersistentGrantCache cache = new PersistentGrantCache(grants, guest.domid(), 8, IDLE_NS,
                     new PersistentGrantBudget(100))) {
            assertNull(cache.acquire(refs[0], 0), "a lookup maps nothing");
            assertEquals(0, counts.maps());
            assertTrue(cache.mapNew(new int[] {refs[0], refs[1], refs[2]}, 0));
            assertEquals(1, counts.maps(), "one map call for the request's three new grants");
            assertEquals(3, cache.size());
            assertEquals(3, cache.entries());
            assertEquals(1, cache.chunks());
            for (int i = 0; i < 3; i++) {
                PersistentGrantCache.Entry e = cache.acquire(refs[i], 1);
                assertNotNull(e);
                assertEquals(refs[i], e.gref);
                assertEquals(GrantTable.PAGE_SIZE, e.page.capacity());
                // The entry's page is the guest's page.
                e.page.putLong(8, 0x1234_0000L + i);
                assertEquals(0x1234_0000L + i, pages.page(i).getLong(8));
                cache.release(e);
            }
            assertFalse(cache.contains(refs[3]));
            assertEquals(1, counts.maps(), "hits map nothing");
        }
        for (int ref : refs) {
            assertEquals(0, guest.mapCount(ref));
        }
    }

    @Test
    void aFullCacheNeitherMapsNorUnmapsUntilThePurge(SimulatedXen xen) throws Exception {
        SimulatedDomain guest = xen.createDomain("guest");
        int[] refs = guest.allocatePages(5).grantAll(0, false);
        CountingGrantTable.Counts counts = new CountingGrantTable.Counts();
        try (GrantTable grants = new CountingGrantTable(xen.platform(0).openGrantTable(), counts);
             PersistentGrantCache cache = new PersistentGrantCache(grants, guest.domid(), 4, IDLE_NS,
                     new PersistentGrantBudget(100))) {
            assertTrue(cache.mapNew(new int[] {refs[0], refs[1]}, 0));
            assertTrue(cache.mapNew(new int[] {refs[2], refs[3]}, 1));
            PersistentGrantCache.Entry held = cache.acquire(refs[3], 2);
            assertFalse(cache.mapNew(new int[] {refs[4]}, 3), "full: the caller maps for the request");
            assertEquals(2, counts.maps(), "no map for a grant that found no room");
            for (int i = 0; i < 4; i++) {
                assertEquals(1, guest.mapCount(refs[i]), "nothing unmapped on the request path: ref " + i);
            }
            // The purge unmaps the least recently used chunk that no request holds: {0, 1}.
            assertEquals(2, cache.purge(4));
            assertEquals(0, guest.mapCount(refs[0]));
            assertEquals(0, guest.mapCount(refs[1]));
            assertEquals(2, cache.size());
            assertTrue(cache.mapNew(new int[] {refs[4]}, 5));
            assertSame(held, cache.acquire(refs[3], 6));
            cache.release(held);
            cache.release(held);
        }
    }

    @Test
    void aPurgePassUnderPressureUnmapsABoundedShareOfTheLeastRecentlyUsed(SimulatedXen xen) throws Exception {
        SimulatedDomain guest = xen.createDomain("guest");
        int capacity = 100;
        int[] refs = guest.allocatePages(capacity + 1).grantAll(0, false);
        try (GrantTable grants = xen.platform(0).openGrantTable();
             PersistentGrantCache cache = new PersistentGrantCache(grants, guest.domid(), capacity, IDLE_NS,
                     new PersistentGrantBudget(1000))) {
            for (int i = 0; i < capacity; i++) {
                assertTrue(cache.mapNew(new int[] {refs[i]}, i));
            }
            assertEquals(0, cache.purge(capacity), "no pressure, nothing idle: nothing to do");
            assertFalse(cache.mapNew(new int[] {refs[capacity]}, capacity));
            int batch = capacity * PersistentGrantCache.PURGE_PERCENT / 100;
            assertEquals(batch, cache.purge(capacity));
            assertEquals(capacity - batch, cache.size());
            for (int i = 0; i < capacity; i++) {
                assertEquals(i < batch ? 0 : 1, guest.mapCount(refs[i]), "the eldest go first: ref " + i);
            }
            assertEquals(0, cache.purge(capacity), "the pressure was answered");
        }
    }

    @Test
    void chunksInUseAreNeverUnmappedAndIdleOnesAre(SimulatedXen xen) throws Exception {
        SimulatedDomain guest = xen.createDomain("guest");
        int[] refs = guest.allocatePages(4).grantAll(0, false);
        try (GrantTable grants = xen.platform(0).openGrantTable();
             PersistentGrantCache cache = new PersistentGrantCache(grants, guest.domid(), 3, IDLE_NS,
                     new PersistentGrantBudget(100))) {
            assertTrue(cache.mapNew(new int[] {refs[0], refs[1]}, 0));
            assertTrue(cache.mapNew(new int[] {refs[2]}, 10));
            PersistentGrantCache.Entry held = cache.acquire(refs[1], 20);
            assertFalse(cache.mapNew(new int[] {refs[3], refs[3]}, 30));
            // Under pressure, the least recently used chunk not in use is {2}; {0, 1} is held.
            assertEquals(1, cache.purge(40));
            assertEquals(1, guest.mapCount(refs[0]));
            assertEquals(0, cache.purge(20 + IDLE_NS + 1), "idle but held");
            cache.release(held);
            assertEquals(0, cache.purge(20 + IDLE_NS), "not idle for longer than the idle time yet");
            assertEquals(2, cache.purge(20 + IDLE_NS + 1));
            assertEquals(0, cache.size());
            assertEquals(0, cache.entries());
        }
        for (int ref : refs) {
            assertEquals(0, guest.mapCount(ref));
        }
    }

    @Test
    void aGrantNamedTwiceIsMappedTwiceAndLookedUpOnce(SimulatedXen xen) throws Exception {
        SimulatedDomain guest = xen.createDomain("guest");
        int[] refs = guest.allocatePages(2).grantAll(0, false);
        try (GrantTable grants = xen.platform(0).openGrantTable();
             PersistentGrantCache cache = new PersistentGrantCache(grants, guest.domid(), 8, IDLE_NS,
                     new PersistentGrantBudget(100))) {
            assertTrue(cache.mapNew(new int[] {refs[0], refs[1], refs[0]}, 0));
            assertEquals(3, cache.size(), "pages mapped");
            assertEquals(2, cache.entries(), "grants found");
            assertEquals(2, guest.mapCount(refs[0]));
        }
        assertEquals(0, guest.mapCount(refs[0]));
    }

    @Test
    void theBudgetIsSharedByTheCachesAndGivenBackOnClose(SimulatedXen xen) throws Exception {
        SimulatedDomain guest = xen.createDomain("guest");
        int[] refs = guest.allocatePages(6).grantAll(0, false);
        PersistentGrantBudget budget = new PersistentGrantBudget(4);
        try (GrantTable grants = xen.platform(0).openGrantTable();
             PersistentGrantCache a = new PersistentGrantCache(grants, guest.domid(), 4, IDLE_NS, budget);
             PersistentGrantCache b = new PersistentGrantCache(grants, guest.domid(), 4, IDLE_NS, budget)) {
            assertTrue(a.mapNew(new int[] {refs[0], refs[1], refs[2]}, 0));
            assertFalse(b.mapNew(new int[] {refs[3], refs[4]}, 0), "b has room, the budget has not");
            assertEquals(0, guest.mapCount(refs[3]));
            assertTrue(b.mapNew(new int[] {refs[3]}, 0));
            assertEquals(4, budget.used());
            assertEquals(3, a.purge(IDLE_NS + 1), "idle");
            assertEquals(1, budget.used());
            assertTrue(b.mapNew(new int[] {refs[4], refs[5]}, IDLE_NS + 1));
        }
        assertEquals(0, budget.used());
    }

    /**
     * Seeded random lookups, releases, new chunks and purges against a reference model (the chunks in order of last
     * use, each with its refs, users and time of last use): same hits, same room, same pages unmapped, and each
     * grant mapped exactly as often as the live chunks name it.
     */
    @Test
    void matchesAChunkModel(SimulatedXen xen) throws Exception {
        long seed = Long.getLong("jtap.seed", System.nanoTime());
        System.out.println("PersistentGrantCacheTest seed=" + seed);
        Random rnd = new Random(seed);
        SimulatedDomain guest = xen.createDomain("guest");
        int[] refs = guest.allocatePages(48).grantAll(0, false);
        int capacity = 16;
        long idle = 50;
        int purgeBatch = Math.max(1, capacity * PersistentGrantCache.PURGE_PERCENT / 100);
        LinkedHashMap<Integer, ModelChunk> order = new LinkedHashMap<>(); // eldest first
        Map<Integer, Integer> chunkOf = new HashMap<>();
        List<PersistentGrantCache.Entry> held = new ArrayList<>();
        int[] size = {0};
        boolean pressure = false;
        int nextChunk = 0;
        PersistentGrantBudget budget = new PersistentGrantBudget(1000);
        try (GrantTable grants = xen.platform(0).openGrantTable();
             PersistentGrantCache cache = new PersistentGrantCache(grants, guest.domid(), capacity, idle, budget)) {
            for (long now = 0; now < 5_000; now++) {
                int op = rnd.nextInt(10);
                if (op < 4) {
                    int gref = refs[rnd.nextInt(refs.length)];
                    PersistentGrantCache.Entry e = cache.acquire(gref, now);
                    Integer id = chunkOf.get(gref);
                    if (id == null) {
                        assertNull(e, "seed=" + seed);
                        continue;
                    }
                    assertNotNull(e, "seed=" + seed);
                    assertEquals(gref, e.gref, "seed=" + seed);
                    ModelChunk c = order.remove(id);
                    order.put(id, c);
                    c.users++;
                    c.lastUsed = now;
                    held.add(e);
                } else if (op < 7 && !held.isEmpty()) {
                    PersistentGrantCache.Entry e = held.remove(rnd.nextInt(held.size()));
                    cache.release(e);
                    order.get(chunkOf.get(e.gref)).users--;
                } else if (op < 9) {
                    int n = 1 + rnd.nextInt(6);
                    int[] fresh = new int[n];
                    for (int i = 0; i < n; i++) {
                        int gref;
                        do {
                            gref = refs[rnd.nextInt(refs.length)];
                        } while (chunkOf.containsKey(gref));
                        // Now and then a request names a grant twice.
                        fresh[i] = i > 0 && rnd.nextInt(8) == 0 ? fresh[i - 1] : gref;
                    }
                    boolean room = size[0] + n <= capacity;
                    assertEquals(room, cache.mapNew(fresh, now), "seed=" + seed);
                    if (room) {
                        int id = nextChunk++;
                        order.put(id, new ModelChunk(fresh, now));
                        for (int gref : fresh) {
                            chunkOf.put(gref, id);
                        }
                        size[0] += n;
                    } else {
                        pressure |= n <= capacity;
                    }
                } else {
                    int expected = 0;
                    Iterator<Map.Entry<Integer, ModelChunk>> it = order.entrySet().iterator();
                    while (it.hasNext()) {
                        ModelChunk c = it.next().getValue();
                        if (now - c.lastUsed <= idle) {
                            break;
                        }
                        if (c.users == 0) {
                            expected += forget(it, c, chunkOf, size);
                        }
                    }
                    if (pressure) {
                        pressure = false;
                        int lru = 0;
                        it = order.entrySet().iterator();
                        while (it.hasNext() && lru < purgeBatch) {
                            ModelChunk c = it.next().getValue();
                            if (c.users == 0) {
                                lru += forget(it, c, chunkOf, size);
                            }
                        }
                        expected += lru;
                    }
                    assertEquals(expected, cache.purge(now), "seed=" + seed);
                }
                assertEquals(size[0], cache.size(), "seed=" + seed);
                assertTrue(cache.size() <= capacity, "seed=" + seed);
                assertEquals(chunkOf.size(), cache.entries(), "seed=" + seed);
                assertEquals(order.size(), cache.chunks(), "seed=" + seed);
                assertEquals(size[0], budget.used(), "seed=" + seed);
            }
            for (int ref : refs) {
                int expected = 0;
                for (ModelChunk c : order.values()) {
                    for (int r : c.refs) {
                        expected += r == ref ? 1 : 0;
                    }
                }
                assertEquals(expected, guest.mapCount(ref), "seed=" + seed);
            }
            for (PersistentGrantCache.Entry e : held) {
                cache.release(e);
            }
        }
        assertEquals(0, budget.used());
        for (int ref : refs) {
            assertEquals(0, guest.mapCount(ref));
        }
    }

    /** The model of a chunk: the refs mapped together, the requests using them, and when they were last used. */
    private static final class ModelChunk {
        final int[] refs;
        int users;
        long lastUsed;

        ModelChunk(int[] refs, long now) {
            this.refs = refs;
            this.lastUsed = now;
        }
    }

    /** Removes the model chunk {@code it} is at; returns its pages. */
    private static int forget(Iterator<Map.Entry<Integer, ModelChunk>> it, ModelChunk c,
                              Map<Integer, Integer> chunkOf, int[] size) {
        it.remove();
        for (int r : c.refs) {
            chunkOf.remove(r);
        }
        size[0] -= c.refs.length;
        return c.refs.length;
    }
}
