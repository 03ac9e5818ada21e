package io.jtap.blkback;

import io.jtap.aio.IoVector;
import io.jtap.xen.GrantMapping;
import io.jtap.xen.GrantTable;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * A ring's persistent grants: writable mappings of the frontend's pages, kept after the request that brought them
 * and reused when the frontend names the same grant again (Linux blkback: {@code persistent_gnts},
 * {@code get_persistent_gnt}, {@code add_persistent_gnt}, {@code purge_persistent_gnt}).
 *
 * <p>Why chunks: one {@link GrantTable#map} is an ioctl, an {@code mmap} (the hypercall), and later a
 * {@code munmap} (hypercall and TLB shoot-down) and another ioctl, whatever the number of pages, so a request's new
 * grants are mapped together in one call. gntdev releases a mapping only whole ({@code IOCTL_GNTDEV_UNMAP_GRANT_REF}
 * names its index and page count; in a PV dom0 a mapping has exactly one VMA), so the grants mapped together stay
 * together: a {@link Chunk} is one mapping, each of its grants is an {@link Entry} looked up by grant ref, and the
 * chunk is used, aged and unmapped as one. A chunk is one VMA whatever its size.
 *
 * <p>Nothing is unmapped on the request path (Linux {@code xen_blkbk_map}): {@link #acquire} only looks up, and
 * {@link #mapNew} adds a chunk only while this ring's {@code capacity} and the shared {@link PersistentGrantBudget}
 * have room for its pages; otherwise it maps nothing, notes the pressure, and the caller maps the request's pages
 * for that request alone. {@link #purge}, called from the ring loop, then unmaps the least recently used chunks no
 * request holds, a bounded number of pages per pass, and every chunk idle for longer than the idle time.
 *
 * <p>Confined to the ring thread (the budget is shared and thread-safe). Owns its mappings, which {@link #close()}
 * unmaps (no request may be in flight then). The lookup is on the data path once per segment, so it allocates
 * nothing: an open-addressing table keyed by the primitive grant ref (linear probing, backward-shift deletion) and
 * an intrusive least-recently-used list through the chunks (head = eldest).
 */
final class PersistentGrantCache implements AutoCloseable {
    /**
     * Pages a purge pass under pressure unmaps, in percent of the capacity (Linux blkback's
     * {@code LRU_PERCENT_CLEAN}): enough room for new grants, without dropping much of a working set per pass.
     */
    static final int PURGE_PERCENT = 5;

    /** One mapped grant: a page of its chunk. */
    static final class Entry {
        final int gref;
        /** The mapped page, 4096 bytes, position 0, native order. */
        final ByteBuffer page;
        /** The native address of {@link #page}'s first byte. */
        final long address;
        final Chunk chunk;

        Entry(int gref, ByteBuffer page, long address, Chunk chunk) {
            this.gref = gref;
            this.page = page;
            this.address = address;
            this.chunk = chunk;
        }
    }

    /** One mapping of the grants one request brought: the unit of use, aging and unmapping. */
    static final class Chunk {
        final GrantMapping mapping;
        /** The entries in the table; fewer than the mapping's pages when a request named a grant twice. */
        final Entry[] entries;
        int entryCount;
        /** Segments of requests in flight that use one of its pages. */
        int users;
        long lastUsedNs;
        private Chunk older;
        private Chunk newer;

        Chunk(GrantMapping mapping, int pages) {
            this.mapping = mapping;
            this.entries = new Entry[pages];
        }

        int pages() {
            return entries.length;
        }
    }

    private final GrantTable grants;
    private final int domid;
    private final int capacity;
    private final long idleNs;
    private final PersistentGrantBudget budget;
    private final int purgeBatch;
    /** Open addressing, a power of two at least twice the capacity, so probes stay short. */
    private final Entry[] table;
    private final int mask;
    private Chunk eldest;
    private Chunk newest;
    /** Pages mapped, in all chunks (what the capacity and the budget bound). */
    private int size;
    private int entries;
    private int chunks;
    /** A request's new grants found no room since the last purge pass. */
    private boolean pressure;

    /**
     * @param capacity pages this ring may keep mapped
     * @param idleNs   a chunk unused this long is unmapped by {@link #purge}
     * @param budget   pages all rings may keep mapped together (shared, borrowed)
     */
    PersistentGrantCache(GrantTable grants, int domid, int capacity, long idleNs, PersistentGrantBudget budget) {
        this.grants = grants;
        this.domid = domid;
        this.capacity = capacity;
        this.idleNs = idleNs;
        this.budget = budget;
        this.purgeBatch = Math.max(1, (int) ((long) capacity * PURGE_PERCENT / 100));
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
        entries++;
    }

    /** Removes {@code e} from the table; backward-shift deletion keeps every probe chain unbroken. */
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
        entries--;
    }

    private void linkNewest(Chunk c) {
        c.older = newest;
        c.newer = null;
        if (newest != null) {
            newest.newer = c;
        } else {
            eldest = c;
        }
        newest = c;
    }

    private void unlink(Chunk c) {
        if (c.older != null) {
            c.older.newer = c.newer;
        } else {
            eldest = c.newer;
        }
        if (c.newer != null) {
            c.newer.older = c.older;
        } else {
            newest = c.older;
        }
        c.older = null;
        c.newer = null;
    }

    /**
     * The entry for {@code gref} if it is mapped; its chunk's user count is raised and the chunk becomes the most
     * recently used. Maps and unmaps nothing.
     *
     * @return the entry, or null when {@code gref} has no persistent mapping
     */
    Entry acquire(int gref, long nowNs) {
        Entry e = get(gref);
        if (e == null) {
            return null;
        }
        Chunk c = e.chunk;
        if (c != newest) {
            unlink(c);
            linkNewest(c);
        }
        c.users++;
        c.lastUsedNs = nowNs;
        return e;
    }

    void release(Entry e) {
        e.chunk.users--;
    }

    /** Whether {@code gref} has a persistent mapping (no use is recorded). */
    boolean contains(int gref) {
        return get(gref) != null;
    }

    /**
     * Maps {@code refs} writable in one {@link GrantTable#map} call and keeps them as one chunk, if this ring's
     * capacity and the budget have room for {@code refs.length} pages; the caller then {@link #acquire}s them. A
     * ref named twice is mapped twice and looked up once. Unmaps nothing.
     *
     * @param refs grants without a persistent mapping (see {@link #contains}), at least one
     * @return false, having mapped nothing, when there is no room; the next {@link #purge} makes some
     * @throws IOException when the map fails (nothing is kept then)
     */
    boolean mapNew(int[] refs, long nowNs) throws IOException {
        int n = refs.length;
        if (size + n > capacity || !budget.tryAcquire(n)) {
            // A request larger than the whole cache never fits: no reason to purge for it.
            pressure |= n <= capacity;
            return false;
        }
        GrantMapping mapping;
        try {
            mapping = grants.map(domid, refs, true);
        } catch (IOException | RuntimeException e) {
            budget.release(n);
            throw e;
        }
        ByteBuffer pages = mapping.buffer();
        long base = IoVector.addressOf(pages);
        Chunk c = new Chunk(mapping, n);
        for (int i = 0; i < n; i++) {
            if (get(refs[i]) == null) {
                Entry e = new Entry(refs[i], pages.slice(i * GrantTable.PAGE_SIZE, GrantTable.PAGE_SIZE)
                        .order(ByteOrder.nativeOrder()), base + (long) i * GrantTable.PAGE_SIZE, c);
                put(e);
                c.entries[c.entryCount++] = e;
            }
        }
        c.lastUsedNs = nowNs;
        linkNewest(c);
        size += n;
        chunks++;
        return true;
    }

    /**
     * One purge pass, from the ring loop (Linux: {@code purge_persistent_gnt}): unmaps every chunk no request holds
     * that has been idle for longer than the idle time and, when new grants found no room since the last pass, the
     * least recently used chunks no request holds until {@value #PURGE_PERCENT} % of the capacity is free again
     * (at least one chunk's pages, at most that plus one chunk's).
     *
     * @return the pages unmapped
     * @throws IOException when an unmap failed (the rest are still unmapped; the pages are forgotten either way)
     */
    int purge(long nowNs) throws IOException {
        IOException failure = null;
        int freed = 0;
        // The list is in order of last use: the idle chunks are all at its head.
        Chunk c = eldest;
        while (c != null && nowNs - c.lastUsedNs > idleNs) {
            Chunk next = c.newer;
            if (c.users == 0) {
                freed += c.pages();
                failure = unmap(c, failure);
            }
            c = next;
        }
        if (pressure) {
            pressure = false;
            int lru = 0;
            for (c = eldest; c != null && lru < purgeBatch; ) {
                Chunk next = c.newer;
                if (c.users == 0) {
                    lru += c.pages();
                    failure = unmap(c, failure);
                }
                c = next;
            }
            freed += lru;
        }
        if (failure != null) {
            throw failure;
        }
        return freed;
    }

    private IOException unmap(Chunk c, IOException failure) {
        for (int i = 0; i < c.entryCount; i++) {
            remove(c.entries[i]);
        }
        unlink(c);
        size -= c.pages();
        chunks--;
        budget.release(c.pages());
        try {
            c.mapping.close();
        } catch (IOException e) {
            if (failure == null) {
                return e;
            }
            failure.addSuppressed(e);
        }
        return failure;
    }

    /** Pages mapped now (at most the capacity). */
    int size() {
        return size;
    }

    /** Grants that can be looked up now (pages mapped, less the repeats of a grant within a chunk). */
    int entries() {
        return entries;
    }

    /** Mappings (chunks) held now: each one {@link GrantTable#map} call and one VMA. */
    int chunks() {
        return chunks;
    }

    int capacity() {
        return capacity;
    }

    @Override
    public void close() throws IOException {
        IOException failure = null;
        while (eldest != null) {
            failure = unmap(eldest, failure);
        }
        Arrays.fill(table, null);
        if (failure != null) {
            throw failure;
        }
    }
}
