package io.jtap.blkback;

import io.jtap.xen.GrantTable;
import io.jtap.xen.sim.GuestPages;
import io.jtap.xen.sim.SimulatedDomain;
import io.jtap.xen.sim.SimulatedXen;
import io.jtap.xen.sim.SimulatedXenExtension;
import org.junit.jupiter.api.Test;
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
}
