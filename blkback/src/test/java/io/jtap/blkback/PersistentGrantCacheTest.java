package io.jtap.blkback;

import io.jtap.xen.GrantTable;
import io.jtap.xen.sim.GuestPages;
import io.jtap.xen.sim.SimulatedDomain;
import io.jtap.xen.sim.SimulatedXen;
import io.jtap.xen.sim.SimulatedXenExtension;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.extension.ExtendWith;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;

/** LRU eviction of unused entries, refusal when all are in use, idle purge, and unmapping on close. */
@ExtendWith(SimulatedXenExtension.class)
class PersistentGrantCacheTest {

    @Test
    void boundedLruWithIdlePurge(SimulatedXen xen) throws Exception {
        SimulatedDomain guest = xen.createDomain("guest");
        GuestPages pages = guest.allocatePages(4);
        int[] refs = pages.grantAll(0, false);
        try (GrantTable grants = xen.platform(0).openGrantTable();
             PersistentGrantCache cache = new PersistentGrantCache(grants, guest.domid(), 2, 1_000)) {
            PersistentGrantCache.Entry a = cache.acquire(refs[0], 0);
            PersistentGrantCache.Entry b = cache.acquire(refs[1], 1);
            assertSame(a, cache.acquire(refs[0], 2));
            assertEquals(2, guest.mapCount(refs[0]) + guest.mapCount(refs[1]));
            // Both in use: no room, the caller maps per request.
            assertNull(cache.acquire(refs[2], 3));
            cache.release(a);
            cache.release(a);
            cache.release(b);
            // b is now the least recently used (a was used at 2).
            assertNotNull(cache.acquire(refs[2], 4));
            assertEquals(0, guest.mapCount(refs[1]));
            assertEquals(2, cache.size());
            // a idle since 2, c in use: only a goes.
            assertEquals(1, cache.purgeIdle(2 + 1_001));
            assertEquals(1, cache.size());
            assertEquals(0, guest.mapCount(refs[0]));
        }
        for (int ref : refs) {
            assertEquals(0, guest.mapCount(ref));
        }
    }

    /**
     * Seeded random acquires, releases and purges against a reference model (an access-ordered LinkedHashMap, what
     * the cache used before it became allocation-free): same entries, same evictions, same refusals.
     */
    @Test
    void matchesAnAccessOrderedMapModel(SimulatedXen xen) throws Exception {
        long seed = Long.getLong("jtap.seed", System.nanoTime());
        System.out.println("PersistentGrantCacheTest seed=" + seed);
        Random rnd = new Random(seed);
        SimulatedDomain guest = xen.createDomain("guest");
        GuestPages pages = guest.allocatePages(48);
        int[] refs = pages.grantAll(0, false);
        int capacity = 16;
        Map<Integer, int[]> state = new HashMap<>(); // gref -> {users, lastUsed}
        Map<Integer, Boolean> order = new LinkedHashMap<>(16, 0.75f, true); // eldest first
        List<PersistentGrantCache.Entry> held = new ArrayList<>();
        try (GrantTable grants = xen.platform(0).openGrantTable();
             PersistentGrantCache cache = new PersistentGrantCache(grants, guest.domid(), capacity, 50)) {
            for (int now = 0; now < 5_000; now++) {
                int op = rnd.nextInt(10);
                if (op < 6) {
                    int gref = refs[rnd.nextInt(refs.length)];
                    boolean known = state.containsKey(gref);
                    Integer victim = known || state.size() < capacity ? null : order.keySet().stream()
                            .filter(k -> state.get(k)[0] == 0).findFirst().orElse(null);
                    boolean expectRoom = known || state.size() < capacity || victim != null;
                    PersistentGrantCache.Entry e = cache.acquire(gref, now);
                    if (!expectRoom) {
                        assertNull(e, "seed=" + seed);
                        continue;
                    }
                    if (victim != null) {
                        state.remove(victim);
                        order.remove(victim);
                        assertEquals(0, guest.mapCount(victim), "seed=" + seed);
                    }
                    assertNotNull(e, "seed=" + seed);
                    assertEquals(gref, e.gref, "seed=" + seed);
                    int[] v = state.computeIfAbsent(gref, k -> new int[2]);
                    order.put(gref, Boolean.TRUE);
                    v[0]++;
                    v[1] = now;
                    held.add(e);
                } else if (op < 9 && !held.isEmpty()) {
                    PersistentGrantCache.Entry e = held.remove(rnd.nextInt(held.size()));
                    cache.release(e);
                    state.get(e.gref)[0]--;
                } else {
                    int expected = 0;
                    for (var it = state.entrySet().iterator(); it.hasNext(); ) {
                        var x = it.next();
                        if (x.getValue()[0] == 0 && now - x.getValue()[1] > 50) {
                            it.remove();
                            order.remove(x.getKey());
                            expected++;
                        }
                    }
                    assertEquals(expected, cache.purgeIdle(now), "seed=" + seed);
                }
                assertEquals(state.size(), cache.size(), "seed=" + seed);
            }
            for (int ref : refs) {
                assertEquals(state.containsKey(ref) ? 1 : 0, guest.mapCount(ref), "seed=" + seed);
            }
            for (PersistentGrantCache.Entry e : held) {
                cache.release(e);
            }
        }
        for (int ref : refs) {
            assertEquals(0, guest.mapCount(ref));
        }
    }
}
