package io.jtap.formats.qcow2;

import io.jtap.formats.CorruptImageException;
import io.jtap.formats.HostFile;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * The refcounts of a metadata update that takes effect with one header write ({@link InternalSnapshots}). The
 * refcount structure in force, the one the header points to, is never modified: every refcount block the update
 * changes is copied into memory, changed there, and finally written to a new cluster, with a new refcount table
 * that points to the new blocks and to the unchanged old ones ({@link #writeStructure}). The header switch to that
 * table is the update's commit; until then a crash leaves the old structure, and the clusters the update wrote have
 * refcount 0 in it (free space, not even leaks).
 *
 * <p>{@link #allocate} hands out clusters free in both structures: refcount 0 in the one in force (nothing before
 * the switch uses them) and in the new one (the update has not taken them). A cluster the update frees stays in use
 * until the switch, so it is never handed out; the old refcount blocks and table get refcount 0 in the new
 * structure, which no longer points to them.
 *
 * <p>Not thread-safe: used under the image's metadata lock, with the refcount caches flushed. Memory: one cluster
 * per refcount block the update changes.
 */
final class ShadowRefcounts {
    /**
     * Where {@link #writeStructure} put the new refcount table, and the clusters the update frees: per refcount
     * block index, a bit per cluster of the block whose refcount went from above 0 to 0.
     */
    record Structure(long tableOffset, int tableClusters, Map<Long, BitSet> freed, long clustersPerBlock) {
        /** Calls {@code range} with (host offset, length) for each run of freed clusters. */
        void forEachFreedRange(int clusterBits, RangeConsumer range) throws IOException {
            for (Map.Entry<Long, BitSet> e : freed.entrySet()) {
                BitSet bits = e.getValue();
                long base = e.getKey() * clustersPerBlock;
                for (int from = bits.nextSetBit(0); from >= 0; ) {
                    int to = bits.nextClearBit(from);
                    range.accept((base + from) << clusterBits, (long) (to - from) << clusterBits);
                    from = bits.nextSetBit(to);
                }
            }
        }
    }

    /** Receives a byte range. */
    interface RangeConsumer {
        void accept(long offset, long length) throws IOException;
    }

    private final HostFile file;
    private final Qcow2Header header;
    private final RefcountTable current;
    private final int clusterBits;
    private final int clusterSize;
    private final int refcountBits;
    private final long maxRefcount;
    private final long perBlock;
    /** Block index to the block's new contents. */
    private final TreeMap<Long, ByteBuffer> shadow = new TreeMap<>();
    private long hint;

    ShadowRefcounts(HostFile file, Qcow2Header header, RefcountTable current) {
        this.file = file;
        this.header = header;
        this.current = current;
        this.clusterBits = header.clusterBits;
        this.clusterSize = header.clusterSize();
        this.refcountBits = header.refcountBits();
        this.maxRefcount = refcountBits == 64 ? Long.MAX_VALUE : (1L << refcountBits) - 1;
        this.perBlock = current.entriesPerBlock();
    }

    /** The refcount of {@code cluster} after the update (as recorded so far). */
    long refcount(long cluster) throws IOException {
        ByteBuffer b = shadow.get(cluster / perBlock);
        return b != null ? RefcountTable.readEntry(b, cluster % perBlock, refcountBits) : current.get(cluster);
    }

    /** Adds {@code delta} to the new refcount of each of {@code count} clusters from {@code cluster}. */
    void add(long cluster, long count, long delta) throws IOException {
        for (long c = cluster; c < cluster + count; c++) {
            long now = refcount(c);
            long next = now + delta;
            if (next < 0) {
                throw new CorruptImageException("refcount underflow: cluster=" + c + ", offset=" + (c << clusterBits)
                        + ", refcount=" + now + ", delta=" + delta);
            }
            if (Long.compareUnsigned(next, maxRefcount) > 0) {
                throw new IOException("refcount overflow: cluster=" + c + ", offset=" + (c << clusterBits)
                        + ", refcount=" + next + ", refcount_bits=" + refcountBits);
            }
            RefcountTable.writeEntry(block(c / perBlock), c % perBlock, next, refcountBits);
        }
    }

    private ByteBuffer block(long index) throws IOException {
        ByteBuffer b = shadow.get(index);
        if (b == null) {
            b = ByteBuffer.allocate(clusterSize);
            long old = current.blockOffset(index);
            if (old != 0) {
                file.read(b, old);
                b.clear();
            }
            shadow.put(index, b);
        }
        return b;
    }

    /**
     * {@code count} contiguous clusters free before and after the update, now with refcount 1 in the new structure;
     * returns the host offset of the first. As {@link RefcountTable#allocate}, refuses (as corruption) a cluster
     * with refcount 0 that is live metadata.
     */
    long allocate(long count) throws IOException {
        long run = 0;
        long c = hint;
        while (true) {
            if (current.get(c) == 0 && refcount(c) == 0) {
                if (++run == count) {
                    break;
                }
            } else {
                run = 0;
            }
            c++;
        }
        long start = c - count + 1;
        for (long k = start; k < start + count; k++) {
            current.checkNotMetadata(k);
        }
        add(start, count, 1);
        hint = start + count;
        return start << clusterBits;
    }

    /**
     * Writes the new refcount structure (not synced): each changed block to a new cluster, and a new refcount table,
     * large enough for every block, that points to them and to the unchanged blocks. The old table and the old
     * copies of the changed blocks get refcount 0 in it. Returns where the table is, for the header switch, and the
     * clusters that are free once the switch is made (their refcount went from above 0 to 0).
     */
    Structure writeStructure() throws IOException {
        Map<Long, Long> newHome = new HashMap<>();
        long tableOffset = -1;
        int tableClusters = 0;
        add(header.refcountTableOffset >> clusterBits, header.refcountTableClusters, -1);
        while (true) {
            boolean changed = false;
            // Placing a block changes refcounts (its own, and its old copy's): possibly in blocks not placed yet.
            for (long index : new ArrayList<>(shadow.keySet())) {
                if (!newHome.containsKey(index)) {
                    newHome.put(index, allocate(1));
                    long old = current.blockOffset(index);
                    if (old != 0) {
                        add(old >> clusterBits, 1, -1);
                    }
                    changed = true;
                }
            }
            long entries = Math.max(current.tableEntries(), shadow.lastKey() + 1);
            long needed = (entries * 8 + clusterSize - 1) >> clusterBits;
            if (needed << clusterBits > Qcow2Header.MAX_REFTABLE_BYTES) {
                throw new IOException("refcount table would be too large: entries=" + entries);
            }
            if (needed > tableClusters) {
                if (tableOffset >= 0) {
                    add(tableOffset >> clusterBits, tableClusters, -1);
                }
                tableClusters = (int) needed;
                tableOffset = allocate(tableClusters);
                changed = true;
            }
            if (!changed) {
                break;
            }
        }
        for (Map.Entry<Long, Long> e : newHome.entrySet()) {
            file.write(shadow.get(e.getKey()).duplicate().clear(), e.getValue());
        }
        ByteBuffer table = ByteBuffer.allocate(tableClusters << clusterBits);
        for (long i = 0; i < (long) tableClusters << clusterBits >> 3; i++) {
            table.putLong((int) (i * 8), newHome.getOrDefault(i, current.blockOffset(i)));
        }
        file.write(table, tableOffset);
        Map<Long, BitSet> freed = new TreeMap<>();
        ByteBuffer old = ByteBuffer.allocate(clusterSize);
        for (Map.Entry<Long, ByteBuffer> e : shadow.entrySet()) {
            long oldOffset = current.blockOffset(e.getKey());
            if (oldOffset == 0) {
                continue;
            }
            file.read(old.clear(), oldOffset);
            BitSet bits = new BitSet();
            for (int i = 0; i < perBlock; i++) {
                if (RefcountTable.readEntry(e.getValue(), i, refcountBits) == 0
                        && RefcountTable.readEntry(old, i, refcountBits) != 0) {
                    bits.set(i);
                }
            }
            if (!bits.isEmpty()) {
                freed.put(e.getKey(), bits);
            }
        }
        return new Structure(tableOffset, tableClusters, freed, perBlock);
    }
}
