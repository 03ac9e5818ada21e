package io.jtap.blkback;

import io.jtap.xen.GrantMapping;
import io.jtap.xen.GrantTable;

import java.io.IOException;
import java.util.Iterator;
import java.util.LinkedHashMap;

/**
 * A ring's persistent grants: single-page writable mappings of the frontend's data pages, kept after the request
 * that brought them and reused when the frontend names the same grant again (Linux blkback:
 * {@code persistent_gnts}, {@code get_persistent_gnt}, {@code purge_persistent_gnt}).
 *
 * <p>Bounded by {@code capacity}: when full, the least recently used entry that no request in flight holds is
 * unmapped to make room; if every entry is in use the caller maps the page for the one request instead. Entries
 * idle for longer than the idle time are unmapped by {@link #purgeIdle}. Confined to the ring thread; owns its
 * mappings, which {@link #close()} unmaps (no request may be in flight then).
 */
final class PersistentGrantCache implements AutoCloseable {
    /** One mapped grant. */
    static final class Entry {
        final int gref;
        final GrantMapping mapping;
        int users;
        long lastUsedNs;

        Entry(int gref, GrantMapping mapping) {
            this.gref = gref;
            this.mapping = mapping;
        }
    }

    private final GrantTable grants;
    private final int domid;
    private final int capacity;
    private final long idleNs;
    /** Access order: the eldest entry is the least recently used. */
    private final LinkedHashMap<Integer, Entry> entries = new LinkedHashMap<>(64, 0.75f, true);

    PersistentGrantCache(GrantTable grants, int domid, int capacity, long idleNs) {
        this.grants = grants;
        this.domid = domid;
        this.capacity = capacity;
        this.idleNs = idleNs;
    }

    /**
     * The entry for {@code gref}, mapping it writable if it is new and there is room; its user count is raised.
     *
     * @return the entry, or null when the cache is full of entries in use (map per request instead)
     * @throws IOException when the grant cannot be mapped writable
     */
    Entry acquire(int gref, long nowNs) throws IOException {
        Entry e = entries.get(gref);
        if (e == null) {
            if (entries.size() >= capacity && !evictOne()) {
                return null;
            }
            e = new Entry(gref, grants.map(domid, new int[] {gref}, true));
            entries.put(gref, e);
        }
        e.users++;
        e.lastUsedNs = nowNs;
        return e;
    }

    void release(Entry e) {
        e.users--;
    }

    private boolean evictOne() throws IOException {
        Iterator<Entry> it = entries.values().iterator();
        while (it.hasNext()) {
            Entry e = it.next();
            if (e.users == 0) {
                it.remove();
                e.mapping.close();
                return true;
            }
        }
        return false;
    }

    /** Unmaps entries unused for longer than the idle time; returns how many. */
    int purgeIdle(long nowNs) throws IOException {
        int n = 0;
        Iterator<Entry> it = entries.values().iterator();
        while (it.hasNext()) {
            Entry e = it.next();
            if (e.users == 0 && nowNs - e.lastUsedNs > idleNs) {
                it.remove();
                e.mapping.close();
                n++;
            }
        }
        return n;
    }

    int size() {
        return entries.size();
    }

    @Override
    public void close() throws IOException {
        IOException first = null;
        for (Entry e : entries.values()) {
            try {
                e.mapping.close();
            } catch (IOException ex) {
                if (first == null) {
                    first = ex;
                }
            }
        }
        entries.clear();
        if (first != null) {
            throw first;
        }
    }
}
