package io.jtap.formats.qcow2;

import io.jtap.formats.CorruptImageException;
import io.jtap.formats.HostFile;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.LongPredicate;

/**
 * Creating, deleting and applying internal snapshots (qcow2.txt, "Snapshots"; QEMU: {@code qcow2-snapshot.c}), each
 * as one atomic switch of the header.
 *
 * <p>Refcounts count paths: a cluster has one reference per L1 table (active or snapshot) through which it is
 * reached, so a data cluster in an L2 table that two L1 tables share has refcount 2. The active tables' COPIED flags
 * must say "refcount is exactly 1" (qemu-img check counts a mismatch either way as corruption, and a COPIED flag on
 * a shared cluster lets a write in place change a snapshot).
 *
 * <p>Why not QEMU's order: QEMU changes the refcounts and the active tables' COPIED flags in place, one after the
 * other; a crash between the two leaves flags that disagree with refcounts. Here every operation first writes what
 * it changes where the state in force does not look (new L1 tables, copies of the L2 tables whose flags change, a
 * new snapshot table, the changed refcount blocks and a new refcount table: {@link ShadowRefcounts}), syncs, and
 * then switches the header from the old state to the new one in a single write of bytes 24..71, inside the first
 * sector:
 *
 * <pre>
 * 24 size   32 crypt_method (unchanged)   36 l1_size   40 l1_table_offset   48 refcount_table_offset
 * 56 refcount_table_clusters   60 nb_snapshots   64 snapshots_offset
 * </pre>
 *
 * A crash before the switch leaves the old state, plus clusters nothing references with refcount 0; after it, the
 * new state, complete. Then the clusters it freed are deallocated. The only write before the switch into a cluster
 * the old state uses is into an L2 table that only snapshots reach (when applying), and only to its COPIED flags,
 * which mean nothing outside the active tables (qcow2.txt: they are rebuilt from the refcounts when a snapshot is
 * loaded).
 *
 * <p>Space: tables whose flags change get a copy for the active state instead of being shared (one cluster per L2
 * table that maps data, per snapshot); the old refcount blocks are replaced, not rewritten. Not thread-safe: one
 * instance per operation, under the image's metadata lock, after a flush; the caller reloads its caches after.
 */
final class InternalSnapshots {
    private static final int SWITCH_OFFSET = Qcow2Header.OFFSET_SIZE;
    private static final int SWITCH_LENGTH = 48;

    private final HostFile file;
    private final Qcow2Header header;
    private final int clusterBits;
    private final int clusterSize;
    private final SnapshotTable table;
    private final RefcountTable current;
    private final ShadowRefcounts refs;
    private final long fileLength;

    InternalSnapshots(HostFile file, Qcow2Header header, RefcountTable refcounts, SnapshotTable table)
            throws IOException {
        if (header.extendedL2()) {
            throw new IOException("snapshots of images with extended L2 entries are not supported");
        }
        this.file = file;
        this.header = header;
        this.clusterBits = header.clusterBits;
        this.clusterSize = header.clusterSize();
        this.table = table;
        this.current = refcounts;
        this.refs = new ShadowRefcounts(file, header, refcounts);
        this.fileLength = file.size();
    }

    /**
     * QEMU: {@code qcow2_snapshot_create}. The current L1 table, with the L2 tables and data it reaches, becomes the
     * snapshot's as it is; the active state gets a new L1 table that reaches the same data, which gains a path (so
     * no active entry stays COPIED), through copies of the L2 tables that had COPIED entries. Returns the new entry.
     */
    Qcow2Snapshot create(String name, Instant now) throws IOException {
        if (header.nbSnapshots >= Qcow2Header.MAX_SNAPSHOTS) {
            throw new IOException("too many snapshots: nb_snapshots=" + header.nbSnapshots + ", max="
                    + Qcow2Header.MAX_SNAPSHOTS);
        }
        long[] l1 = readL1(header.l1TableOffset, header.l1Size, "active");
        addTree(l1, 1);
        long[] active = activeTree(l1, l1.length, l2 -> true);
        long l1Offset = placeL1(active);
        Qcow2Snapshot snapshot = new Qcow2Snapshot(table.nextId(), name, header.l1TableOffset, header.l1Size,
                header.size, now.getEpochSecond(), now.getNano(), 0, 0, 0);
        List<byte[]> entries = new ArrayList<>();
        table.entries().forEach(e -> entries.add(e.raw()));
        entries.add(SnapshotTable.encode(snapshot));
        long tableOffset = placeTable(entries);
        commit(header.size, active.length, l1Offset, entries.size(), tableOffset);
        return snapshot;
    }

    /**
     * QEMU: {@code qcow2_snapshot_delete}. The snapshot's paths go (its L1 table, its L2 tables' and their data's
     * references); the active tables' COPIED flags follow the new refcounts, in copies of the L2 tables whose flags
     * change and a new L1 table if any entry changes.
     */
    void delete(Qcow2Snapshot target) throws IOException {
        int index = indexOf(target);
        long[] snapshotL1 = readL1(target.l1TableOffset(), target.l1Size(), "snapshot " + target.id());
        addTree(snapshotL1, -1);
        addL1Clusters(target.l1TableOffset(), target.l1Size(), -1);
        long[] l1 = readL1(header.l1TableOffset, header.l1Size, "active");
        long[] active = activeTree(l1, l1.length, l2 -> true);
        long l1Offset = header.l1TableOffset;
        if (!Arrays.equals(active, l1)) {
            l1Offset = placeL1(active);
            addL1Clusters(header.l1TableOffset, header.l1Size, -1);
        }
        List<byte[]> entries = new ArrayList<>();
        for (int i = 0; i < table.entries().size(); i++) {
            if (i != index) {
                entries.add(table.entries().get(i).raw());
            }
        }
        long tableOffset = placeTable(entries);
        commit(header.size, active.length, l1Offset, entries.size(), tableOffset);
    }

    /**
     * QEMU: {@code qcow2_snapshot_goto}. The active state becomes a new L1 table with the snapshot's entries (as
     * large as the larger of the two tables), reaching the snapshot's L2 tables, and the disk size the snapshot's;
     * the snapshot's paths are added before the old active state's are removed. COPIED flags follow the new
     * refcounts: fixed in place in tables only snapshots reach, in copies where the old active state reaches them.
     */
    void apply(Qcow2Snapshot target) throws IOException {
        indexOf(target);
        long newSize = target.diskSize() >= 0 ? target.diskSize() : header.size;
        long needed = Qcow2Header.l1EntriesFor(newSize, clusterBits, false);
        if (target.diskSize() < -1 || newSize % L2Entry.SECTOR != 0 || needed > Qcow2Header.MAX_L1_BYTES / 8) {
            throw new CorruptImageException("bad snapshot disk size: id=" + target.id() + ", disk_size="
                    + target.diskSize());
        }
        int l1Size = (int) Math.max(Math.max(header.l1Size, target.l1Size()), needed);
        long[] snapshotL1 = readL1(target.l1TableOffset(), target.l1Size(), "snapshot " + target.id());
        long[] l1 = readL1(header.l1TableOffset, header.l1Size, "active");
        addTree(snapshotL1, 1);
        addTree(l1, -1);
        addL1Clusters(header.l1TableOffset, header.l1Size, -1);
        long[] oldTables = Arrays.stream(l1).map(e -> e & ClusterMap.L1_OFFSET_MASK).filter(o -> o != 0).sorted()
                .toArray();
        long[] active = activeTree(snapshotL1, l1Size, l2 -> Arrays.binarySearch(oldTables, l2) >= 0);
        long l1Offset = placeL1(active);
        commit(newSize, l1Size, l1Offset, header.nbSnapshots, header.snapshotsOffset);
    }

    private int indexOf(Qcow2Snapshot target) {
        List<SnapshotTable.Entry> entries = table.entries();
        for (int i = 0; i < entries.size(); i++) {
            if (entries.get(i).snapshot().equals(target)) {
                return i;
            }
        }
        throw new IllegalArgumentException("not a snapshot of this image: id=" + target.id());
    }

    // ---------------------------------------------------------------- the trees

    private long[] readL1(long offset, int entries, String what) throws IOException {
        if (entries > 0 && (offset < clusterSize || offset > fileLength - entries * 8L)) {
            throw new CorruptImageException("L1 table outside the image: table=" + what + ", l1_table_offset="
                    + offset + ", l1_size=" + entries + ", file_length=" + fileLength);
        }
        ByteBuffer raw = ByteBuffer.allocate(Math.multiplyExact(entries, 8));
        file.read(raw, offset);
        long[] l1 = new long[entries];
        for (int i = 0; i < entries; i++) {
            l1[i] = raw.getLong(i * 8);
            long l2 = l1[i] & ClusterMap.L1_OFFSET_MASK;
            if ((l1[i] & ClusterMap.L1_RESERVED) != 0 || (l2 & (clusterSize - 1)) != 0
                    || l2 != 0 && (l2 < clusterSize || l2 > fileLength - clusterSize)) {
                throw new CorruptImageException("bad L1 entry: table=" + what + ", index=" + i + ", entry=0x"
                        + Long.toHexString(l1[i]) + ", file_length=" + fileLength);
            }
        }
        return l1;
    }

    private ByteBuffer readL2(long offset) throws IOException {
        ByteBuffer t = ByteBuffer.allocate(clusterSize);
        file.read(t, offset);
        return t.clear();
    }

    /** Adds {@code delta} references to every L2 table {@code l1} reaches and to every cluster those map. */
    private void addTree(long[] l1, long delta) throws IOException {
        int entries = clusterSize / 8;
        for (long e : l1) {
            long l2 = e & ClusterMap.L1_OFFSET_MASK;
            if (l2 == 0) {
                continue;
            }
            ByteBuffer t = readL2(l2);
            for (int k = 0; k < entries; k++) {
                long entry = t.getLong(k * 8);
                switch (L2Entry.type(entry, header.version)) {
                    case COMPRESSED -> {
                        long[] c = CompressedCluster.hostClusters(entry, clusterBits);
                        if (c[0] + (c[1] << clusterBits) > fileLength + clusterSize) {
                            throw new CorruptImageException("compressed cluster beyond the end of the file: l2_offset="
                                    + l2 + ", index=" + k + ", entry=0x" + Long.toHexString(entry));
                        }
                        refs.add(c[0] >> clusterBits, c[1], delta);
                    }
                    case NORMAL, ZERO -> {
                        long host = L2Entry.hostOffset(entry);
                        if (host == 0) {
                            continue;
                        }
                        if ((host & (clusterSize - 1)) != 0 || host >= fileLength) {
                            throw new CorruptImageException("bad L2 entry: l2_offset=" + l2 + ", index=" + k
                                    + ", entry=0x" + Long.toHexString(entry) + ", file_length=" + fileLength);
                        }
                        refs.add(host >> clusterBits, 1, delta);
                    }
                    case UNALLOCATED -> {
                    }
                }
            }
            refs.add(l2 >> clusterBits, 1, delta);
        }
    }

    /**
     * The active L1 table for the tables {@code l1} points to, with every reference change recorded: each L1 entry
     * COPIED exactly when its L2 table's new refcount is 1, each L2 entry COPIED exactly when its cluster's is. An L2
     * table whose flags change is fixed in place when the old active state does not reach it ({@code reachable}
     * false: only snapshots do, where flags mean nothing), else copied to a new cluster that takes over the active
     * path (so the old table, which the old state still uses, is not touched). Returns {@code size} entries.
     */
    private long[] activeTree(long[] l1, int size, LongPredicate reachable) throws IOException {
        long[] out = new long[size];
        for (int i = 0; i < l1.length; i++) {
            long l2 = l1[i] & ClusterMap.L1_OFFSET_MASK;
            if (l2 == 0) {
                continue;
            }
            ByteBuffer t = readL2(l2);
            if (fixFlags(t)) {
                if (reachable.test(l2)) {
                    long copy = refs.allocate(1);
                    file.write(t.clear(), copy);
                    refs.add(l2 >> clusterBits, 1, -1);
                    l2 = copy;
                } else {
                    if (current.isMetadata(l2)) {
                        throw new CorruptImageException("a snapshot's L2 table is other metadata: l2_offset=" + l2);
                    }
                    file.write(t.clear(), l2);
                }
            }
            out[i] = l2 | (refs.refcount(l2 >> clusterBits) == 1 ? L2Entry.COPIED : 0);
        }
        return out;
    }

    /** Sets each entry's COPIED from the new refcounts (QEMU: the addend-0 pass); returns whether any changed. */
    private boolean fixFlags(ByteBuffer t) throws IOException {
        boolean changed = false;
        for (int k = 0; k < clusterSize / 8; k++) {
            long entry = t.getLong(k * 8);
            long flagged = entry & ~L2Entry.COPIED;
            L2Entry.Type type = L2Entry.type(entry, header.version);
            if ((type == L2Entry.Type.NORMAL || type == L2Entry.Type.ZERO) && L2Entry.hostOffset(entry) != 0
                    && refs.refcount(L2Entry.hostOffset(entry) >> clusterBits) == 1) {
                flagged |= L2Entry.COPIED;
            }
            if (flagged != entry) {
                t.putLong(k * 8, flagged);
                changed = true;
            }
        }
        return changed;
    }

    // ---------------------------------------------------------------- new tables

    private void addL1Clusters(long offset, int entries, long delta) throws IOException {
        if (entries > 0) {
            refs.add(offset >> clusterBits, ((long) entries * 8 + clusterSize - 1) >> clusterBits, delta);
        }
    }

    /** Writes {@code l1} to new clusters (not synced); returns their offset (0 for an empty table). */
    private long placeL1(long[] l1) throws IOException {
        if (l1.length == 0) {
            return 0;
        }
        long clusters = ((long) l1.length * 8 + clusterSize - 1) >> clusterBits;
        long offset = refs.allocate(clusters);
        ByteBuffer raw = ByteBuffer.allocate((int) (clusters << clusterBits));
        for (int i = 0; i < l1.length; i++) {
            raw.putLong(i * 8, l1[i]);
        }
        file.write(raw, offset);
        return offset;
    }

    /**
     * Writes a snapshot table of {@code entries} to new clusters (not synced) and drops the old table's references;
     * returns the new offset (0 for no snapshots).
     */
    private long placeTable(List<byte[]> entries) throws IOException {
        long bytes = entries.stream().mapToLong(e -> e.length).sum();
        if (bytes > SnapshotTable.MAX_TABLE_BYTES) {
            throw new IOException("snapshot table would be too large: bytes=" + bytes + ", max="
                    + SnapshotTable.MAX_TABLE_BYTES);
        }
        if (header.nbSnapshots > 0 && table.lengthBytes() > 0) {
            long first = header.snapshotsOffset >> clusterBits;
            long last = (header.snapshotsOffset + table.lengthBytes() - 1) >> clusterBits;
            refs.add(first, last - first + 1, -1);
        }
        if (entries.isEmpty()) {
            return 0;
        }
        long clusters = (bytes + clusterSize - 1) >> clusterBits;
        long offset = refs.allocate(clusters);
        ByteBuffer raw = ByteBuffer.allocate((int) (clusters << clusterBits));
        for (byte[] e : entries) {
            raw.put(e);
        }
        file.write(raw.clear(), offset);
        return offset;
    }

    /**
     * The switch: the new refcount structure, a sync (everything the new state uses is durable), one write of the
     * header's bytes 24..71, a sync; then the header fields in memory, and the freed clusters deallocated.
     */
    private void commit(long size, int l1Size, long l1Offset, int nbSnapshots, long snapshotsOffset)
            throws IOException {
        ShadowRefcounts.Structure s = refs.writeStructure();
        file.sync();
        ByteBuffer fields = ByteBuffer.allocate(SWITCH_LENGTH);
        fields.putLong(0, size).putInt(8, header.cryptMethod).putInt(12, l1Size).putLong(16, l1Offset)
                .putLong(24, s.tableOffset()).putInt(32, s.tableClusters()).putInt(36, nbSnapshots)
                .putLong(40, snapshotsOffset);
        file.write(fields, SWITCH_OFFSET);
        // From here on the file holds the new header, whatever else fails: the caller reloads from these fields.
        header.size = size;
        header.l1Size = l1Size;
        header.l1TableOffset = l1Offset;
        header.refcountTableOffset = s.tableOffset();
        header.refcountTableClusters = s.tableClusters();
        header.nbSnapshots = nbSnapshots;
        header.snapshotsOffset = snapshotsOffset;
        file.sync();
        s.forEachFreedRange(clusterBits, file::punchHole);
    }
}
