package io.jtap.formats.qcow2;

import io.jtap.formats.CorruptImageException;
import io.jtap.formats.HostFile;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * Refcounts and cluster allocation (qcow2.txt, "Host cluster management"; QEMU: {@code qcow2-refcount.c}).
 *
 * <p>The refcount table is held in memory and written through; refcount blocks live in a write-back
 * {@link MetadataCache}. Allocation scans for clusters whose refcount is zero, from a hint; clusters at or past
 * {@link #endCluster} are free by construction. New refcount blocks and a grown refcount table are written and
 * synced before anything points to them.
 *
 * <p>Ordering: increments may reach the disk at any time (a crash then leaks, which {@code qemu-img check -r} can
 * repair); a decrement must not reach the disk before the reference it drops has. So frees of clusters that were
 * referenced go through {@link #deferFree} and become real in {@link #applyDeferredFrees}, which the image calls
 * after its L2/L1 updates are durable; until then the cluster cannot be reused.
 *
 * <p>Not thread-safe: guarded by the image's metadata lock.
 */
final class RefcountTable {
    static final long TABLE_OFFSET_MASK = 0xfffffffffffffe00L;

    private final HostFile file;
    private final Qcow2Header header;
    private final int clusterBits;
    private final int clusterSize;
    private final int refcountBits;
    private final long maxRefcount;
    private final long entriesPerBlock;
    private final MetadataCache blocks;
    private long[] table;
    private long freeHint;
    private long endCluster;
    private final List<long[]> deferred = new ArrayList<>();
    private final java.util.Set<Long> blockOffsets = new java.util.HashSet<>();
    /** Says whether a host offset holds other live metadata (header, L1, L2 tables); see {@link #allocate}. */
    private java.util.function.LongPredicate otherMetadata = o -> false;

    RefcountTable(HostFile file, Qcow2Header header, long cacheBytes) throws IOException {
        this.file = file;
        this.header = header;
        this.clusterBits = header.clusterBits;
        this.clusterSize = header.clusterSize();
        this.refcountBits = header.refcountBits();
        this.maxRefcount = refcountBits == 64 ? Long.MAX_VALUE : (1L << refcountBits) - 1;
        this.entriesPerBlock = (long) clusterSize * 8 / refcountBits;
        this.blocks = new MetadataCache(file, clusterSize, cacheBytes);
        long fileLength = file.size();
        int entries = Math.toIntExact((long) header.refcountTableClusters * clusterSize / 8);
        ByteBuffer raw = ByteBuffer.allocate(entries * 8);
        file.read(raw, header.refcountTableOffset);
        table = new long[entries];
        for (int i = 0; i < entries; i++) {
            table[i] = raw.getLong(i * 8);
            if ((table[i] & ~TABLE_OFFSET_MASK) != 0 || (table[i] & (clusterSize - 1)) != 0 || table[i] < 0) {
                throw new CorruptImageException("refcount block not cluster-aligned: index=" + i + ", entry=0x"
                        + Long.toHexString(table[i]));
            }
            if (table[i] != 0 && table[i] > fileLength - clusterSize) {
                // jtap and QEMU write a refcount block before the table entry that points to it
                throw new CorruptImageException("refcount block beyond the end of the file: index=" + i
                        + ", offset=" + table[i] + ", file_length=" + fileLength);
            }
            if (table[i] != 0) {
                blockOffsets.add(table[i]);
            }
        }
        endCluster = Math.max((file.size() + clusterSize - 1) >> clusterBits, highestUsedCluster() + 1);
    }

    private long highestUsedCluster() throws IOException {
        for (int bi = table.length - 1; bi >= 0; bi--) {
            if (table[bi] == 0) {
                continue;
            }
            for (long i = entriesPerBlock - 1; i >= 0; i--) {
                long c = bi * entriesPerBlock + i;
                if (get(c) != 0) {
                    return c;
                }
            }
        }
        return -1;
    }

    /**
     * Installs the overlap check (QEMU: {@code qcow2_pre_write_overlap_check}): a cluster handed out by
     * {@link #allocate} must not be live metadata. With consistent refcounts it never is; with a refcount wrongly
     * zero it would be overwritten, so allocation reports corruption instead.
     */
    void setOtherMetadata(java.util.function.LongPredicate value) {
        this.otherMetadata = value;
    }

    void checkNotMetadata(long cluster) throws IOException {
        if (isMetadata(cluster << clusterBits)) {
            throw new CorruptImageException("refcount of in-use metadata is 0, refusing to allocate it: cluster="
                    + cluster + ", offset=" + (cluster << clusterBits));
        }
    }

    /**
     * Whether the host cluster at {@code offset} holds the header, the refcount table or a refcount block, or other
     * metadata the image knows of ({@link #setOtherMetadata}).
     */
    boolean isMetadata(long offset) {
        return isHeaderOrRefcounts(offset) || otherMetadata.test(offset);
    }

    /** Whether the host cluster at {@code offset} holds the header, the refcount table or a refcount block. */
    boolean isHeaderOrRefcounts(long offset) {
        long tableEnd = header.refcountTableOffset + ((long) header.refcountTableClusters << clusterBits);
        return offset < clusterSize || blockOffsets.contains(offset)
                || offset >= header.refcountTableOffset && offset < tableEnd;
    }

    /** Entries in the refcount table (one per refcount block it can point to). */
    int tableEntries() {
        return table.length;
    }

    /** Host offset of refcount block {@code index}, 0 when there is none. */
    long blockOffset(long index) {
        return index < table.length ? table[(int) index] : 0;
    }

    /** Refcount entries per refcount block. */
    long entriesPerBlock() {
        return entriesPerBlock;
    }

    /** Clusters at or past this index are free and past the end of the file. */
    long endCluster() {
        return endCluster;
    }

    /**
     * What the refcount structures say against the host cluster at {@code hostOffset} having the refcount a reference
     * to it claims, or null when nothing does: exactly 1 when {@code exclusive} (a COPIED flag: the cluster is about
     * to be modified in place), else at least 1 (a reference about to be dropped). Reports a cluster beyond the
     * refcount table, one no refcount block covers, one whose refcount block is cached with another refcount, and
     * one at or past {@link #endCluster} (refcount 0 by construction).
     *
     * <p>Constant time, memory only: it runs for every in-place guest write, so a refcount block that is not cached
     * is not read, and such a cluster below {@link #endCluster} passes. Exact only while refcounts are: the image
     * opens for writing only without the dirty bit (lazy refcounts left stale need a repair first) and keeps them
     * exact itself.
     */
    String contradiction(long hostOffset, boolean exclusive) {
        long cluster = hostOffset >>> clusterBits;
        long bi = cluster / entriesPerBlock;
        if (bi >= table.length) {
            return "beyond the refcount table, refcount_table_entries=" + table.length + ", clusters_per_block="
                    + entriesPerBlock;
        }
        long block = table[(int) bi];
        if (block == 0) {
            return "no refcount block covers it, refcount_table_index=" + bi;
        }
        MetadataCache.Table t = blocks.cached(block);
        if (t != null) {
            long refcount = read(t.data, cluster % entriesPerBlock);
            if (exclusive ? refcount != 1 : refcount <= 0) {
                return "refcount=" + refcount + (exclusive ? ", COPIED requires 1" : "");
            }
            return null;
        }
        if (cluster >= endCluster) {
            return "beyond every cluster in use (refcount 0), in_use_end=" + (endCluster << clusterBits);
        }
        return null;
    }

    /** The refcount of host cluster {@code cluster}. */
    long get(long cluster) throws IOException {
        long bi = cluster / entriesPerBlock;
        if (bi >= table.length || table[(int) bi] == 0) {
            return 0;
        }
        MetadataCache.Table t = blocks.get(table[(int) bi]);
        return read(t.data, cluster % entriesPerBlock);
    }

    private long read(ByteBuffer block, long index) {
        return readEntry(block, index, refcountBits);
    }

    /** Entry {@code index} of a refcount block whose entries are {@code refcountBits} wide. */
    static long readEntry(ByteBuffer block, long index, int refcountBits) {
        switch (refcountBits) {
            case 64:
                return block.getLong((int) (index * 8));
            case 32:
                return block.getInt((int) (index * 4)) & 0xffffffffL;
            case 16:
                return block.getShort((int) (index * 2)) & 0xffff;
            case 8:
                return block.get((int) index) & 0xff;
            default:
                long bit = index * refcountBits;
                return (block.get((int) (bit / 8)) >>> (bit % 8)) & ((1 << refcountBits) - 1);
        }
    }

    private void write(ByteBuffer block, long index, long value) {
        writeEntry(block, index, value, refcountBits);
    }

    /** Sets entry {@code index} of a refcount block whose entries are {@code refcountBits} wide. */
    static void writeEntry(ByteBuffer block, long index, long value, int refcountBits) {
        switch (refcountBits) {
            case 64 -> block.putLong((int) (index * 8), value);
            case 32 -> block.putInt((int) (index * 4), (int) value);
            case 16 -> block.putShort((int) (index * 2), (short) value);
            case 8 -> block.put((int) index, (byte) value);
            default -> {
                long bit = index * refcountBits;
                int at = (int) (bit / 8);
                int shift = (int) (bit % 8);
                int mask = ((1 << refcountBits) - 1) << shift;
                block.put(at, (byte) ((block.get(at) & ~mask) | ((int) value << shift)));
            }
        }
    }

    /** Sets the refcount of {@code cluster}, creating its refcount block (and growing the table) if needed. */
    private void set(long cluster, long value) throws IOException {
        if (value < 0 || Long.compareUnsigned(value, maxRefcount) > 0) {
            throw new IOException("refcount out of range: cluster=" + cluster + ", refcount=" + value
                    + ", refcount_bits=" + refcountBits);
        }
        ensureBlock(cluster);
        MetadataCache.Table t = blocks.get(table[(int) (cluster / entriesPerBlock)]);
        write(t.data, cluster % entriesPerBlock, value);
        t.dirty = true;
    }

    /** Adds {@code delta} to the refcount of every cluster in {@code [cluster, cluster+count)}. */
    void update(long cluster, long count, long delta) throws IOException {
        for (long c = cluster; c < cluster + count; c++) {
            long now = get(c);
            long next = now + delta;
            if (next < 0) {
                throw new CorruptImageException("refcount underflow: cluster=" + c + ", offset=" + (c << clusterBits)
                        + ", refcount=" + now + ", delta=" + delta);
            }
            set(c, next);
            if (next == 0 && c < freeHint) {
                freeHint = c;
            }
            if (next != 0 && c >= endCluster) {
                // keeps endCluster a bound on every cluster in use, which contradiction() relies on
                endCluster = c + 1;
            }
        }
    }

    /**
     * Allocates {@code count} contiguous free clusters with refcount 1 and returns the host offset of the first.
     * Never fails for want of space in the image: past {@link #endCluster} everything is free.
     */
    long allocate(int count) throws IOException {
        while (true) {
            long start = findFree(count);
            for (long c = start; c < start + count; c++) {
                ensureBlock(c);
            }
            boolean stillFree = true;
            for (long c = start; c < start + count && stillFree; c++) {
                stillFree = get(c) == 0;
            }
            if (stillFree) {
                for (long c = start; c < start + count; c++) {
                    checkNotMetadata(c);
                }
                for (long c = start; c < start + count; c++) {
                    set(c, 1);
                }
                endCluster = Math.max(endCluster, start + count);
                // As QEMU's free_cluster_index: the next search starts after this allocation, so a gap too small
                // for a multi-cluster allocation is not rescanned every time (quadratic in the image size); frees
                // move the hint back down.
                freeHint = start + count;
                return start << clusterBits;
            }
        }
    }

    private long findFree(int count) throws IOException {
        long run = 0;
        for (long c = freeHint; ; c++) {
            if (c >= endCluster) {
                return c - run;
            }
            if (get(c) == 0) {
                if (++run == count) {
                    return c - count + 1;
                }
            } else {
                run = 0;
            }
        }
    }

    /** Makes sure a refcount block covers {@code cluster}. */
    private void ensureBlock(long cluster) throws IOException {
        long bi = cluster / entriesPerBlock;
        if (bi >= table.length) {
            growTable(bi);
        }
        if (table[(int) bi] != 0) {
            return;
        }
        long b = findFree(1);
        checkNotMetadata(b);
        ByteBuffer block = ByteBuffer.allocate(clusterSize);
        if (b / entriesPerBlock == bi) {
            write(block, b % entriesPerBlock, 1);
        } else {
            ensureBlock(b);
            if (get(b) != 0) {
                ensureBlock(cluster);
                return;
            }
            set(b, 1);
            flushBlocks();
        }
        endCluster = Math.max(endCluster, b + 1);
        // The block is durable before the table points to it, so a crash never reveals a garbage block.
        file.write(block.duplicate().clear(), b << clusterBits);
        file.sync();
        table[(int) bi] = b << clusterBits;
        blockOffsets.add(table[(int) bi]);
        ByteBuffer entry = ByteBuffer.allocate(8).putLong(0, table[(int) bi]);
        file.write(entry, header.refcountTableOffset + bi * 8);
        blocks.putClean(b << clusterBits, block);
    }

    /**
     * Grows the refcount table to cover block index {@code neededIndex}: a new, larger table and the refcount
     * blocks that cover it are placed past {@link #endCluster}, written and synced, then the header switches to it,
     * then the old table is freed.
     */
    private void growTable(long neededIndex) throws IOException {
        int perCluster = clusterSize / 8;
        long newEntries = Math.max(neededIndex + 1, (long) table.length * 2);
        long start = endCluster;
        long tableClusters;
        long newBlocks = 0;
        while (true) {
            newEntries = (newEntries + perCluster - 1) / perCluster * perCluster;
            tableClusters = newEntries / perCluster;
            long end = start + tableClusters + newBlocks;
            long missing = 0;
            for (long bi = start / entriesPerBlock; bi <= (end - 1) / entriesPerBlock; bi++) {
                if (bi >= table.length || table[(int) bi] == 0) {
                    missing++;
                }
            }
            long lastIndex = (end - 1) / entriesPerBlock;
            if (missing == newBlocks && lastIndex < newEntries) {
                break;
            }
            newBlocks = missing;
            newEntries = Math.max(newEntries, lastIndex + 1);
        }
        if (newEntries * 8 > Integer.MAX_VALUE) {
            throw new IOException("refcount table would be too large: entries=" + newEntries);
        }
        long end = start + tableClusters + newBlocks;
        long[] grown = java.util.Arrays.copyOf(table, (int) newEntries);
        List<Long> blockIndexes = new ArrayList<>();
        for (long bi = start / entriesPerBlock; bi <= (end - 1) / entriesPerBlock; bi++) {
            if (grown[(int) bi] == 0) {
                blockIndexes.add(bi);
            }
        }
        // Clusters [start, end) get refcount 1: in the new blocks, or in existing blocks written through now.
        long blockCluster = start + tableClusters;
        List<ByteBuffer> newBlockData = new ArrayList<>();
        for (long bi : blockIndexes) {
            grown[(int) bi] = (blockCluster++) << clusterBits;
            blockOffsets.add(grown[(int) bi]);
            newBlockData.add(ByteBuffer.allocate(clusterSize));
        }
        for (long c = start; c < end; c++) {
            int k = blockIndexes.indexOf(c / entriesPerBlock);
            if (k >= 0) {
                write(newBlockData.get(k), c % entriesPerBlock, 1);
            } else {
                MetadataCache.Table t = blocks.get(table[(int) (c / entriesPerBlock)]);
                write(t.data, c % entriesPerBlock, 1);
                t.dirty = true;
            }
        }
        flushBlocks();
        for (int k = 0; k < blockIndexes.size(); k++) {
            file.write(newBlockData.get(k).duplicate().clear(), grown[(int) (long) blockIndexes.get(k)]);
        }
        ByteBuffer raw = ByteBuffer.allocate((int) (tableClusters * clusterSize));
        for (int i = 0; i < grown.length; i++) {
            raw.putLong(i * 8, grown[i]);
        }
        file.write(raw, start << clusterBits);
        file.sync();
        ByteBuffer fields = ByteBuffer.allocate(12).putLong(0, start << clusterBits).putInt(8, (int) tableClusters);
        file.write(fields, Qcow2Header.OFFSET_REFCOUNT_TABLE);
        file.sync();
        long oldOffset = header.refcountTableOffset;
        int oldClusters = header.refcountTableClusters;
        header.refcountTableOffset = start << clusterBits;
        header.refcountTableClusters = (int) tableClusters;
        table = grown;
        endCluster = end;
        for (int k = 0; k < blockIndexes.size(); k++) {
            blocks.putClean(grown[(int) (long) blockIndexes.get(k)], newBlockData.get(k));
        }
        update(oldOffset >> clusterBits, oldClusters, -1);
    }

    /** Writes dirty refcount blocks (no sync). */
    void flushBlocks() throws IOException {
        blocks.writeDirty();
    }

    boolean hasDirtyBlocks() {
        return blocks.hasDirty();
    }

    /**
     * Queues a decrement of {@code count} clusters from {@code hostOffset}, to apply once references are durable and
     * no write begun before it can still land there; {@code epoch} is the image's free epoch now (see
     * {@link #applyDeferredFrees}).
     */
    void deferFree(long hostOffset, long count, long epoch) {
        deferred.add(new long[] {hostOffset >> clusterBits, count, epoch});
    }

    boolean hasDeferredFrees() {
        return !deferred.isEmpty();
    }

    /** Whether a free queued before {@code epoch} waits. */
    boolean hasDeferredFreesBefore(long epoch) {
        for (long[] f : deferred) {
            if (f[2] < epoch) {
                return true;
            }
        }
        return false;
    }

    /**
     * Applies the queued decrements of epochs before {@code beforeEpoch} (the others stay queued); returns the host
     * offsets of clusters that became free (for hole punching). They leave the queue first: when a decrement fails
     * (an underflow: the refcounts were wrong), the ones after it are lost (leaked clusters, which a check repairs)
     * rather than the ones before it applied twice by the next flush.
     */
    List<Long> applyDeferredFrees(long beforeEpoch) throws IOException {
        List<Long> freed = new ArrayList<>();
        List<long[]> queued = new ArrayList<>();
        List<long[]> waiting = new ArrayList<>();
        for (long[] f : deferred) {
            (f[2] < beforeEpoch ? queued : waiting).add(f);
        }
        deferred.clear();
        deferred.addAll(waiting);
        for (long[] f : queued) {
            update(f[0], f[1], -1);
            for (long c = f[0]; c < f[0] + f[1]; c++) {
                if (get(c) == 0) {
                    freed.add(c << clusterBits);
                }
            }
        }
        return freed;
    }

    /** Decrements now: only for clusters nothing references, on disk or in memory. */
    void freeNow(long hostOffset, long count) throws IOException {
        update(hostOffset >> clusterBits, count, -1);
    }
}
