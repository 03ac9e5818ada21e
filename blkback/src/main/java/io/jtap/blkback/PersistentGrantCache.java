package io.jtap.blkback;

import io.jtap.xen.GrantMapping;
import io.jtap.xen.GrantTable;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * A ring's persistent grants: single-page writable mappings of the frontend's data pages, kept after the request
 * that brought them and reused when the frontend names the same grant again (Linux blkback:
 * {@code persistent_gnts}, {@code get_persistent_gnt}, {@code purge_persistent_gnt}).
 *
 * <p>Bounded by {@code capacity}: when full, the least recently used entry that no request in flight holds is
 * unmapped to make room; if every entry is in use the caller maps the page for the one request instead. Entries
 * idle for longer than the idle time are unmapped by {@link #purgeIdle}. Confined to the ring thread; owns its
 * mappings, which {@link #close()} unmaps (no request may be in flight then).
 *
 * <p>The lookup is on the data path once per segment, so it allocates nothing: an open-addressing table keyed by the
 * primitive grant ref (linear probing, backward-shift deletion) and an intrusive least-recently-used list through
 * the entries (head = eldest).
 */
final class PersistentGrantCache implements AutoCloseable {
    /** One mapped grant. */
    static final class Entry {
        final int gref;
        final GrantMapping mapping;
        /** The mapped page, 4096 bytes, position 0; fetched once (a mapping's accessor may synchronize). */
        final ByteBuffer page;
        int users;
        long lastUsedNs;
        private Entry older;
        private Entry newer;

        Entry(int gref, GrantMapping mapping) {
            this.gref = gref;
            this.mapping = mapping;
            this.page = mapping.buffer();
        }
    }

    private final GrantTable grants;
    private final int domid;
    private final int capacity;
    private final long idleNs;
    /** Open addressing, a power of two at least twice the capacity, so probes stay short. */
    private final Entry[] table;
    private final int mask;
    private final int[] oneRef = new int[1];
    private Entry eldest;
    private Entry newest;
    private int size;

    PersistentGrantCache(GrantTable grants, int domid, int capacity, long idleNs) {
        this.grants = grants;
        this.domid = domid;
        this.capacity = capacity;
        this.idleNs = idleNs;
        int n = Integer.highestOneBit(Math.max(2 * capacity, 8) - 1) << 1;
        this.table = new Entry[n];
        this.mask = n - 1;
    }

    private static int hash(int gref) {
        int h = gref * 0x9E3779B9;
        return h ^ (h >>> 16);
    }

    private Entry get(int gref) {
        for (int i = hash(gref) & mask; ; i = (i + 1) & mask) {
            Entry e = table[i];
            if (e == null || e.gref == gref) {
                return e;
            }
        }
    }

    private void put(Entry e) {
        int i = hash(e.gref) & mask;
        while (table[i] != null) {
            i = (i + 1) & mask;
        }
        table[i] = e;
        size++;
        linkNewest(e);
    }

    /** Removes {@code e} from the table (backward-shift deletion keeps every probe chain unbroken) and the list. */
    private void remove(Entry e) {
        int i = hash(e.gref) & mask;
        while (table[i] != e) {
            i = (i + 1) & mask;
        }
        table[i] = null;
        for (int j = (i + 1) & mask; table[j] != null; j = (j + 1) & mask) {
            int home = hash(table[j].gref) & mask;
            // Move table[j] into the hole at i unless its home lies cyclically in (i, j].
            if (((j - home) & mask) >= ((j - i) & mask)) {
                table[i] = table[j];
                table[j] = null;
                i = j;
            }
        }
        size--;
        unlink(e);
    }

    private void linkNewest(Entry e) {
        e.older = newest;
        e.newer = null;
        if (newest != null) {
            newest.newer = e;
        } else {
            eldest = e;
        }
        newest = e;
    }

    private void unlink(Entry e) {
        if (e.older != null) {
            e.older.newer = e.newer;
        } else {
            eldest = e.newer;
        }
        if (e.newer != null) {
            e.newer.older = e.older;
        } else {
            newest = e.older;
        }
        e.older = null;
        e.newer = null;
    }

    /**
     * The entry for {@code gref}, mapping it writable if it is new and there is room; its user count is raised and it
     * becomes the most recently used.
     *
     * @return the entry, or null when the cache is full of entries in use (map per request instead)
     * @throws IOException when the grant cannot be mapped writable
     */
    Entry acquire(int gref, long nowNs) throws IOException {
        Entry e = get(gref);
        if (e == null) {
            if (size >= capacity && !evictOne()) {
                return null;
            }
            oneRef[0] = gref;
            e = new Entry(gref, grants.map(domid, oneRef, true));
            put(e);
        } else if (e != newest) {
            unlink(e);
            linkNewest(e);
        }
        e.users++;
        e.lastUsedNs = nowNs;
        return e;
    }

    void release(Entry e) {
        e.users--;
    }

    private boolean evictOne() throws IOException {
        for (Entry e = eldest; e != null; e = e.newer) {
            if (e.users == 0) {
                remove(e);
                e.mapping.close();
                return true;
            }
        }
        return false;
    }

    /** Unmaps entries unused for longer than the idle time; returns how many. */
    int purgeIdle(long nowNs) throws IOException {
        int n = 0;
        Entry e = eldest;
        while (e != null) {
            Entry next = e.newer;
            if (e.users == 0 && nowNs - e.lastUsedNs > idleNs) {
                remove(e);
                e.mapping.close();
                n++;
            }
            e = next;
        }
        return n;
    }

    int size() {
        return size;
    }

    @Override
    public void close() throws IOException {
        IOException first = null;
        for (Entry e = eldest; e != null; e = e.newer) {
            try {
                e.mapping.close();
            } catch (IOException ex) {
                if (first == null) {
                    first = ex;
                }
            }
        }
        java.util.Arrays.fill(table, null);
        eldest = null;
        newest = null;
        size = 0;
        if (first != null) {
            throw first;
        }
    }
}
