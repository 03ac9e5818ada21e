package io.jtap.formats.qcow2;

import io.jtap.formats.CorruptImageException;
import io.jtap.formats.HostFile;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Guest-to-host cluster mapping: the L1 table (in memory, written through at flush) and the L2 tables (write-back
 * {@link MetadataCache}) (qcow2.txt, "Cluster mapping"; QEMU: {@code qcow2-cluster.c}).
 *
 * <p>Ordering: before a dirty L2 table is written the refcount blocks are made durable (the cache's
 * {@link MetadataCache.BeforeWrite}); a new L2 table is written and synced before the L1 entry pointing to it is
 * written ({@link #writeL1}). Not thread-safe: guarded by the image's metadata lock.
 */
final class ClusterMap {
    static final long L1_OFFSET_MASK = 0x00fffffffffffe00L;
    static final long L1_RESERVED = ~(L1_OFFSET_MASK | L2Entry.COPIED);

    /** One guest cluster's L2 entry (and bitmap, for extended L2 entries; else 0). */
    record Slot(long entry, long bitmap) {
        static final Slot EMPTY = new Slot(0, 0);
    }

    private final HostFile file;
    private final int clusterBits;
    private final boolean extendedL2;
    private final int entryBytes;
    private final int l2Entries;
    private final MetadataCache l2Cache;
    private long l1Offset;
    private long[] l1;
    /**
     * The L2 table offsets the L1 table held when loaded, sorted; plus those installed since, minus those the L1
     * table no longer points to (replaced by a copy).
     */
    private long[] loadedL2Tables;
    private final java.util.Set<Long> installedL2Tables = new java.util.HashSet<>();
    private final java.util.Set<Long> retiredL2Tables = new java.util.HashSet<>();
    /** The file length last seen; an L2 table beyond it is refreshed once, then reported. */
    private long knownFileLength;
    private int dirtyL1From = Integer.MAX_VALUE;
    private int dirtyL1To = -1;
    /** Counts the changes of the mapping (L2 entries, L1 entries, the L1 table): see {@link #generation()}. */
    private long generation;

    ClusterMap(HostFile file, Qcow2Header header, long l1Offset, int l1Size, long cacheBytes) throws IOException {
        this.file = file;
        this.clusterBits = header.clusterBits;
        this.extendedL2 = header.extendedL2();
        this.entryBytes = extendedL2 ? 16 : 8;
        this.l2Entries = Qcow2Header.l2Entries(clusterBits, extendedL2);
        this.l2Cache = new MetadataCache(file, 1 << clusterBits, cacheBytes);
        this.l1Offset = l1Offset;
        ByteBuffer raw = ByteBuffer.allocate(Math.multiplyExact(l1Size, 8));
        file.read(raw, l1Offset);
        l1 = new long[l1Size];
        for (int i = 0; i < l1Size; i++) {
            l1[i] = raw.getLong(i * 8);
        }
        loadedL2Tables = java.util.Arrays.stream(l1).map(e -> e & L1_OFFSET_MASK).filter(o -> o != 0).sorted()
                .toArray();
        knownFileLength = file.size();
    }

    /** Whether the host cluster at {@code hostOffset} is an L2 table of this L1 (for the overlap check). */
    boolean isL2Table(long hostOffset) {
        return java.util.Arrays.binarySearch(loadedL2Tables, hostOffset) >= 0
                && !retiredL2Tables.contains(hostOffset) || installedL2Tables.contains(hostOffset);
    }

    MetadataCache l2Cache() {
        return l2Cache;
    }

    int l2Entries() {
        return l2Entries;
    }

    int l1Size() {
        return l1.length;
    }

    long l1Offset() {
        return l1Offset;
    }

    /** The raw L1 entry covering guest cluster {@code guestCluster} (0 past the table). */
    long l1Entry(long guestCluster) {
        long i = guestCluster / l2Entries;
        return i < l1.length ? l1[(int) i] : 0;
    }

    /** Whether {@link #lookup} of guest cluster {@code guestCluster} needs no read: no L2 table, or one cached. */
    boolean lookupIsInMemory(long guestCluster) {
        long l2 = l1Entry(guestCluster) & L1_OFFSET_MASK;
        return l2 == 0 || l2Cache.contains(l2);
    }

    /**
     * The L2 entry of guest cluster {@code guestCluster}. A bad L1 entry (reserved bits, unaligned) is reported when
     * used, so that one damaged entry does not make the rest of the image unreadable (or uncheckable).
     */
    Slot lookup(long guestCluster) throws IOException {
        long entry = l1Entry(guestCluster);
        long l2 = entry & L1_OFFSET_MASK;
        if ((entry & L1_RESERVED) != 0 || (l2 & ((1L << clusterBits) - 1)) != 0) {
            throw new CorruptImageException("bad L1 entry: index=" + guestCluster / l2Entries + ", entry=0x"
                    + Long.toHexString(entry));
        }
        if (l2 == 0) {
            return Slot.EMPTY;
        }
        if (l2 + (1L << clusterBits) > knownFileLength && !l2Cache.contains(l2)) {
            knownFileLength = file.size();
            // jtap and QEMU write an L2 table before the L1 entry that points to it: beyond the end it is garbage
            if (l2 + (1L << clusterBits) > knownFileLength) {
                throw new CorruptImageException("L2 table beyond the end of the file: index="
                        + guestCluster / l2Entries + ", l2_offset=" + l2 + ", file_length=" + knownFileLength);
            }
        }
        MetadataCache.Table t = l2Cache.get(l2);
        int at = (int) (guestCluster % l2Entries) * entryBytes;
        return new Slot(t.data.getLong(at), extendedL2 ? t.data.getLong(at + 8) : 0);
    }

    /**
     * Sets the standard L2 entry of {@code guestCluster}; its L2 table must exist ({@link #hasL2}). Not for
     * extended L2 images (jtap opens those read-only).
     */
    void set(long guestCluster, long entry) throws IOException {
        long l2 = l1Entry(guestCluster) & L1_OFFSET_MASK;
        if (l2 == 0 || extendedL2) {
            throw new IllegalStateException("no writable L2 table: guestCluster=" + guestCluster);
        }
        MetadataCache.Table t = l2Cache.get(l2);
        t.data.putLong((int) (guestCluster % l2Entries) * 8, entry);
        t.dirty = true;
        generation++;
    }

    /**
     * A number that changes whenever the mapping does (an L2 entry set, an L2 table installed or copied, the L1 table
     * replaced): what was read from the map under one generation still holds while it is current.
     */
    long generation() {
        return generation;
    }

    boolean hasL2(long guestCluster) {
        return (l1Entry(guestCluster) & L1_OFFSET_MASK) != 0;
    }

    /** Whether the L2 table of {@code guestCluster} is exclusively this L1's (COPIED), so it may be written. */
    boolean l2Writable(long guestCluster) {
        return (l1Entry(guestCluster) & L2Entry.COPIED) != 0;
    }

    /** Points the L1 entry of {@code guestCluster} at a new, empty L2 table at {@code hostOffset} (refcount 1). */
    void installL2(long guestCluster, long hostOffset) throws IOException {
        int i = (int) (guestCluster / l2Entries);
        l2Cache.create(hostOffset);
        installedL2Tables.add(hostOffset);
        retiredL2Tables.remove(hostOffset);
        l1[i] = hostOffset | L2Entry.COPIED;
        dirtyL1From = Math.min(dirtyL1From, i);
        dirtyL1To = Math.max(dirtyL1To, i);
        generation++;
    }

    /**
     * Copy-on-write of a shared L2 table (QEMU: {@code l2_allocate} with an old table): points the L1 entry of
     * {@code guestCluster} at {@code hostOffset} (a new cluster, refcount 1, hence COPIED) holding a copy of the table
     * it pointed to, and returns the old table's offset, whose reference the caller drops once the L1 entry is
     * durable. The copy's entries keep their flags: the data they map is still shared with the old table's other
     * users, so none is COPIED. The old table leaves the cache: it is shared, so nothing may modify it.
     */
    long copyL2(long guestCluster, long hostOffset) throws IOException {
        int i = (int) (guestCluster / l2Entries);
        long old = l1[i] & L1_OFFSET_MASK;
        if (old == 0) {
            throw new IllegalStateException("no L2 table to copy: guestCluster=" + guestCluster);
        }
        ByteBuffer contents = ByteBuffer.allocate(1 << clusterBits);
        contents.put(l2Cache.get(old).data.duplicate().clear()).clear();
        l2Cache.drop(old);
        MetadataCache.Table copy = l2Cache.create(hostOffset);
        copy.data.put(contents).clear();
        installedL2Tables.add(hostOffset);
        retiredL2Tables.remove(hostOffset);
        installedL2Tables.remove(old);
        retiredL2Tables.add(old);
        l1[i] = hostOffset | L2Entry.COPIED;
        dirtyL1From = Math.min(dirtyL1From, i);
        dirtyL1To = Math.max(dirtyL1To, i);
        generation++;
        return old;
    }

    boolean l1Dirty() {
        return dirtyL1To >= 0;
    }

    /** Writes the dirty part of the L1 table (no sync); the caller has synced the L2 tables it points to. */
    void writeL1() throws IOException {
        if (dirtyL1To < 0) {
            return;
        }
        ByteBuffer raw = ByteBuffer.allocate((dirtyL1To - dirtyL1From + 1) * 8);
        for (int i = dirtyL1From; i <= dirtyL1To; i++) {
            raw.putLong((i - dirtyL1From) * 8, l1[i]);
        }
        file.write(raw, l1Offset + dirtyL1From * 8L);
        dirtyL1From = Integer.MAX_VALUE;
        dirtyL1To = -1;
    }

    /** A copy of the L1 table, grown to {@code entries} (for moving the table on resize). */
    long[] l1Copy(int entries) {
        return java.util.Arrays.copyOf(l1, entries);
    }

    /** Switches to a moved, larger L1 table that the caller has written, synced and pointed the header at. */
    void replaceL1(long newOffset, long[] newL1) {
        l1Offset = newOffset;
        l1 = newL1;
        generation++;
        dirtyL1From = Integer.MAX_VALUE;
        dirtyL1To = -1;
    }
}
