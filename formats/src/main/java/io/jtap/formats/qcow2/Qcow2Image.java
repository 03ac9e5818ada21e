package io.jtap.formats.qcow2;

import io.jtap.formats.BackingReference;
import io.jtap.formats.BlockStatus;
import io.jtap.formats.Checkable;
import io.jtap.formats.CompressedWrites;
import io.jtap.formats.CorruptImageException;
import io.jtap.formats.Extent;
import io.jtap.formats.HostFile;
import io.jtap.formats.Image;
import io.jtap.formats.ImageCheck;
import io.jtap.formats.ImageFormat;
import io.jtap.formats.OpenOptions;
import io.jtap.formats.WriteMapping;
import io.jtap.formats.internal.RangeCheck;
import io.jtap.formats.internal.Zeros;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.ReentrantLock;

/**
 * An open qcow2 image (versions 2 and 3). Composes the concerns: {@link Qcow2Header}, {@link ClusterMap} (L1/L2),
 * {@link RefcountTable} (allocation), {@link MetadataCache}, {@link Qcow2Snapshot}, {@link CompressedCluster}.
 *
 * <p>Locking: one metadata lock per image guards mapping, allocation, the caches and {@link #pending}; data IO
 * (guest data, copy-on-write, backing reads) runs outside it.
 *
 * <p>Metadata ordering (QEMU's cache dependencies, made explicit in {@link #flushLocked}): guest data and refcount
 * increments are durable before the L2 tables that reference them are written; new L2 tables are durable before the
 * L1 entries that point to them; refcount decrements are applied only after the dropped references are durable.
 *
 * <p>Internal snapshots share clusters with the active state (refcount above 1, QCOW_OFLAG_COPIED clear in the active
 * L1/L2 entries). COPIED decides: a data cluster is written in place only when its L2 entry has it, and an L2 table is
 * modified only when its L1 entry has it; otherwise the write goes to a new cluster (the rest of the cluster, or the
 * whole L2 table, copied first) and the shared cluster loses one reference once the new one is linked and durable.
 * A damaged image's flags are not trusted blindly: an entry whose cluster the refcounts in memory contradict (beyond
 * them, refcount not 1, or metadata) is corruption ({@link #checkEntry}), so a COPIED entry pointing at 1 TiB does not
 * make a guest write grow the file to 1 TiB.
 * Snapshots are created, deleted and applied by {@link InternalSnapshots}, each in one atomic header write.
 *
 * <p>Writable images are restricted to what jtap maintains fully: no extended L2 entries, clean (no dirty bit:
 * lazy-refcount images left dirty need {@code qemu-img check -r all} first), not marked corrupt. Those open
 * read-only, or writable for {@link #check} and repair only ({@link OpenOptions#check()}). jtap itself keeps
 * refcounts exact, so it never sets the dirty bit.
 */
public final class Qcow2Image implements Image, Checkable, CompressedWrites {
    private enum DiscardMode { ADVISORY, ZEROES, FULL }

    /**
     * How far ahead of its end {@link #allocateBeforeWrites} allocates the host file: large enough that the file
     * system places each step in one piece and that a multi-GiB conversion makes few calls (about 30 per GiB), small
     * next to the memory and disk such a conversion uses anyway.
     */
    private static final long ALLOCATION_STEP = 32L << 20;

    private final Path path;
    private final HostFile file;
    private final Qcow2Header header;
    private final boolean readOnly;
    private final int clusterBits;
    private final int clusterSize;
    private final long cacheBytes;
    /** Replaced after a repair; guarded by {@link #lock}. */
    private ClusterMap map;
    /** Null when read-only, or when opened for check with a refcount structure too damaged to load. */
    private RefcountTable refcounts;
    /** Why writes are refused although the file is writable (opened for check); null when they are allowed. */
    private volatile String writeRefusal;
    /**
     * Host byte offset where the next compressed cluster may be packed, in a host cluster that earlier compressed
     * clusters share (one refcount per compressed cluster in it, as QEMU counts); 0 to start a new host cluster.
     * Reset whenever refcounts may have dropped, so it never points into a cluster that was freed and reused.
     */
    private long compressedTail;
    /** Compressed clusters read lately, decompressed; guarded by {@link #lock}. */
    private final DecompressedClusters decompressed;
    /** Compressed clusters inflated by reads (not served from {@link #decompressed}). */
    private final LongAdder decompressions = new LongAdder();
    private final Image backing;
    private final Optional<BackingReference> backingRef;
    /** Replaced by snapshot operations; written under {@link #lock}. */
    private volatile List<Qcow2Snapshot> snapshots;
    /** The snapshot table and the snapshots' L1 tables, as [offset, end) byte ranges, for the overlap check. */
    private long[][] snapshotMetadata;
    private final ReentrantLock lock = new ReentrantLock();

    /** The refcount of the host cluster at {@code hostOffset} as the image has it now, queued frees not applied. */
    long refcountForTest(long hostOffset) throws IOException {
        lock.lock();
        try {
            return refcounts.get(hostOffset >> clusterBits);
        } finally {
            lock.unlock();
        }
    }

    /** The metadata lock, for tests that hold it from another thread. */
    ReentrantLock lockForTest() {
        return lock;
    }
    private final Map<Long, PendingCluster> pending = new HashMap<>();
    /**
     * Write mappings neither completed nor aborted, by the parity of the free epoch they began in; in-place ones end
     * without the lock, hence atomic. See {@link #flushLocked} for the epochs.
     */
    private final AtomicInteger[] openMappings = {new AtomicInteger(), new AtomicInteger()};
    /** The free epoch: the tag of frees queued now, and the parity of mappings begun now. Under the lock. */
    private long freeEpoch;
    private volatile long size;
    private volatile CorruptImageException corrupt;
    private boolean closed;
    private volatile boolean syncsDisabled;

    private Qcow2Image(Path path, HostFile file, Qcow2Header header, boolean readOnly, ClusterMap map,
                       RefcountTable refcounts, Image backing, SnapshotTable snapshots, long size,
                       long cacheBytes, String writeRefusal) {
        this.path = path;
        this.file = file;
        this.header = header;
        this.readOnly = readOnly;
        this.clusterBits = header.clusterBits;
        this.clusterSize = header.clusterSize();
        this.decompressed = new DecompressedClusters(clusterSize);
        this.map = map;
        this.refcounts = refcounts;
        this.backing = backing;
        this.backingRef = header.backingFile.map(n -> new BackingReference(n, header.backingFormat));
        installSnapshots(snapshots);
        this.size = size;
        this.cacheBytes = cacheBytes;
        this.writeRefusal = writeRefusal;
        installCaches(map, refcounts);
    }

    private void installCaches(ClusterMap newMap, RefcountTable newRefcounts) {
        this.map = newMap;
        this.refcounts = newRefcounts;
        if (newRefcounts != null) {
            newRefcounts.setOtherMetadata(offset -> isMetadataCluster(offset));
            newMap.l2Cache().setBeforeWrite(() -> {
                // Refcounts, and the data the L2 entries point to, are durable before any L2 table is written.
                newRefcounts.flushBlocks();
                file.sync();
            });
        }
    }

    private void installSnapshots(SnapshotTable table) {
        List<long[]> ranges = new ArrayList<>();
        if (header.nbSnapshots > 0) {
            ranges.add(new long[] {header.snapshotsOffset, header.snapshotsOffset + table.lengthBytes()});
        }
        for (Qcow2Snapshot s : table.snapshots()) {
            ranges.add(new long[] {s.l1TableOffset(), s.l1TableOffset() + s.l1Size() * 8L});
        }
        this.snapshotMetadata = ranges.toArray(long[][]::new);
        this.snapshots = table.snapshots();
    }

    /**
     * Whether a host cluster holds the active L1 table or one of its L2 tables, the snapshot table or a snapshot's L1
     * table (under the lock).
     */
    private boolean isMetadataCluster(long offset) {
        return map.isL2Table(offset) || isL1OrSnapshotMetadata(offset);
    }

    /** Whether a host cluster holds the active L1 table, the snapshot table or a snapshot's L1 table. */
    private boolean isL1OrSnapshotMetadata(long offset) {
        long l1End = map.l1Offset() + map.l1Size() * 8L;
        if (offset + clusterSize > map.l1Offset() && offset < l1End) {
            return true;
        }
        for (long[] r : snapshotMetadata) {
            if (offset + clusterSize > r[0] && offset < r[1]) {
                return true;
            }
        }
        return false;
    }

    /** Opens the image in {@code file} (taking ownership of it) and its backing chain. */
    static Qcow2Image open(Path path, HostFile file, OpenOptions options) throws IOException {
        ByteBuffer start = ByteBuffer.allocate(Qcow2Header.V3_LENGTH);
        file.read(start, 0);
        int bits = Qcow2Header.peekClusterBits(start.clear());
        ByteBuffer cluster0 = ByteBuffer.allocate(1 << bits);
        file.read(cluster0, 0);
        Qcow2Header header = Qcow2Header.parse(cluster0.clear());
        header.validateAgainstFile(file.size());
        SnapshotTable snapshots = SnapshotTable.read(file, header);
        boolean readOnly = options.readOnly();
        String refusal = readOnly ? null : writeRefusal(header);
        if (!readOnly && !options.check()) {
            if (refusal != null) {
                throw new IOException("qcow2 image cannot be opened for writing: reason=" + refusal + ", path="
                        + path);
            }
        }
        long l1Offset = header.l1TableOffset;
        int l1Size = header.l1Size;
        long size = header.size;
        if (options.snapshot().isPresent()) {
            String want = options.snapshot().get();
            if (!readOnly) {
                throw new IOException("a snapshot opens read-only only: snapshot=" + want + ", path=" + path);
            }
            Qcow2Snapshot snap = findSnapshot(snapshots.snapshots(), want)
                    .orElseThrow(() -> new IOException("no such snapshot: snapshot=" + want + ", path=" + path));
            l1Offset = snap.l1TableOffset();
            l1Size = snap.l1Size();
            size = snap.diskSize() >= 0 ? snap.diskSize() : header.size;
            if (l1Size > 0 && l1Offset < header.clusterSize() || l1Offset > file.size() - l1Size * 8L
                    || snap.diskSize() < -1) {
                throw new CorruptImageException("bad snapshot: snapshot=" + want + ", l1_table_offset=" + l1Offset
                        + ", l1_size=" + l1Size + ", disk_size=" + snap.diskSize() + ", file_length=" + file.size());
            }
        }
        if (!readOnly && refusal == null && header.autoclear != 0) {
            // Autoclear features jtap does not maintain (persistent bitmaps) become invalid once it writes.
            file.write(ByteBuffer.allocate(8), Qcow2Header.OFFSET_AUTOCLEAR);
            file.sync();
            header.autoclear = 0;
        }
        ClusterMap map = new ClusterMap(file, header, l1Offset, l1Size, options.cacheBytes());
        RefcountTable refcounts = null;
        if (!readOnly) {
            try {
                refcounts = new RefcountTable(file, header, options.cacheBytes());
            } catch (CorruptImageException e) {
                if (!options.check()) {
                    throw e;
                }
                refusal = refusal != null ? refusal : "refcount structure damaged (" + e.getMessage() + ")";
            }
        }
        Image backing = null;
        if (header.backingFile.isPresent() && options.openBacking()) {
            backing = openBacking(path, header, options);
        }
        return new Qcow2Image(path, file, header, readOnly, map, refcounts, backing, snapshots, size,
                options.cacheBytes(), refusal);
    }

    private static String writeRefusal(Qcow2Header h) {
        if ((h.incompatible & Qcow2Header.INCOMPAT_CORRUPT) != 0) {
            return "marked corrupt (run qemu-img check -r all)";
        }
        if ((h.incompatible & Qcow2Header.INCOMPAT_DIRTY) != 0) {
            return "dirty bit set: lazy refcounts may be stale (run qemu-img check -r all)";
        }
        if (h.extendedL2()) {
            return "extended L2 entries (subclusters) are supported for reading only";
        }
        return null;
    }

    private static Image openBacking(Path path, Qcow2Header header, OpenOptions options) throws IOException {
        BackingReference ref = new BackingReference(header.backingFile.get(), header.backingFormat);
        Path self = path.toRealPath();
        Path target;
        try {
            target = ref.resolveAgainst(self);
        } catch (java.nio.file.InvalidPathException e) {
            throw new CorruptImageException("bad backing file name: backing_file=" + ref.name() + ", cause="
                    + e.getMessage(), e);
        }
        Path real = target.toRealPath();
        if (real.equals(self) || options.chain().contains(real)) {
            throw new IOException("backing chain loop: image=" + self + ", backing=" + real + ", chain="
                    + options.chain());
        }
        if (options.chain().size() + 1 >= OpenOptions.MAX_CHAIN_LENGTH) {
            throw new IOException("backing chain too long: length=" + (options.chain().size() + 1) + ", max="
                    + OpenOptions.MAX_CHAIN_LENGTH + ", image=" + self);
        }
        ImageFormat format = header.backingFormat.isPresent() ? options.formats().get(header.backingFormat.get())
                : options.formats().probe(real);
        return format.open(real, options.forBackingOf(self));
    }

    /** The internal snapshots, as listed in the snapshot table. */
    public List<Qcow2Snapshot> snapshots() {
        return snapshots;
    }

    /**
     * The snapshot whose id is {@code idOrName}, else the first whose name is (QEMU:
     * {@code find_snapshot_by_id_or_name}, as {@code qemu-img snapshot -a} looks snapshots up).
     */
    public Optional<Qcow2Snapshot> findSnapshot(String idOrName) {
        return findSnapshot(snapshots, idOrName);
    }

    private static Optional<Qcow2Snapshot> findSnapshot(List<Qcow2Snapshot> list, String idOrName) {
        return list.stream().filter(s -> s.id().equals(idOrName)).findFirst()
                .or(() -> list.stream().filter(s -> s.name().equals(idOrName)).findFirst());
    }

    /**
     * Takes an internal snapshot of the disk as it is now (QEMU: {@code qcow2_snapshot_create}; no VM state): the
     * next free numeric id, {@code name}, the current time and disk size. Flushes first; afterwards every cluster
     * the active state maps is shared with the snapshot and copied on the next write to it. Atomic: see
     * {@link InternalSnapshots}. Refuses a name another snapshot has (qemu-img allows duplicates; jtap does not
     * create them, because {@code -a} and {@code -d} then pick one of them silently), a name or table too large for
     * the format, and runs while writes are in flight ({@link #mapForWrite} mappings not completed or aborted).
     *
     * @return the new snapshot's entry
     */
    public Qcow2Snapshot createSnapshot(String name) throws IOException {
        if (name.getBytes(StandardCharsets.UTF_8).length > SnapshotTable.MAX_STRING_BYTES) {
            throw new IllegalArgumentException("snapshot name too long: bytes="
                    + name.getBytes(StandardCharsets.UTF_8).length + ", max="
                    + SnapshotTable.MAX_STRING_BYTES);
        }
        return snapshotOperation("create snapshot", (ops, table) -> {
            for (Qcow2Snapshot s : table.snapshots()) {
                if (s.name().equals(name)) {
                    throw new FileAlreadyExistsException(path.toString(), null,
                            "snapshot name exists: name=" + name + ", id=" + s.id());
                }
            }
            return ops.create(name, Instant.now());
        });
    }

    /**
     * Deletes the snapshot with id {@code id} (QEMU: {@code qcow2_snapshot_delete}): its entry leaves the table, the
     * clusters only it used are freed, and active clusters it no longer shares become writable in place again.
     * Atomic; refuses while writes are in flight.
     *
     * @throws NoSuchFileException when no snapshot has that id
     */
    public void deleteSnapshot(String id) throws IOException {
        snapshotOperation("delete snapshot", (ops, table) -> {
            ops.delete(byId(table, id));
            return null;
        });
    }

    /**
     * Reverts the disk to the snapshot with id {@code id} (QEMU: {@code qcow2_snapshot_goto}): the active state
     * becomes the snapshot's contents and disk size, sharing its clusters; what the active state held alone is
     * freed. The snapshot stays. Atomic; refuses while writes are in flight.
     *
     * @throws NoSuchFileException when no snapshot has that id
     */
    public void applySnapshot(String id) throws IOException {
        snapshotOperation("apply snapshot", (ops, table) -> {
            ops.apply(byId(table, id));
            return null;
        });
    }

    private Qcow2Snapshot byId(SnapshotTable table, String id) throws IOException {
        return table.snapshots().stream().filter(s -> s.id().equals(id)).findFirst()
                .orElseThrow(() -> new NoSuchFileException(path.toString(), null,
                        "no snapshot with id " + id));
    }

    /** One snapshot operation, given the table as on disk. */
    private interface SnapshotOperation<T> {
        T run(InternalSnapshots ops, SnapshotTable table) throws IOException;
    }

    /**
     * Runs a snapshot operation under the lock: refuses while writes are in flight, flushes (the operation reads the
     * metadata from the file and must see the active state as it is), runs, and reloads every cache from the
     * switched header. An operation that fails before its switch has changed nothing the image uses.
     */
    private <T> T snapshotOperation(String what, SnapshotOperation<T> op) throws IOException {
        checkWritable();
        lock.lock();
        try {
            checkWritable();
            if (closed) {
                throw new IOException("image is closed: path=" + path);
            }
            if (!pending.isEmpty() || openMappings() > 0) {
                throw new IOException("cannot " + what + " while writes are in flight: path=" + path
                        + ", write_mappings=" + openMappings());
            }
            file.deferSyncs(syncsDisabled);
            T result;
            try {
                flushLocked();
                SnapshotTable table = SnapshotTable.read(file, header);
                long switchedBefore = header.refcountTableOffset;
                try {
                    result = op.run(new InternalSnapshots(file, header, refcounts, table), table);
                } finally {
                    if (header.refcountTableOffset != switchedBefore) {
                        reloadAfterSwitch();
                    }
                }
            } catch (CorruptImageException e) {
                throw markCorrupt(e);
            }
            return result;
        } finally {
            lock.unlock();
        }
    }

    /** Under the lock, after a snapshot operation switched the header: every cache from the new state. */
    private void reloadAfterSwitch() throws IOException {
        installCaches(new ClusterMap(file, header, header.l1TableOffset, header.l1Size, cacheBytes),
                new RefcountTable(file, header, cacheBytes));
        installSnapshots(SnapshotTable.read(file, header));
        size = header.size;
        compressedTail = 0;
    }

    /** The image's format version (2 or 3). */
    public int version() {
        return header.version;
    }

    /** The cluster size in bytes. */
    public int clusterSize() {
        return clusterSize;
    }

    @Override
    public String formatName() {
        return "qcow2";
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public int alignment() {
        return 1;
    }

    @Override
    public boolean isReadOnly() {
        return readOnly;
    }

    @Override
    public Optional<BackingReference> backing() {
        return backingRef;
    }

    @Override
    public Optional<Image> backingImage() {
        return Optional.ofNullable(backing);
    }

    // ---------------------------------------------------------------- reading

    /**
     * As {@link #mapForRead} when the image's metadata lock is free and every L2 table of the range is in the cache;
     * otherwise null, at once.
     */
    @Override
    public List<Extent> mapForReadNow(long offset, long length) throws IOException {
        RangeCheck.check("mapForRead", offset, length, size, 1);
        if (!lock.tryLock()) {
            return null;
        }
        try {
            return mapLocked(offset, length, true);
        } finally {
            lock.unlock();
        }
    }

    @Override
    public List<Extent> mapForRead(long offset, long length) throws IOException {
        RangeCheck.check("mapForRead", offset, length, size, 1);
        lock.lock();
        try {
            return mapLocked(offset, length, false);
        } finally {
            lock.unlock();
        }
    }

    /** Under the lock: the range's extents; with {@code inMemoryOnly}, null where an L2 table is not cached. */
    private List<Extent> mapLocked(long offset, long length, boolean inMemoryOnly) throws IOException {
        List<Extent> out = new ArrayList<>();
        try {
            for (long pos = offset; pos < offset + length; ) {
                long g = pos >> clusterBits;
                if (inMemoryOnly && !map.lookupIsInMemory(g)) {
                    return null;
                }
                long to = Math.min(offset + length, (g + 1) << clusterBits);
                mapCluster(g, pos, to, out);
                pos = to;
            }
        } catch (CorruptImageException e) {
            throw markCorrupt(e);
        }
        return out;
    }

    private void mapCluster(long g, long from, long to, List<Extent> out) throws IOException {
        ClusterMap.Slot slot = map.lookup(g);
        long entry = slot.entry();
        long gStart = g << clusterBits;
        L2Entry.Type type = L2Entry.type(entry, header.version);
        if (type == L2Entry.Type.COMPRESSED) {
            add(out, Extent.transformed(from, to - from));
            return;
        }
        long host = L2Entry.hostOffset(entry);
        if ((host & (clusterSize - 1)) != 0 || type == L2Entry.Type.NORMAL && !header.extendedL2()
                && header.version >= 3 && (entry & L2Entry.NORMAL_RESERVED) != 0) {
            throw new CorruptImageException("bad L2 entry: guestOffset=" + gStart + ", entry=0x"
                    + Long.toHexString(entry));
        }
        if (!header.extendedL2()) {
            switch (type) {
                case NORMAL -> add(out, Extent.data(from, to - from, file, host + (from - gStart)));
                case ZERO -> add(out, Extent.zero(from, to - from));
                default -> addUnallocated(out, from, to);
            }
            return;
        }
        int sub = clusterSize / L2Entry.SUBCLUSTERS;
        long bitmap = slot.bitmap();
        for (long pos = from; pos < to; ) {
            int i = (int) ((pos - gStart) / sub);
            long end = Math.min(to, gStart + (long) (i + 1) * sub);
            boolean alloc = (bitmap & (1L << i)) != 0;
            boolean zero = (bitmap & (1L << (32 + i))) != 0;
            if (alloc && (zero || host == 0)) {
                throw new CorruptImageException("bad extended L2 entry: guestOffset=" + gStart + ", entry=0x"
                        + Long.toHexString(entry) + ", bitmap=0x" + Long.toHexString(bitmap));
            }
            if (alloc) {
                add(out, Extent.data(pos, end - pos, file, host + (pos - gStart)));
            } else if (zero) {
                add(out, Extent.zero(pos, end - pos));
            } else {
                addUnallocated(out, pos, end);
            }
            pos = end;
        }
    }

    private void addUnallocated(List<Extent> out, long from, long to) {
        if (backingRef.isEmpty()) {
            add(out, Extent.zero(from, to - from));
            return;
        }
        long limit = backing == null ? to : Math.min(to, Math.max(from, backing.size()));
        if (limit > from) {
            add(out, Extent.backing(from, limit - from));
        }
        if (to > limit) {
            add(out, Extent.zero(limit, to - limit));
        }
    }

    private static void add(List<Extent> out, Extent e) {
        if (!out.isEmpty()) {
            Extent merged = out.get(out.size() - 1).mergeWith(e);
            if (merged != null) {
                out.set(out.size() - 1, merged);
                return;
            }
        }
        out.add(e);
    }

    @Override
    public void read(long offset, ByteBuffer dst) throws IOException {
        long length = dst.remaining();
        for (Extent e : mapForRead(offset, length)) {
            ByteBuffer part = dst.slice(dst.position() + (int) (e.offset() - offset), (int) e.length());
            switch (e.kind()) {
                case DATA -> file.read(part, e.hostOffset());
                case ZERO -> fillZero(part);
                case BACKING -> {
                    if (backing == null) {
                        throw new IOException("backing image not open: path=" + path + ", backing="
                                + backingRef.map(BackingReference::name).orElse("?"));
                    }
                    backing.read(e.offset(), part);
                }
                case TRANSFORMED -> readCompressed(e.offset(), part);
            }
        }
        dst.position(dst.position() + (int) length);
    }

    private static void fillZero(ByteBuffer b) {
        Zeros.fill(b);
    }

    /** The L2 entry of guest cluster {@code g} as mapped now (for tests). */
    long l2Entry(long g) throws IOException {
        lock.lock();
        try {
            return map.lookup(g).entry();
        } finally {
            lock.unlock();
        }
    }

    /** Compressed clusters this image has inflated to serve reads (a cluster read again from memory is not counted). */
    long decompressions() {
        return decompressions.sum();
    }

    private void readCompressed(long offset, ByteBuffer dst) throws IOException {
        while (dst.hasRemaining()) {
            long g = offset >> clusterBits;
            int within = (int) (offset - (g << clusterBits));
            int n = Math.min(dst.remaining(), clusterSize - within);
            long entry;
            ClusterMap m;
            long generation;
            byte[] cluster;
            lock.lock();
            try {
                m = map;
                entry = m.lookup(g).entry();
                generation = m.generation();
                cluster = decompressed.get(m, g, entry);
            } finally {
                lock.unlock();
            }
            ByteBuffer part = dst.slice(dst.position(), n);
            if (L2Entry.type(entry, header.version) == L2Entry.Type.COMPRESSED) {
                if (cluster == null) {
                    // Inflated outside the lock (workers read in parallel), kept only if the map did not change.
                    cluster = new byte[clusterSize];
                    CompressedCluster.read(file, header, entry, cluster);
                    decompressions.increment();
                    lock.lock();
                    try {
                        decompressed.put(m, generation, g, entry, cluster);
                    } finally {
                        lock.unlock();
                    }
                }
                part.put(cluster, within, n);
            } else {
                read(offset, part);
            }
            dst.position(dst.position() + n);
            offset += n;
        }
    }

    @Override
    public BlockStatus blockStatus(long offset, long length) throws IOException {
        RangeCheck.check("blockStatus", offset, length, size, 1);
        if (length == 0 || offset >= size) {
            throw new IllegalArgumentException("blockStatus of an empty range: offset=" + offset + ", length="
                    + length + ", size=" + size);
        }
        BlockStatus.Kind kind = null;
        long pos = offset;
        lock.lock();
        try {
            while (pos < offset + length) {
                long g = pos >> clusterBits;
                long to = Math.min(offset + length, (g + 1) << clusterBits);
                ClusterMap.Slot slot = map.lookup(g);
                long step = to - pos;
                BlockStatus.Kind k;
                L2Entry.Type type = L2Entry.type(slot.entry(), header.version);
                if (header.extendedL2() && type != L2Entry.Type.COMPRESSED) {
                    int sub = clusterSize / L2Entry.SUBCLUSTERS;
                    int i = (int) ((pos - (g << clusterBits)) / sub);
                    step = Math.min(to, (g << clusterBits) + (long) (i + 1) * sub) - pos;
                    k = (slot.bitmap() & (1L << i)) != 0 ? BlockStatus.Kind.DATA
                            : (slot.bitmap() & (1L << (32 + i))) != 0 ? BlockStatus.Kind.ZERO
                            : BlockStatus.Kind.UNALLOCATED;
                } else {
                    k = switch (type) {
                        case NORMAL, COMPRESSED -> BlockStatus.Kind.DATA;
                        case ZERO -> BlockStatus.Kind.ZERO;
                        case UNALLOCATED -> BlockStatus.Kind.UNALLOCATED;
                    };
                }
                if (kind != null && k != kind) {
                    break;
                }
                kind = k;
                pos += step;
            }
        } finally {
            lock.unlock();
        }
        return new BlockStatus(kind, pos - offset);
    }

    // ---------------------------------------------------------------- writing

    private void checkWritable() throws IOException {
        RangeCheck.checkWritable(readOnly, this);
        String refusal = writeRefusal;
        if (refusal != null) {
            throw new IOException("qcow2 image opened for check refuses writes: reason=" + refusal + ", path="
                    + path);
        }
        CorruptImageException c = corrupt;
        if (c != null) {
            throw new CorruptImageException("image is marked corrupt, refusing writes: path=" + path + ", cause="
                    + c.getMessage(), c);
        }
    }

    /** Records corruption, sets the header's corrupt bit (v3, writable, best effort) and returns {@code e}. */
    CorruptImageException markCorrupt(CorruptImageException e) {
        if (corrupt == null) {
            corrupt = e;
            if (!readOnly && header.version >= 3) {
                try {
                    header.incompatible |= Qcow2Header.INCOMPAT_CORRUPT;
                    file.write(ByteBuffer.allocate(8).putLong(0, header.incompatible),
                            Qcow2Header.OFFSET_INCOMPATIBLE);
                    file.sync();
                } catch (IOException suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
        }
        return e;
    }

    @Override
    public void write(long offset, ByteBuffer src) throws IOException {
        long length = src.remaining();
        try (WriteMapping m = mapForWrite(offset, length)) {
            for (Extent e : m.extents()) {
                ByteBuffer part = src.slice(src.position() + (int) (e.offset() - offset), (int) e.length());
                file.write(part, e.hostOffset());
            }
            m.complete();
        }
        src.position(src.position() + (int) length);
    }

    /** What mapForWrite decided for one guest cluster. */
    private record Piece(long guestCluster, long from, long to, long inPlaceHost, PendingCluster cluster,
                         boolean allocatedHere) {
    }

    @Override
    public WriteMapping mapForWrite(long offset, long length) throws IOException {
        checkWritable();
        RangeCheck.check("mapForWrite", offset, length, size, 1);
        List<Piece> pieces = new ArrayList<>();
        int parity;
        lock.lock();
        try {
            checkWritable();
            try {
                List<long[]> wanted = new ArrayList<>();
                for (long pos = offset; pos < offset + length; ) {
                    long g = pos >> clusterBits;
                    long to = Math.min(offset + length, (g + 1) << clusterBits);
                    PendingCluster p = pending.get(g);
                    if (p != null) {
                        p.participants++;
                        pieces.add(new Piece(g, pos, to, -1, p, false));
                    } else {
                        long entry = map.lookup(g).entry();
                        if (writableInPlace(entry)) {
                            checkEntry(g, entry, true);
                            pieces.add(new Piece(g, pos, to, L2Entry.hostOffset(entry), null, false));
                        } else {
                            // copied from and released once replaced, or (a preallocated zero cluster) reused
                            checkEntry(g, entry, reusable(entry));
                            pieces.add(null);
                            wanted.add(new long[] {g, pos, to, entry, pieces.size() - 1});
                        }
                    }
                    pos = to;
                }
                reserve(wanted, pieces);
                parity = beginMapping();
            } catch (CorruptImageException e) {
                releaseJoins(pieces);
                throw markCorrupt(e);
            } catch (IOException | RuntimeException e) {
                releaseJoins(pieces);
                throw e;
            }
        } finally {
            lock.unlock();
        }
        List<Qcow2WriteMapping.Part> parts = new ArrayList<>();
        List<Extent> extents = new ArrayList<>();
        IOException failure = null;
        for (Piece piece : pieces) {
            long gStart = piece.guestCluster << clusterBits;
            if (piece.cluster == null) {
                add(extents, Extent.data(piece.from, piece.to - piece.from, file,
                        piece.inPlaceHost + (piece.from - gStart)));
                continue;
            }
            parts.add(new Qcow2WriteMapping.Part(piece.cluster, piece.from, piece.to));
            add(extents, Extent.data(piece.from, piece.to - piece.from, file,
                    piece.cluster.hostOffset + (piece.from - gStart)));
            if (piece.allocatedHere) {
                IOException cowFailure = null;
                try {
                    copyOnWrite(piece.cluster, gStart, piece.from);
                    copyOnWrite(piece.cluster, piece.to, gStart + clusterSize);
                } catch (IOException e) {
                    cowFailure = e;
                    failure = failure == null ? e : failure;
                }
                piece.cluster.cowFinished(cowFailure);
            }
        }
        for (Piece piece : pieces) {
            if (piece.cluster != null && !piece.allocatedHere && failure == null) {
                try {
                    piece.cluster.awaitCow();
                } catch (IOException e) {
                    failure = e;
                }
            }
        }
        if (failure != null) {
            abortParts(parts, parity);
            throw failure;
        }
        return new Qcow2WriteMapping(this, extents, parts, parity);
    }

    /**
     * As {@link #mapForWrite} when the whole range lies in clusters this image may write in place (NORMAL entries
     * with COPIED, none being allocated) whose L2 tables are in memory, and the metadata lock is free; otherwise
     * null, at once. The mapping reserves nothing: completing or aborting it only ends its count among the writes
     * in flight, without the lock.
     */
    @Override
    public WriteMapping mapForWriteNow(long offset, long length) throws IOException {
        checkWritable();
        RangeCheck.check("mapForWrite", offset, length, size, 1);
        if (!lock.tryLock()) {
            return null;
        }
        List<Extent> extents = new ArrayList<>(2);
        int parity;
        try {
            checkWritable();
            try {
                for (long pos = offset; pos < offset + length; ) {
                    long g = pos >> clusterBits;
                    long gStart = g << clusterBits;
                    long to = Math.min(offset + length, gStart + clusterSize);
                    if (pending.containsKey(g) || !map.lookupIsInMemory(g)) {
                        return null;
                    }
                    long entry = map.lookup(g).entry();
                    if (!writableInPlace(entry)) {
                        return null;
                    }
                    checkEntry(g, entry, true);
                    add(extents, Extent.data(pos, to - pos, file, L2Entry.hostOffset(entry) + (pos - gStart)));
                    pos = to;
                }
            } catch (CorruptImageException e) {
                throw markCorrupt(e);
            }
            parity = beginMapping();
        } finally {
            lock.unlock();
        }
        return new Qcow2WriteMapping(this, extents, List.of(), parity);
    }

    /** Under the lock: counts a new write mapping in the current free epoch; returns the epoch's parity. */
    private int beginMapping() {
        int parity = (int) (freeEpoch & 1);
        openMappings[parity].incrementAndGet();
        return parity;
    }

    /** Write mappings neither completed nor aborted. */
    private int openMappings() {
        return openMappings[0].get() + openMappings[1].get();
    }

    private void releaseJoins(List<Piece> pieces) {
        for (Piece p : pieces) {
            if (p != null && p.cluster != null && !p.allocatedHere) {
                p.cluster.participants--;
            }
        }
    }

    /** Under the lock: L2 tables and host clusters for the guest clusters in {@code wanted}. */
    private void reserve(List<long[]> wanted, List<Piece> pieces) throws IOException {
        if (wanted.isEmpty()) {
            return;
        }
        int fresh = 0;
        for (long[] w : wanted) {
            ensureL2(w[0]);
            if (!reusable(w[3])) {
                fresh++;
            }
        }
        long next = fresh == 0 ? -1 : refcounts.allocate(fresh);
        for (long[] w : wanted) {
            long entry = w[3];
            boolean reuse = reusable(entry);
            long host = reuse ? L2Entry.hostOffset(entry) : next;
            if (!reuse) {
                next += clusterSize;
            }
            PendingCluster p = new PendingCluster(w[0], host, entry, reuse);
            pending.put(w[0], p);
            pieces.set((int) w[4], new Piece(w[0], w[1], w[2], -1, p, true));
        }
    }

    /** A data cluster owned by this L2 alone (COPIED: refcount 1) takes a write in place. */
    private boolean writableInPlace(long entry) {
        return L2Entry.type(entry, header.version) == L2Entry.Type.NORMAL && (entry & L2Entry.COPIED) != 0;
    }

    /** A preallocated zero cluster owned by this L2 alone can take the data itself. */
    private boolean reusable(long entry) {
        return L2Entry.type(entry, header.version) == L2Entry.Type.ZERO && L2Entry.hostOffset(entry) != 0
                && (entry & L2Entry.COPIED) != 0;
    }

    /**
     * Under the lock: makes the L2 table of guest cluster {@code g} this image's to modify. A missing table is
     * created; a table shared with a snapshot (L1 entry without COPIED: refcount above 1) is copied to a new cluster
     * and the L1 entry switched to the copy, and the old table's reference is dropped once the L1 entry is durable
     * (QEMU: {@code l2_allocate}). A shared table is never written in place.
     */
    private void ensureL2(long g) throws IOException {
        if (map.hasL2(g)) {
            boolean inPlace = map.l2Writable(g);
            checkL2Table(g, inPlace);
            if (!inPlace) {
                long host = refcounts.allocate(1);
                long old = map.copyL2(g, host);
                refcounts.deferFree(old, 1, freeEpoch);
            }
            return;
        }
        long host = refcounts.allocate(1);
        map.installL2(g, host);
    }

    /**
     * Under the lock, before the host cluster(s) of guest cluster {@code g}'s L2 entry are used beyond reading them:
     * modified in place ({@code inPlace}: a COPIED data cluster, or a preallocated zero cluster reused), else
     * released once the entry is replaced. The entry must be well-formed, and what is in memory must not contradict
     * the refcount the use relies on ({@link RefcountTable#contradiction}: exactly 1 for COPIED, at least 1 for a
     * release) nor show the cluster holding metadata; otherwise the image is corrupt, and the request is refused
     * before it writes the cluster or drops the reference ({@link #refuse}). Without this a damaged COPIED entry
     * pointing at 1 TiB made a guest write grow the file to 1 TiB (QEMU trusts COPIED there; it checks alignment in
     * {@code qcow2_get_host_offset} and overlap with metadata in {@code qcow2_pre_write_overlap_check}), and one
     * pointing at metadata would overwrite it, or free it when discarded. Constant time, no IO: this runs for every
     * in-place write.
     */
    private void checkEntry(long g, long entry, boolean inPlace) throws IOException {
        L2Entry.Type type = L2Entry.type(entry, header.version);
        long host;
        String reason = null;
        if (type == L2Entry.Type.COMPRESSED) {
            long[] clusters = CompressedCluster.hostClusters(entry, clusterBits);
            host = L2Entry.compressedOffset(entry, clusterBits);
            for (long i = 0; i < clusters[1] && reason == null; i++) {
                long c = clusters[0] + (i << clusterBits);
                reason = refcounts.contradiction(c, false);
                if (reason == null && refcounts.isMetadata(c)) {
                    reason = "the compressed data overlaps metadata, host_cluster=" + c;
                }
            }
        } else {
            host = L2Entry.hostOffset(entry);
            if (host == 0) {
                return;
            }
            if ((host & (clusterSize - 1)) != 0) {
                reason = "host offset not cluster-aligned, cluster_size=" + clusterSize;
            } else if (type == L2Entry.Type.NORMAL && header.version >= 3 && (entry & L2Entry.NORMAL_RESERVED) != 0) {
                reason = "reserved bits set";
            } else {
                reason = refcounts.contradiction(host, inPlace);
                if (reason == null && refcounts.isMetadata(host)) {
                    reason = "the host cluster holds metadata (header, refcount table or block, L1 or L2 table, "
                            + "snapshot table)";
                }
            }
        }
        if (reason != null) {
            throw refuse("bad L2 entry, refusing to " + (inPlace ? "write its host cluster in place"
                    : "copy and release its host cluster") + ": guestOffset=" + (g << clusterBits) + ", entry=0x"
                    + Long.toHexString(entry) + ", hostOffset=" + host + ", reason=" + reason);
        }
    }

    /**
     * Under the lock, before the L2 table of guest cluster {@code g} is modified in place ({@code inPlace}: its L1
     * entry has COPIED) or copied and released: as {@link #checkEntry}, for the table's cluster (which
     * {@link ClusterMap#lookup} has found aligned and inside the file).
     */
    private void checkL2Table(long g, boolean inPlace) throws IOException {
        long l1Entry = map.l1Entry(g);
        long l2 = l1Entry & ClusterMap.L1_OFFSET_MASK;
        String reason = refcounts.contradiction(l2, inPlace);
        if (reason == null && (refcounts.isHeaderOrRefcounts(l2) || isL1OrSnapshotMetadata(l2))) {
            reason = "the L2 table overlaps other metadata (header, refcount table or block, L1 table, snapshot "
                    + "table)";
        }
        if (reason != null) {
            throw refuse("bad L1 entry, refusing to " + (inPlace ? "modify its L2 table in place"
                    : "copy and release its L2 table") + ": guestOffset=" + (g << clusterBits) + ", l1_index="
                    + g / map.l2Entries() + ", l1_entry=0x" + Long.toHexString(l1Entry) + ", l2_offset=" + l2
                    + ", reason=" + reason);
        }
    }

    /**
     * Under the lock: the corruption {@link #checkEntry} or {@link #checkL2Table} found, to throw (the caller marks the
     * image corrupt). Both run before their cluster is touched, so the metadata in memory is consistent (what the
     * request changed before, such as the clusters of a discard already dropped, is complete; the damage is on disk,
     * unchanged) and is flushed first: a corrupt image closes without a flush, and the writes completed before the
     * refusal are not lost.
     */
    private CorruptImageException refuse(String message) {
        CorruptImageException e = new CorruptImageException(message);
        try {
            flushLocked();
        } catch (IOException suppressed) {
            e.addSuppressed(suppressed);
        }
        return e;
    }

    /**
     * Fills guest range {@code [from, to)} of the new cluster with the cluster's old contents: the backing image
     * (up to its size and this image's size), zeros, a decompressed cluster, or the old host cluster.
     */
    private void copyOnWrite(PendingCluster p, long from, long to) throws IOException {
        if (from >= to) {
            return;
        }
        long gStart = p.guestCluster << clusterBits;
        long host = p.hostOffset + (from - gStart);
        long entry = p.oldEntry;
        int len = (int) (to - from);
        switch (L2Entry.type(entry, header.version)) {
            case ZERO -> file.zeroFill(host, len);
            case COMPRESSED -> {
                byte[] cluster = new byte[clusterSize];
                CompressedCluster.read(file, header, entry, cluster);
                file.write(ByteBuffer.wrap(cluster, (int) (from - gStart), len), host);
            }
            case NORMAL -> {
                ByteBuffer buf = ByteBuffer.allocate(len);
                file.read(buf, L2Entry.hostOffset(entry) + (from - gStart));
                file.write(buf.flip(), host);
            }
            case UNALLOCATED -> {
                long limit = backing == null ? from : Math.max(from, Math.min(to, Math.min(backing.size(), size)));
                if (limit > from) {
                    ByteBuffer buf = ByteBuffer.allocate((int) (limit - from));
                    backing.read(from, buf);
                    file.write(buf.flip(), host);
                }
                file.zeroFill(host + (limit - from), to - limit);
            }
        }
    }

    void completeParts(List<Qcow2WriteMapping.Part> parts, int parity) throws IOException {
        if (parts.isEmpty()) {
            // Written in place: nothing to link, so no lock (blkback completes these on its ring thread).
            openMappings[parity].decrementAndGet();
            return;
        }
        lock.lock();
        try {
            openMappings[parity].decrementAndGet();
            for (Qcow2WriteMapping.Part part : parts) {
                PendingCluster p = part.cluster();
                if (!p.linked) {
                    try {
                        link(p);
                    } catch (CorruptImageException e) {
                        throw markCorrupt(e);
                    }
                }
                p.participants--;
            }
        } finally {
            lock.unlock();
        }
    }

    /** Points the guest cluster's L2 entry at its new cluster and queues the old one's release. */
    private void link(PendingCluster p) throws IOException {
        map.set(p.guestCluster, p.hostOffset | L2Entry.COPIED);
        p.linked = true;
        pending.remove(p.guestCluster);
        if (!p.reusesOldCluster) {
            releaseOld(p.oldEntry);
        }
    }

    /** Queues the release of the host clusters an L2 entry held (after its replacement is durable). */
    private void releaseOld(long entry) {
        switch (L2Entry.type(entry, header.version)) {
            case COMPRESSED -> {
                long[] c = CompressedCluster.hostClusters(entry, clusterBits);
                refcounts.deferFree(c[0], c[1], freeEpoch);
            }
            case NORMAL, ZERO -> {
                if (L2Entry.hostOffset(entry) != 0) {
                    refcounts.deferFree(L2Entry.hostOffset(entry), 1, freeEpoch);
                }
            }
            case UNALLOCATED -> {
            }
        }
    }

    void abortParts(List<Qcow2WriteMapping.Part> parts, int parity) throws IOException {
        if (parts.isEmpty()) {
            openMappings[parity].decrementAndGet();
            return;
        }
        IOException failure = null;
        lock.lock();
        try {
            openMappings[parity].decrementAndGet();
            for (Qcow2WriteMapping.Part part : parts) {
                PendingCluster p = part.cluster();
                p.participants--;
                if (p.linked || p.participants > 0) {
                    // Others keep the cluster: give this range back its old contents rather than stale bytes.
                    try {
                        copyOnWrite(p, part.from(), part.to());
                    } catch (IOException e) {
                        failure = failure == null ? e : failure;
                    }
                } else {
                    pending.remove(p.guestCluster);
                    if (!p.reusesOldCluster) {
                        refcounts.freeNow(p.hostOffset, 1);
                    }
                }
            }
        } finally {
            lock.unlock();
        }
        if (failure != null) {
            throw failure;
        }
    }

    /**
     * Skips the syncs that order metadata updates until the next {@link #flush} (or close), which makes everything
     * durable: for a new image that nobody uses before it is complete, such as {@code convert}'s target, where a
     * crash in between leaves an unusable image in either case (QEMU's {@code qemu-img convert} runs its target with
     * {@code cache=unsafe}, without any sync). Without it, the first new L2 table or refcount block written in the
     * middle of a copy waits for the writeback of everything copied so far.
     */
    public void deferSyncsUntilFlush() {
        if (!readOnly) {
            file.deferSyncs(true);
        }
    }

    @Override
    public void disableSyncs() {
        if (!readOnly) {
            syncsDisabled = true;
            file.deferSyncs(true);
        }
    }

    /**
     * The host file is allocated ahead of its end in steps of {@link #ALLOCATION_STEP}, before the clusters there are
     * written: new clusters are allocated at the end of the file, in ascending order.
     */
    @Override
    public void allocateBeforeWrites() throws IOException {
        if (!readOnly) {
            file.allocateAheadOfEnd(ALLOCATION_STEP, clusterSize);
        }
    }

    @Override
    public void flush() throws IOException {
        if (readOnly) {
            return;
        }
        lock.lock();
        try {
            file.deferSyncs(syncsDisabled);
            if (!closed) {
                try {
                    flushLocked();
                } catch (CorruptImageException e) {
                    throw markCorrupt(e);
                }
            }
        } finally {
            lock.unlock();
        }
    }

    /**
     * The ordered flush: (1) refcount increments, sync — also making guest data durable; (2) L2 tables; (3) if the
     * L1 changed, sync, then L1; (4) sync; (5) refcount decrements for references dropped in (2)/(3), sync; then
     * punch holes where clusters became free.
     *
     * <p>A decrement waits, too, for every write mapping begun before it was queued: a write mapped into a cluster
     * before a discard (or a compressed write) replaced it may still be landing there (blkback serves several rings
     * of one disk at once, and a flush waits only for its own ring), and the cluster must not be reused — for
     * another guest cluster, or for metadata — or its hole punched until it has. Frees and mappings carry the free
     * epoch they began in, and mappings are counted by its parity; a flush applies the frees of every epoch whose
     * mappings have all ended, and opens a new epoch when the previous one's mappings have ended and this one has
     * frees waiting. A mapping's IO is bounded, so a free waits at most a flush or two, however busy the disk.
     */
    private void flushLocked() throws IOException {
        if (refcounts == null) {
            return;
        }
        if (map.l2Cache().hasDirty()) {
            map.l2Cache().writeDirty();
        } else {
            refcounts.flushBlocks();
        }
        if (map.l1Dirty()) {
            file.sync();
            map.writeL1();
        }
        file.sync();
        if (refcounts.hasDeferredFrees()) {
            // Mappings still open of the previous epoch; those of older epochs ended before the current one opened.
            boolean previousEnded = openMappings[(int) ((freeEpoch - 1) & 1)].get() == 0;
            long safeBefore = !previousEnded ? freeEpoch - 1
                    : openMappings[(int) (freeEpoch & 1)].get() == 0 ? Long.MAX_VALUE : freeEpoch;
            if (refcounts.hasDeferredFreesBefore(safeBefore)) {
                compressedTail = 0;
                List<Long> freed = refcounts.applyDeferredFrees(safeBefore);
                refcounts.flushBlocks();
                file.sync();
                for (long host : freed) {
                    file.punchHole(host, clusterSize);
                }
            }
            if (previousEnded && refcounts.hasDeferredFrees()) {
                // What still waits was queued in this epoch: open the next, so mappings begun from now on do not
                // hold it back.
                freeEpoch++;
            }
        }
    }

    @Override
    public void discard(long offset, long length) throws IOException {
        discardRange(offset, length, DiscardMode.ADVISORY);
    }

    @Override
    public void writeZeroes(long offset, long length) throws IOException {
        discardRange(offset, length, DiscardMode.ZEROES);
    }

    /**
     * Makes every cluster unallocated in this layer, so that the whole disk reads from the backing file again, and
     * frees the host clusters (QEMU: {@code bdrv_make_empty}, as {@code qemu-img commit} uses it).
     */
    public void makeEmpty() throws IOException {
        discardRange(0, size, DiscardMode.FULL);
    }

    private void discardRange(long offset, long length, DiscardMode mode) throws IOException {
        checkWritable();
        RangeCheck.check(mode == DiscardMode.ZEROES ? "writeZeroes" : "discard", offset, length, size, 1);
        List<long[]> explicitZeroes = new ArrayList<>();
        long end = offset + length;
        lock.lock();
        try {
            checkWritable();
            try {
                for (long pos = offset; pos < end; ) {
                    long g = pos >> clusterBits;
                    long gStart = g << clusterBits;
                    long to = Math.min(end, gStart + clusterSize);
                    boolean whole = pos == gStart && (to == gStart + clusterSize || to == size);
                    if (!whole || pending.containsKey(g) || !dropCluster(g, mode)) {
                        if (mode == DiscardMode.ZEROES) {
                            explicitZeroes.add(new long[] {pos, to});
                        }
                    }
                    pos = to;
                }
            } catch (CorruptImageException e) {
                throw markCorrupt(e);
            }
        } finally {
            lock.unlock();
        }
        for (long[] r : explicitZeroes) {
            writeZeroBytes(r[0], r[1] - r[0]);
        }
    }

    /**
     * Under the lock: replaces a whole cluster's entry by "unallocated" or "zero" as {@code mode} asks. Returns
     * false when the format cannot express the result (v2 zeroes over a backing file): the caller writes zeros.
     */
    private boolean dropCluster(long g, DiscardMode mode) throws IOException {
        boolean zeroFlag = header.version >= 3 && backingRef.isPresent() && mode != DiscardMode.FULL;
        if (mode == DiscardMode.ZEROES && backingRef.isPresent() && header.version < 3) {
            return false;
        }
        long entry = map.lookup(g).entry();
        L2Entry.Type type = L2Entry.type(entry, header.version);
        long newEntry = zeroFlag ? L2Entry.ZERO : 0;
        if (type == L2Entry.Type.UNALLOCATED && !zeroFlag
                || type == L2Entry.Type.ZERO && L2Entry.hostOffset(entry) == 0 && zeroFlag) {
            return true;
        }
        checkEntry(g, entry, false);
        if (!map.hasL2(g)) {
            if (mode == DiscardMode.ADVISORY) {
                return true;
            }
            ensureL2(g);
        } else if (!map.l2Writable(g)) {
            ensureL2(g);
        }
        map.set(g, newEntry);
        releaseOld(entry);
        return true;
    }

    private void writeZeroBytes(long offset, long length) throws IOException {
        ByteBuffer zeros = ByteBuffer.allocate((int) Math.min(length, 1 << 20));
        for (long done = 0; done < length; ) {
            zeros.clear().limit((int) Math.min(zeros.capacity(), length - done));
            int n = zeros.remaining();
            write(offset + done, zeros);
            done += n;
        }
    }

    @Override
    public void resize(long newSize) throws IOException {
        checkWritable();
        if (newSize < 0 || newSize % L2Entry.SECTOR != 0) {
            throw new IllegalArgumentException("qcow2 size must be a multiple of 512: newSize=" + newSize);
        }
        long old = size;
        lock.lock();
        try {
            if (!pending.isEmpty()) {
                throw new IOException("cannot resize while writes are pending: path=" + path + ", pending="
                        + pending.size());
            }
        } finally {
            lock.unlock();
        }
        if (newSize < old) {
            // As QEMU's qcow2_co_truncate: only whole clusters beyond the new size are discarded; the rest of the
            // last cluster keeps its bytes, and growing again (without a longer backing file) does not zero them,
            // so they read back as before the shrink. qemu-img resize does exactly this, and jtap's images must
            // read as qemu-img's do.
            long tailEnd = Math.min(old, (newSize + clusterSize - 1) & -(long) clusterSize);
            if (old > tailEnd) {
                discardRange(tailEnd, old - tailEnd, DiscardMode.FULL);
            }
            lock.lock();
            try {
                setSize(newSize);
            } finally {
                lock.unlock();
            }
        } else if (newSize > old) {
            lock.lock();
            try {
                growL1(newSize);
                setSize(newSize);
            } finally {
                lock.unlock();
            }
            if (backing != null && backing.size() > old) {
                // The new range reads as zeros, not as the longer backing image.
                writeZeroes(old, Math.min(newSize, backing.size()) - old);
            }
        }
    }

    private void setSize(long newSize) throws IOException {
        file.write(ByteBuffer.allocate(8).putLong(0, newSize), Qcow2Header.OFFSET_SIZE);
        file.sync();
        header.size = newSize;
        size = newSize;
    }

    /** Moves the L1 table to a larger one: written and synced before the header points to it. */
    private void growL1(long newSize) throws IOException {
        long needed = Qcow2Header.l1EntriesFor(newSize, clusterBits, false);
        if (needed <= map.l1Size()) {
            return;
        }
        if (needed * 8 > Integer.MAX_VALUE) {
            throw new IOException("L1 table would be too large: entries=" + needed);
        }
        flushLocked();
        int oldEntries = map.l1Size();
        long oldOffset = map.l1Offset();
        long[] grown = map.l1Copy((int) needed);
        int clusters = (int) ((needed * 8 + clusterSize - 1) >> clusterBits);
        long host = refcounts.allocate(clusters);
        ByteBuffer raw = ByteBuffer.allocate(clusters * clusterSize);
        for (int i = 0; i < grown.length; i++) {
            raw.putLong(i * 8, grown[i]);
        }
        file.write(raw, host);
        refcounts.flushBlocks();
        file.sync();
        file.write(ByteBuffer.allocate(12).putInt(0, (int) needed).putLong(4, host), Qcow2Header.OFFSET_L1_SIZE);
        file.sync();
        header.l1Size = (int) needed;
        header.l1TableOffset = host;
        map.replaceL1(host, grown);
        if (oldEntries > 0) {
            refcounts.freeNow(oldOffset, ((long) oldEntries * 8 + clusterSize - 1) >> clusterBits);
        }
    }

    @Override
    public void close() throws IOException {
        lock.lock();
        try {
            if (closed) {
                return;
            }
            closed = true;
            file.deferSyncs(syncsDisabled);
            try {
                if (!readOnly && corrupt == null) {
                    flushLocked();
                }
            } finally {
                try {
                    file.close();
                } finally {
                    if (backing != null) {
                        backing.close();
                    }
                }
            }
        } finally {
            lock.unlock();
        }
    }

    // ---------------------------------------------------------------- checking

    /**
     * {@inheritDoc}
     *
     * <p>qcow2: see {@link Qcow2Check}. After a repair that leaves no corruption and no check error the dirty and
     * corrupt bits are cleared, the metadata caches are reloaded, and an image opened for check accepts writes
     * unless it has features jtap only reads (extended L2 entries). Fails while two-phase writes are
     * pending.
     */
    @Override
    public ImageCheck check(boolean repairLeaks, boolean repairAll) throws IOException {
        boolean repair = repairLeaks || repairAll;
        if (repair && readOnly) {
            throw new AccessDeniedException(path.toString(), null, "image opened read-only: cannot repair");
        }
        lock.lock();
        try {
            if (closed) {
                throw new IOException("image is closed: path=" + path);
            }
            if (!pending.isEmpty()) {
                throw new IOException("cannot check while writes are pending: path=" + path + ", pending="
                        + pending.size());
            }
            if (!readOnly && corrupt == null) {
                flushLocked();
            }
            ImageCheck result = Qcow2Check.run(file, header, repairLeaks, repairAll);
            if (repair) {
                if (result.checkErrors() == 0 && result.corruptions() == 0
                        && (header.incompatible & (Qcow2Header.INCOMPAT_DIRTY | Qcow2Header.INCOMPAT_CORRUPT)) != 0) {
                    header.incompatible &= ~(Qcow2Header.INCOMPAT_DIRTY | Qcow2Header.INCOMPAT_CORRUPT);
                    file.write(ByteBuffer.allocate(8).putLong(0, header.incompatible),
                            Qcow2Header.OFFSET_INCOMPATIBLE);
                    file.sync();
                }
                if (result.checkErrors() == 0 && result.corruptions() == 0) {
                    corrupt = null;
                }
                reloadMetadata();
            }
            return result;
        } finally {
            lock.unlock();
        }
    }

    /** Under the lock, after a repair changed the file behind the caches: reads L1 and refcounts again. */
    private void reloadMetadata() throws IOException {
        ClusterMap newMap = new ClusterMap(file, header, header.l1TableOffset, header.l1Size, cacheBytes);
        RefcountTable newRefcounts = null;
        String refusal = writeRefusal(header);
        try {
            newRefcounts = new RefcountTable(file, header, cacheBytes);
        } catch (CorruptImageException e) {
            refusal = refusal != null ? refusal : "refcount structure damaged (" + e.getMessage() + ")";
        }
        installCaches(newMap, newRefcounts);
        writeRefusal = refusal;
        compressedTail = 0;
    }

    // ---------------------------------------------------------------- compressed writes

    @Override
    public int compressionUnit() {
        return clusterSize;
    }

    /** {@inheritDoc} qcow2: the image's compression type (deflate with a 4 KiB window, or zstd). */
    @Override
    public Optional<ByteBuffer> compress(ByteBuffer unit) throws IOException {
        if (unit.remaining() > clusterSize) {
            throw new IllegalArgumentException("more than one cluster: length=" + unit.remaining()
                    + ", cluster_size=" + clusterSize);
        }
        return Optional.ofNullable(CompressedCluster.compress(header.compressionType, clusterSize, unit));
    }

    /**
     * {@inheritDoc}
     *
     * <p>qcow2: packs the data after the previous compressed cluster when it fits in that host cluster, else starts
     * a new one; the old contents of the guest cluster are released once the new entry is durable. The data is
     * written under the metadata lock (this is the converter's path, not the guest's).
     */
    @Override
    public void writeCompressedData(long offset, ByteBuffer compressed) throws IOException {
        checkWritable();
        int length = compressed.remaining();
        if (offset < 0 || offset >= size || (offset & (clusterSize - 1)) != 0 || length <= 0
                || length >= clusterSize) {
            throw new IllegalArgumentException("bad compressed write: offset=" + offset + ", length=" + length
                    + ", cluster_size=" + clusterSize + ", size=" + size);
        }
        long g = offset >> clusterBits;
        lock.lock();
        try {
            checkWritable();
            try {
                if (pending.containsKey(g)) {
                    throw new IOException("compressed write over a cluster with a write in flight: offset=" + offset);
                }
                long old = map.lookup(g).entry();
                checkEntry(g, old, false);
                ensureL2(g);
                long host = allocateCompressedBytes(length);
                file.write(compressed.duplicate(), host);
                map.set(g, CompressedCluster.entry(host, length, clusterBits));
                releaseOld(old);
            } catch (CorruptImageException e) {
                throw markCorrupt(e);
            }
        } finally {
            lock.unlock();
        }
    }

    /**
     * Under the lock: {@code length} (< cluster size) bytes for compressed data, refcounted per user of each host
     * cluster they touch. As QEMU's {@code qcow2_alloc_bytes}: data that does not fit in the rest of the current host
     * cluster continues into the next one when that is the cluster allocated next (contiguous), so large clusters
     * are packed without a gap; otherwise it starts at the new cluster.
     */
    private long allocateCompressedBytes(int length) throws IOException {
        long tail = compressedTail;
        long free = tail == 0 ? 0 : clusterSize - (tail & (clusterSize - 1));
        if (tail != 0 && length <= free) {
            refcounts.update(tail >> clusterBits, 1, 1);
            compressedTail = length == free ? 0 : tail + length;
            return tail;
        }
        long host = refcounts.allocate(1);
        if (tail != 0 && host == tail + free) {
            refcounts.update(tail >> clusterBits, 1, 1);
            long end = tail + length;
            compressedTail = (end & (clusterSize - 1)) == 0 ? 0 : end;
            return tail;
        }
        compressedTail = host + length;
        return host;
    }

    /** The host file, for tests that observe the write stream. */
    HostFile hostFile() {
        return file;
    }

    @Override
    public String toString() {
        return "Qcow2Image[" + path + "]";
    }
}
