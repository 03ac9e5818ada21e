package io.jtap.formats.qcow2;

import io.jtap.formats.HostFile;
import io.jtap.formats.ImageCheck;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Consistency check and repair of a qcow2 image (QEMU: {@code qcow2_check_refcounts} and friends in
 * {@code qcow2-refcount.c}, whose messages and counting it follows so that results compare with
 * {@code qemu-img check}).
 *
 * <p>One pass builds the expected refcount of every host cluster by walking all metadata: the header cluster, the
 * active L1 table and its L2 tables (data, preallocated zero and compressed clusters), every snapshot's L1/L2
 * tables, the snapshot table, the refcount table and its blocks. It then compares with the refcounts stored in the
 * image. A stored refcount above the references is a <em>leak</em>; below is a <em>corruption</em> (two references
 * to one cluster, i.e. overlapping metadata or data, show up this way); references beyond the end of the file,
 * unaligned tables and bad flags are corruptions too. Last, the COPIED flags of the active tables are checked
 * against the refcounts.
 *
 * <p>Repair: leaks are freed in place (a decrement of a cluster nothing references is safe at any time);
 * corruptions of a refcount that is too low but not zero are raised in place; a damaged or stale refcount
 * structure (a referenced cluster with refcount 0, bad refcount table entries, refcount blocks with the wrong
 * refcount, a dirty lazy-refcounts image) is rebuilt: new refcount blocks and a new table are written into clusters
 * nothing uses (neither the data nor the old structure), synced, and only then does the header switch to them, so
 * a crash during the rebuild leaves the old structure in place.
 *
 * <p>Works on the file directly: the image has flushed its caches before and reloads them after. Memory: one
 * {@code int} per host cluster of the file, plus one table at a time.
 */
final class Qcow2Check {
    private static final long MAX_L1_BYTES = Qcow2Header.MAX_L1_BYTES;
    private static final long MAX_REFTABLE_BYTES = Qcow2Header.MAX_REFTABLE_BYTES;
    private static final int MAX_MESSAGES = 1000;
    private static final long REFT_RESERVED = 0x1ffL;
    /** QEMU's L2E_STD_RESERVED_MASK: bits 1-8 and 56-61 of a standard (not compressed) L2 entry. */
    private static final long L2_STD_RESERVED = 0x3f000000000001feL;
    /** The bitmaps extension and the autoclear bit that says its bitmaps are consistent (qcow2.txt, "Bitmaps"). */
    private static final int EXT_BITMAPS = 0x23852875;
    private static final long AUTOCLEAR_BITMAPS = 1L;
    /** QEMU's QCOW2_MAX_BITMAP_DIRECTORY_SIZE. */
    private static final long MAX_BITMAP_DIRECTORY_BYTES = 64L << 20;
    private static final long BITMAP_ENTRY_OFFSET_MASK = 0x00fffffffffffe00L;

    private final HostFile file;
    private final Qcow2Header header;
    private final int clusterBits;
    private final int clusterSize;
    private final boolean extendedL2;
    private final int refcountBits;
    private final long maxRefcount;
    /** The file's length; re-read after a rebuild appended to it. */
    private long fileLength;
    private final boolean fixLeaks;
    private final boolean fixErrors;
    private final List<String> messages;
    private long droppedMessages;
    /** Set while a rebuild re-walks the metadata: its findings were reported already. */
    private boolean quiet;

    private long leaks;
    private long corruptions;
    private long checkErrors;
    private long leaksFixed;
    private long corruptionsFixed;
    private long allocated;
    private long fragmented;
    private long compressed;
    private long highestCluster = -1;
    private boolean rebuild;
    /** Expected refcount per host cluster, from the walk. */
    private int[] refs;
    /** Clusters of the refcount table and blocks as found (kept intact by a rebuild until the header switches). */
    private final Set<Long> oldStructure = new HashSet<>();

    private Qcow2Check(HostFile file, Qcow2Header header, boolean fixLeaks, boolean fixErrors, List<String> messages)
            throws IOException {
        this.file = file;
        this.header = header;
        this.clusterBits = header.clusterBits;
        this.clusterSize = header.clusterSize();
        this.extendedL2 = header.extendedL2();
        this.refcountBits = header.refcountBits();
        this.maxRefcount = refcountBits == 64 ? Long.MAX_VALUE : (1L << refcountBits) - 1;
        this.fileLength = file.size();
        this.fixLeaks = fixLeaks || fixErrors;
        this.fixErrors = fixErrors;
        this.messages = messages;
    }

    /**
     * Checks and, as asked, repairs; after a repair, checks again read-only so that the result describes the
     * repaired image (as {@code qemu-img check -r} reports). The caller has flushed the image and holds its lock;
     * {@code header}'s refcount table fields are updated when the structure is rebuilt.
     */
    static ImageCheck run(HostFile file, Qcow2Header header, boolean fixLeaks, boolean fixErrors)
            throws IOException {
        List<String> messages = new ArrayList<>();
        Qcow2Check first = new Qcow2Check(file, header, fixLeaks, fixErrors, messages);
        first.checkAndRepair();
        if (first.leaksFixed == 0 && first.corruptionsFixed == 0) {
            return first.result(first, messages);
        }
        Qcow2Check again = new Qcow2Check(file, header, false, false, new ArrayList<>());
        again.checkAndRepair();
        return again.result(first, messages);
    }

    private ImageCheck result(Qcow2Check fixes, List<String> lines) {
        List<String> out = new ArrayList<>(lines);
        if (fixes.droppedMessages > 0) {
            out.add("... " + fixes.droppedMessages + " more messages");
        }
        long totalClusters = (header.size + clusterSize - 1) >> clusterBits;
        return new ImageCheck(leaks, corruptions, checkErrors, fixes.leaksFixed, fixes.corruptionsFixed,
                (highestCluster + 1) << clusterBits, totalClusters, allocated, fragmented, compressed, out);
    }

    private void say(String line) {
        if (quiet) {
            return;
        }
        if (messages.size() < MAX_MESSAGES) {
            messages.add(line);
        } else {
            droppedMessages++;
        }
    }

    // ---------------------------------------------------------------- the pass

    private void checkAndRepair() throws IOException {
        calculate(true);
        long walkLeaks = leaks;
        long walkCorruptions = corruptions;
        long walkErrors = checkErrors;
        compare(new RefView(), false, false);
        if (rebuild && fixErrors) {
            long oldLeaks = leaks;
            long oldCorruptions = corruptions;
            say("Rebuilding refcount structure");
            if (rebuildRefcounts()) {
                // Recount against the new structure (which the walk now includes).
                leaks = 0;
                corruptions = 0;
                checkErrors = 0;
                allocated = 0;
                fragmented = 0;
                compressed = 0;
                highestCluster = -1;
                rebuild = false;
                oldStructure.clear();
                fileLength = file.size();
                calculate(true);
                compare(new RefView(), false, false);
                if (rebuild) {
                    say("ERROR rebuilt refcount structure is still broken");
                }
                corruptionsFixed += Math.max(0, oldCorruptions - corruptions);
                leaksFixed += Math.max(0, oldLeaks - leaks);
            }
        } else if (fixLeaks) {
            if (rebuild) {
                say("ERROR need to rebuild refcount structures (-r all)");
                checkErrors++;
            }
            if (leaks > 0 || corruptions > 0) {
                leaks = walkLeaks;
                corruptions = walkCorruptions;
                checkErrors = walkErrors + (rebuild ? 1 : 0);
                highestCluster = -1;
                RefView view = new RefView();
                compare(view, fixLeaks, fixErrors);
                view.writeDirty();
            }
        }
        checkCopiedFlags();
    }

    /** The walk: expected refcounts of every cluster, and the walk's own findings. */
    private void calculate(boolean includeRefcountStructure) throws IOException {
        long clusters = ((fileLength + clusterSize - 1) >> clusterBits) + 1;
        if (clusters > Integer.MAX_VALUE - 8) {
            throw new IOException("image too large to check: clusters=" + clusters + ", file_length=" + fileLength);
        }
        // One int per host cluster (qemu-img check keeps one counter per cluster too). A damaged image can have a
        // sparse file far longer than its data (a write placed by a corrupted offset): refuse cleanly rather than
        // exhaust the heap.
        Runtime rt = Runtime.getRuntime();
        long available = rt.maxMemory() - (rt.totalMemory() - rt.freeMemory());
        long need = clusters * Integer.BYTES;
        if (need > available / 2) {
            throw new IOException("image too large to check with this heap: file_length=" + fileLength
                    + ", cluster_size=" + clusterSize + ", clusters=" + clusters + " need " + (need >> 20)
                    + " MiB of refcount counters, " + (available >> 20) + " MiB of heap available (raise -Xmx)");
        }
        refs = new int[(int) clusters];
        reference(0, clusterSize);
        checkL1(header.l1TableOffset, header.l1Size, true, "active");
        if (header.nbSnapshots > 0) {
            List<Qcow2Snapshot> snapshots;
            long[] length = new long[1];
            try {
                SnapshotTable table = SnapshotTable.read(file, header);
                snapshots = table.snapshots();
                length[0] = table.lengthBytes();
            } catch (IOException e) {
                say("ERROR cannot read the snapshot table: " + e.getMessage());
                checkErrors++;
                snapshots = List.of();
            }
            for (Qcow2Snapshot sn : snapshots) {
                if ((sn.l1TableOffset() & (clusterSize - 1)) != 0) {
                    say("ERROR snapshot " + sn.id() + " (" + sn.name() + ") l1_offset=0x"
                            + Long.toHexString(sn.l1TableOffset())
                            + ": L1 table is not cluster aligned; snapshot table entry corrupted");
                    corruptions++;
                    continue;
                }
                if (sn.l1Size() > MAX_L1_BYTES / 8) {
                    say("ERROR snapshot " + sn.id() + " (" + sn.name() + ") l1_size=0x"
                            + Integer.toHexString(sn.l1Size())
                            + ": L1 table is too large; snapshot table entry corrupted");
                    corruptions++;
                    continue;
                }
                checkL1(sn.l1TableOffset(), sn.l1Size(), false, "snapshot " + sn.id());
            }
            reference(header.snapshotsOffset, length[0]);
        }
        checkBitmaps();
        if (includeRefcountStructure) {
            long tableBytes = (long) header.refcountTableClusters * clusterSize;
            reference(header.refcountTableOffset, tableBytes);
            for (long c = header.refcountTableOffset >> clusterBits;
                 c <= (header.refcountTableOffset + tableBytes - 1) >> clusterBits; c++) {
                oldStructure.add(c);
            }
            checkRefcountBlocks();
        }
    }

    /**
     * Persistent dirty bitmaps (QEMU: qcow2_check_bitmaps_refcounts): the directory, each bitmap table and its data
     * clusters. Only when the autoclear bit says the bitmaps are consistent; otherwise QEMU ignores them too (and
     * their clusters are leaks).
     */
    private void checkBitmaps() throws IOException {
        if ((header.autoclear & AUTOCLEAR_BITMAPS) == 0) {
            return;
        }
        for (Qcow2Header.Extension ext : header.extensions) {
            if (ext.type() != EXT_BITMAPS || ext.data().length < 24) {
                continue;
            }
            ByteBuffer e = ByteBuffer.wrap(ext.data());
            long nbBitmaps = e.getInt(0) & 0xffffffffL;
            long dirSize = e.getLong(8);
            long dirOffset = e.getLong(16);
            if (dirSize < 0 || dirSize > MAX_BITMAP_DIRECTORY_BYTES || dirOffset < 0 || dirOffset > fileLength
                    || dirSize > fileLength - dirOffset) {
                say("ERROR bitmap directory out of range: offset=0x" + Long.toHexString(dirOffset) + " size="
                        + dirSize);
                corruptions++;
                continue;
            }
            reference(dirOffset, dirSize);
            ByteBuffer dir = ByteBuffer.allocate((int) dirSize);
            file.read(dir, dirOffset);
            int pos = 0;
            for (long i = 0; i < nbBitmaps; i++) {
                if (pos + 24 > dirSize) {
                    say("ERROR bitmap directory truncated: bitmap=" + i);
                    corruptions++;
                    break;
                }
                long tableOffset = dir.getLong(pos);
                long tableSize = dir.getInt(pos + 8) & 0xffffffffL;
                int nameSize = dir.getShort(pos + 18) & 0xffff;
                long extraSize = dir.getInt(pos + 20) & 0xffffffffL;
                reference(tableOffset, tableSize * 8);
                if (tableOffset < 0 || tableOffset > fileLength || tableSize * 8 > fileLength - tableOffset) {
                    say("ERROR bitmap table out of range: bitmap=" + i + " offset=0x" + Long.toHexString(tableOffset));
                    corruptions++;
                } else {
                    ByteBuffer table = ByteBuffer.allocate((int) (tableSize * 8));
                    file.read(table, tableOffset);
                    for (int k = 0; k < tableSize; k++) {
                        long entry = table.getLong(k * 8);
                        long offset = entry & BITMAP_ENTRY_OFFSET_MASK;
                        if ((entry & ~BITMAP_ENTRY_OFFSET_MASK & ~1L) != 0 || (offset & (clusterSize - 1)) != 0
                                || offset != 0 && (entry & 1) != 0) {
                            say("ERROR bitmap table entry corrupted: bitmap=" + i + " entry=0x"
                                    + Long.toHexString(entry));
                            corruptions++;
                            continue;
                        }
                        reference(offset, offset == 0 ? 0 : clusterSize);
                    }
                }
                pos += (int) ((24 + extraSize + nameSize + 7) & ~7L);
                if (pos < 0 || pos > dirSize) {
                    break;
                }
            }
        }
    }

    /** Adds one reference to every cluster of {@code [offset, offset+length)} (QEMU: qcow2_inc_refcounts_imrt). */
    private void reference(long offset, long length) {
        if (length <= 0) {
            return;
        }
        // The last cluster of an image may be partly beyond the end of the file, not more.
        if (offset < 0 || offset + length - fileLength >= clusterSize || offset + length < 0) {
            say("ERROR: counting reference for region exceeding the end of the file by one cluster or more: "
                    + "offset 0x" + Long.toHexString(offset) + " size 0x" + Long.toHexString(length));
            corruptions++;
            return;
        }
        for (long c = offset >> clusterBits; c <= (offset + length - 1) >> clusterBits; c++) {
            if (refs[(int) c] == Integer.MAX_VALUE || refs[(int) c] >= maxRefcount) {
                say("ERROR: overflow cluster offset=0x" + Long.toHexString(c << clusterBits));
                corruptions++;
                continue;
            }
            refs[(int) c]++;
        }
    }

    private long expected(long cluster) {
        return cluster < refs.length ? refs[(int) cluster] : 0;
    }

    private void checkL1(long l1Offset, int l1Size, boolean active, String what) throws IOException {
        if (l1Size <= 0) {
            return;
        }
        reference(l1Offset, l1Size * 8L);
        long[] l1 = readL1(l1Offset, l1Size);
        for (int i = 0; i < l1.length; i++) {
            long l2 = l1[i] & ClusterMap.L1_OFFSET_MASK;
            if ((l1[i] & ClusterMap.L1_RESERVED) != 0) {
                say("ERROR found L1 entry with reserved bits set: " + what + " l1_index=" + i + " l1_entry=0x"
                        + Long.toHexString(l1[i]));
                corruptions++;
            }
            if (l2 == 0) {
                continue;
            }
            reference(l2, clusterSize);
            if ((l2 & (clusterSize - 1)) != 0) {
                say("ERROR l2_offset=" + Long.toHexString(l2) + ": Table is not cluster aligned; L1 entry corrupted");
                corruptions++;
                // and walked where it points anyway, as QEMU does, so that the counts compare
            }
            checkL2(l2, active);
        }
    }

    private long[] readL1(long l1Offset, int l1Size) throws IOException {
        ByteBuffer raw = ByteBuffer.allocate(l1Size * 8);
        file.read(raw, l1Offset);
        long[] l1 = new long[l1Size];
        for (int i = 0; i < l1Size; i++) {
            l1[i] = raw.getLong(i * 8);
        }
        return l1;
    }

    private void checkL2(long l2Offset, boolean active) throws IOException {
        ByteBuffer table = ByteBuffer.allocate(clusterSize);
        file.read(table, l2Offset);
        int entryBytes = extendedL2 ? 16 : 8;
        long nextContiguous = 0;
        for (int i = 0; i < clusterSize / entryBytes; i++) {
            long entry = table.getLong(i * entryBytes);
            long bitmap = extendedL2 ? table.getLong(i * entryBytes + 8) : 0;
            L2Entry.Type type = L2Entry.type(entry, header.version);
            if (type != L2Entry.Type.COMPRESSED && (entry & L2_STD_RESERVED) != 0) {
                say("ERROR found l2 entry with reserved bits set: " + Long.toHexString(entry));
                corruptions++;
            }
            if (extendedL2 && type == L2Entry.Type.ZERO) {
                // With subclusters, bit 0 is not a zero flag: the bitmap says what reads as zeros.
                type = L2Entry.hostOffset(entry) == 0 ? L2Entry.Type.UNALLOCATED : L2Entry.Type.NORMAL;
            }
            switch (type) {
                case COMPRESSED -> {
                    if ((entry & L2Entry.COPIED) != 0) {
                        say("ERROR: coffset=0x" + Long.toHexString(L2Entry.compressedOffset(entry, clusterBits))
                                + ": copied flag must never be set for compressed clusters");
                        corruptions++;
                    }
                    if (bitmap != 0) {
                        say("ERROR compressed cluster " + i + " with non-zero subcluster allocation bitmap, entry=0x"
                                + Long.toHexString(entry));
                        corruptions++;
                        continue;
                    }
                    reference(L2Entry.compressedOffset(entry, clusterBits),
                            L2Entry.compressedLength(entry, clusterBits));
                    if (active) {
                        allocated++;
                        compressed++;
                        fragmented++;
                    }
                }
                case NORMAL, ZERO -> {
                    long offset = L2Entry.hostOffset(entry);
                    if (offset == 0) {
                        continue;
                    }
                    if (((bitmap >>> 32) & bitmap) != 0) {
                        say("ERROR offset=" + Long.toHexString(offset)
                                + ": Allocated cluster has corrupted subcluster allocation bitmap");
                        corruptions++;
                    }
                    if ((offset & (clusterSize - 1)) != 0) {
                        say("ERROR offset=" + Long.toHexString(offset) + ": "
                                + (type == L2Entry.Type.ZERO ? "Preallocated" : "Data")
                                + " cluster is not properly aligned; L2 entry corrupted.");
                        corruptions++;
                    }
                    if (active) {
                        allocated++;
                        if (nextContiguous != 0 && offset != nextContiguous) {
                            fragmented++;
                        }
                        nextContiguous = offset + clusterSize;
                    }
                    reference(offset, clusterSize);
                }
                case UNALLOCATED -> {
                    if ((bitmap & 0xffffffffL) != 0) {
                        say("ERROR: Unallocated cluster has non-zero subcluster allocation map");
                        corruptions++;
                    }
                }
            }
        }
    }

    private void checkRefcountBlocks() throws IOException {
        long[] table = readRefcountTable();
        for (int i = 0; i < table.length; i++) {
            long offset = table[i] & RefcountTable.TABLE_OFFSET_MASK;
            long cluster = offset >> clusterBits;
            if ((table[i] & REFT_RESERVED) != 0) {
                say("ERROR refcount table entry " + i + " has reserved bits set");
                corruptions++;
                rebuild = true;
                continue;
            }
            if ((offset & (clusterSize - 1)) != 0) {
                say("ERROR refcount block " + i + " is not cluster aligned; refcount table entry corrupted");
                corruptions++;
                rebuild = true;
                continue;
            }
            if (offset == 0) {
                continue;
            }
            if (offset < 0 || cluster >= (fileLength + clusterSize - 1) >> clusterBits) {
                say("ERROR refcount block " + i + " is outside image");
                corruptions++;
                rebuild = true;
                continue;
            }
            oldStructure.add(cluster);
            reference(offset, clusterSize);
            if (expected(cluster) != 1) {
                say("ERROR refcount block " + i + " refcount=" + expected(cluster));
                corruptions++;
                rebuild = true;
            }
        }
    }

    private long[] readRefcountTable() throws IOException {
        long bytes = (long) header.refcountTableClusters * clusterSize;
        if (bytes > MAX_REFTABLE_BYTES) {
            throw new IOException("refcount table too large to check: refcount_table_clusters="
                    + header.refcountTableClusters);
        }
        ByteBuffer raw = ByteBuffer.allocate((int) bytes);
        file.read(raw, header.refcountTableOffset);
        long[] table = new long[(int) (bytes / 8)];
        for (int i = 0; i < table.length; i++) {
            table[i] = raw.getLong(i * 8);
        }
        return table;
    }

    // ---------------------------------------------------------------- comparing

    /** The refcounts stored in the image, one block in memory at a time plus the blocks a repair changed. */
    private final class RefView {
        private final long[] table;
        private final long perBlock = (long) clusterSize * 8 / refcountBits;
        private final Map<Long, ByteBuffer> dirty = new TreeMap<>();
        private long currentIndex = -1;
        private ByteBuffer current;

        RefView() throws IOException {
            table = readRefcountTable();
        }

        /** The stored refcount, or -1 when its block cannot be read. */
        long get(long cluster) throws IOException {
            ByteBuffer block = block(cluster / perBlock);
            return block == null ? (cluster / perBlock < table.length
                    && table[(int) (cluster / perBlock)] != 0 ? -1 : 0)
                    : RefcountTable.readEntry(block, cluster % perBlock, refcountBits);
        }

        private ByteBuffer block(long index) throws IOException {
            if (index >= table.length || table[(int) index] == 0) {
                return null;
            }
            long entry = table[(int) index];
            if ((entry & REFT_RESERVED) != 0 || (entry & (clusterSize - 1)) != 0 || entry < 0) {
                return null;
            }
            if (index == currentIndex) {
                return current;
            }
            ByteBuffer b = dirty.get(index);
            if (b == null) {
                b = ByteBuffer.allocate(clusterSize);
                file.read(b, entry);
            }
            currentIndex = index;
            current = b;
            return b;
        }

        /** Sets a stored refcount whose block exists (callers only fix clusters with a non-zero refcount). */
        void set(long cluster, long value) throws IOException {
            ByteBuffer block = block(cluster / perBlock);
            RefcountTable.writeEntry(block, cluster % perBlock, value, refcountBits);
            dirty.put(cluster / perBlock, block);
        }

        void writeDirty() throws IOException {
            if (dirty.isEmpty()) {
                return;
            }
            for (Map.Entry<Long, ByteBuffer> e : dirty.entrySet()) {
                file.write(e.getValue().duplicate().clear(), table[(int) (long) e.getKey()]);
            }
            file.sync();
            dirty.clear();
        }
    }

    /** QEMU: compare_refcounts. Fixes in place when allowed; a stored refcount of 0 needs a rebuild. */
    private void compare(RefView view, boolean leaksMayBeFixed, boolean errorsMayBeFixed) throws IOException {
        for (long c = 0; c < refs.length; c++) {
            long stored = view.get(c);
            if (stored < 0) {
                say("ERROR cannot get refcount for cluster " + c + ": refcount block unreadable");
                checkErrors++;
                continue;
            }
            long want = refs[(int) c];
            if (stored > 0 || want > 0) {
                highestCluster = c;
            }
            if (stored == want) {
                continue;
            }
            boolean fixing = false;
            if (stored == 0) {
                rebuild = true;
            } else if (stored > want && leaksMayBeFixed) {
                fixing = true;
            } else if (stored < want && errorsMayBeFixed) {
                fixing = true;
            }
            say((fixing ? "Repairing" : stored < want ? "ERROR" : "Leaked") + " cluster " + c + " refcount="
                    + stored + " reference=" + want);
            if (fixing) {
                view.set(c, want);
                if (stored > want) {
                    leaksFixed++;
                } else {
                    corruptionsFixed++;
                }
                continue;
            }
            if (stored < want) {
                corruptions++;
            } else {
                leaks++;
            }
        }
    }

    /** QEMU: check_oflag_copied. COPIED must be set exactly when the refcount is 1 (active tables only). */
    private void checkCopiedFlags() throws IOException {
        boolean repair = fixErrors || fixLeaks && checkErrors == 0 && corruptions == 0 && leaks == 0;
        RefView view = new RefView();
        long[] l1 = readL1(header.l1TableOffset, header.l1Size);
        int entryBytes = extendedL2 ? 16 : 8;
        for (int i = 0; i < l1.length; i++) {
            long l2 = l1[i] & ClusterMap.L1_OFFSET_MASK;
            if (l2 == 0 || (l2 & (clusterSize - 1)) != 0 || l2 + clusterSize > fileLength) {
                continue;
            }
            long rc = view.get(l2 >> clusterBits);
            if (rc < 0) {
                continue;
            }
            if ((rc == 1) != ((l1[i] & L2Entry.COPIED) != 0)) {
                say((repair ? "Repairing" : "ERROR") + " OFLAG_COPIED L2 cluster: l1_index=" + i + " l1_entry="
                        + Long.toHexString(l1[i]) + " refcount=" + rc);
                if (repair) {
                    l1[i] = rc == 1 ? l1[i] | L2Entry.COPIED : l1[i] & ~L2Entry.COPIED;
                    file.write(ByteBuffer.allocate(8).putLong(0, l1[i]), header.l1TableOffset + i * 8L);
                    file.sync();
                    corruptionsFixed++;
                } else {
                    corruptions++;
                }
            }
            ByteBuffer table = ByteBuffer.allocate(clusterSize);
            file.read(table, l2);
            int fixedHere = 0;
            for (int k = 0; k < clusterSize / entryBytes; k++) {
                long entry = table.getLong(k * entryBytes);
                L2Entry.Type type = L2Entry.type(entry, header.version);
                long offset = L2Entry.hostOffset(entry);
                if (type == L2Entry.Type.COMPRESSED || offset == 0 || (offset & (clusterSize - 1)) != 0) {
                    continue;
                }
                long drc = view.get(offset >> clusterBits);
                if (drc < 0) {
                    continue;
                }
                if ((drc == 1) != ((entry & L2Entry.COPIED) != 0)) {
                    say((repair ? "Repairing" : "ERROR") + " OFLAG_COPIED data cluster: l2_entry="
                            + Long.toHexString(entry) + " refcount=" + drc);
                    if (repair) {
                        table.putLong(k * entryBytes, drc == 1 ? entry | L2Entry.COPIED : entry & ~L2Entry.COPIED);
                        fixedHere++;
                    } else {
                        corruptions++;
                    }
                }
            }
            if (fixedHere > 0) {
                file.write(table.clear(), l2);
                file.sync();
                corruptionsFixed += fixedHere;
            }
        }
    }

    // ---------------------------------------------------------------- rebuilding

    /**
     * Writes a new refcount structure for the references the walk found (excluding the old structure), in clusters
     * nothing uses, then switches the header to it. Returns false (changing nothing) when it cannot.
     */
    private boolean rebuildRefcounts() throws IOException {
        Set<Long> old = new HashSet<>(oldStructure);
        long[] saved = {leaks, corruptions, checkErrors, allocated, fragmented, compressed};
        boolean savedRebuild = rebuild;
        quiet = true;
        try {
            calculate(false);
        } finally {
            quiet = false;
            leaks = saved[0];
            corruptions = saved[1];
            checkErrors = saved[2];
            allocated = saved[3];
            fragmented = saved[4];
            compressed = saved[5];
            rebuild = savedRebuild;
        }
        long perBlock = (long) clusterSize * 8 / refcountBits;
        int[] counts = Arrays.copyOf(refs, refs.length);
        for (int c = 0; c < counts.length; c++) {
            if (counts[c] > maxRefcount) {
                say("ERROR cannot rebuild refcounts: cluster " + c + " has " + counts[c]
                        + " references, more than refcount_bits=" + refcountBits + " can hold");
                checkErrors++;
                return false;
            }
        }
        long tableClusters = 1;
        TreeMap<Long, Long> blocks;
        long tableStart;
        while (true) {
            // Allocations beyond the array are recorded in 'extra'; everything there is free otherwise.
            Set<Long> extra = new HashSet<>();
            Allocator alloc = new Allocator(counts, extra, old);
            tableStart = alloc.run(tableClusters);
            blocks = new TreeMap<>();
            for (long bi = 0; bi * perBlock <= alloc.highest(); bi++) {
                if (alloc.anyUsed(bi * perBlock, (bi + 1) * perBlock)) {
                    blocks.put(bi, alloc.run(1));
                }
            }
            long entries = blocks.isEmpty() ? 1 : blocks.lastKey() + 1;
            long needed = Math.max(1, (entries * 8 + clusterSize - 1) / clusterSize);
            if (needed <= tableClusters) {
                counts = alloc.counts();
                break;
            }
            tableClusters = needed;
            counts = Arrays.copyOf(refs, refs.length);
        }
        if (tableClusters * clusterSize > MAX_REFTABLE_BYTES) {
            say("ERROR cannot rebuild refcounts: table too large, clusters=" + tableClusters);
            checkErrors++;
            return false;
        }
        ByteBuffer rawTable = ByteBuffer.allocate((int) (tableClusters * clusterSize));
        for (Map.Entry<Long, Long> e : blocks.entrySet()) {
            long bi = e.getKey();
            ByteBuffer block = ByteBuffer.allocate(clusterSize);
            for (long c = bi * perBlock; c < (bi + 1) * perBlock && c < counts.length; c++) {
                RefcountTable.writeEntry(block, c - bi * perBlock, counts[(int) c], refcountBits);
            }
            file.write(block.clear(), e.getValue() << clusterBits);
            rawTable.putLong((int) (bi * 8), e.getValue() << clusterBits);
        }
        file.write(rawTable.clear(), tableStart << clusterBits);
        file.sync();
        // The switch: one 12-byte write of refcount_table_offset and refcount_table_clusters.
        file.write(ByteBuffer.allocate(12).putLong(0, tableStart << clusterBits).putInt(8, (int) tableClusters),
                Qcow2Header.OFFSET_REFCOUNT_TABLE);
        file.sync();
        header.refcountTableOffset = tableStart << clusterBits;
        header.refcountTableClusters = (int) tableClusters;
        return true;
    }

    /** First-fit allocation of clusters nothing references and the old refcount structure does not occupy. */
    private static final class Allocator {
        private int[] counts;
        private final Set<Long> extra;
        private final Set<Long> old;
        private long hint;
        private long highest = -1;

        Allocator(int[] counts, Set<Long> extra, Set<Long> old) {
            this.counts = counts;
            this.extra = extra;
            this.old = old;
            for (int c = counts.length - 1; c >= 0; c--) {
                if (counts[c] > 0) {
                    highest = c;
                    break;
                }
            }
        }

        private boolean free(long c) {
            return (c >= counts.length || counts[(int) c] == 0) && !extra.contains(c) && !old.contains(c);
        }

        long run(long count) {
            long start = hint;
            while (true) {
                long n = 0;
                while (n < count && free(start + n)) {
                    n++;
                }
                if (n == count) {
                    break;
                }
                start += n + 1;
            }
            for (long c = start; c < start + count; c++) {
                if (c < counts.length) {
                    counts[(int) c] = 1;
                } else {
                    extra.add(c);
                }
                highest = Math.max(highest, c);
            }
            if (start == hint) {
                hint = start + count;
            }
            return start;
        }

        long highest() {
            return highest;
        }

        boolean anyUsed(long from, long to) {
            for (long c = from; c < to && c <= highest; c++) {
                if (c < counts.length ? counts[(int) c] > 0 : extra.contains(c)) {
                    return true;
                }
            }
            return false;
        }

        /** The counts including allocations, grown to cover them. */
        int[] counts() {
            if (highest >= counts.length) {
                counts = Arrays.copyOf(counts, (int) highest + 1);
            }
            for (long c : extra) {
                counts[(int) c] = 1;
            }
            return counts;
        }
    }
}
