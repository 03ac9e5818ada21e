package io.jtap.formats.qcow2;

import io.jtap.formats.HostFile;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A write-back LRU cache of cluster-sized metadata tables (L2 tables, refcount blocks), keyed by host offset
 * (QEMU: {@code Qcow2Cache}).
 *
 * <p>Ordering is part of the contract: before any dirty table of this cache is written, {@link #beforeWrite} runs
 * (the L2 cache's makes refcount blocks durable first: "refcounts before references"). Not thread-safe: guarded by
 * the image's metadata lock. A {@link Table} reference is valid until the next call that may load or create
 * another table of the same cache; re-fetch after allocating.
 */
final class MetadataCache {
    /** Runs before this cache writes dirty tables. */
    interface BeforeWrite {
        void run() throws IOException;
    }

    /** One cached table. */
    static final class Table {
        final long offset;
        final ByteBuffer data;
        boolean dirty;

        Table(long offset, ByteBuffer data) {
            this.offset = offset;
            this.data = data;
        }
    }

    private final HostFile file;
    private final int tableSize;
    private final int capacity;
    private final LinkedHashMap<Long, Table> tables = new LinkedHashMap<>(64, 0.75f, true);
    private BeforeWrite beforeWrite = () -> { };

    MetadataCache(HostFile file, int tableSize, long cacheBytes) {
        this.file = file;
        this.tableSize = tableSize;
        // A few tables at least: one operation touches up to three (two L2 tables, or a block and its neighbour).
        this.capacity = (int) Math.max(4, Math.min(Integer.MAX_VALUE, cacheBytes / tableSize));
    }

    void setBeforeWrite(BeforeWrite hook) {
        this.beforeWrite = hook;
    }

    /** The table at {@code offset}, read from the file if not cached. */
    Table get(long offset) throws IOException {
        Table t = tables.get(offset);
        if (t != null) {
            return t;
        }
        makeRoom();
        ByteBuffer data = ByteBuffer.allocate(tableSize);
        file.read(data, offset);
        t = new Table(offset, data.clear());
        tables.put(offset, t);
        return t;
    }

    /** The table at {@code offset} if it is cached (a use, for the LRU order), else null; never reads the file. */
    Table cached(long offset) {
        return tables.get(offset);
    }

    /** A new all-zero table at {@code offset}, dirty; replaces any cached one. */
    Table create(long offset) throws IOException {
        tables.remove(offset);
        makeRoom();
        Table t = new Table(offset, ByteBuffer.allocate(tableSize));
        t.dirty = true;
        tables.put(offset, t);
        return t;
    }

    /** Installs a table the caller has just written to the file itself (clean). */
    void putClean(long offset, ByteBuffer data) throws IOException {
        tables.remove(offset);
        makeRoom();
        tables.put(offset, new Table(offset, data));
    }

    /** Forgets the table at {@code offset} (its cluster was freed) without writing it. */
    void drop(long offset) {
        tables.remove(offset);
    }

    boolean contains(long offset) {
        return tables.containsKey(offset);
    }

    boolean hasDirty() {
        for (Table t : tables.values()) {
            if (t.dirty) {
                return true;
            }
        }
        return false;
    }

    /** Writes every dirty table, in offset order, after {@link #beforeWrite}. Does not sync. */
    void writeDirty() throws IOException {
        List<Table> dirty = new ArrayList<>();
        for (Table t : tables.values()) {
            if (t.dirty) {
                dirty.add(t);
            }
        }
        if (dirty.isEmpty()) {
            return;
        }
        beforeWrite.run();
        dirty.sort(Comparator.comparingLong(t -> t.offset));
        for (Table t : dirty) {
            write(t);
        }
    }

    private void write(Table t) throws IOException {
        file.write(t.data.duplicate().clear(), t.offset);
        t.dirty = false;
    }

    private void makeRoom() throws IOException {
        while (tables.size() >= capacity) {
            Iterator<Map.Entry<Long, Table>> it = tables.entrySet().iterator();
            Table eldest = it.next().getValue();
            if (eldest.dirty) {
                beforeWrite.run();
                write(eldest);
            }
            tables.remove(eldest.offset);
        }
    }
}
