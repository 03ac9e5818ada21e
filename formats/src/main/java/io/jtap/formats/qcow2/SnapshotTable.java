package io.jtap.formats.qcow2;

import io.jtap.formats.CorruptImageException;
import io.jtap.formats.HostFile;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * The snapshot table (qcow2.txt, "Snapshots"; QEMU: {@code qcow2-snapshot.c}): {@code nb_snapshots} entries from
 * {@code snapshots_offset}, contiguous, each padded to a multiple of 8 bytes. All big-endian.
 *
 * <pre>
 *  0 l1_table_offset (u64)   8 l1_size (u32)   12 id_str_size (u16)   14 name_size (u16)
 * 16 date_sec (u32)         20 date_nsec (u32)  24 vm_clock_nsec (u64)
 * 32 vm_state_size (u32)    36 extra_data_size (u32)
 * 40 extra data: 40 vm_state_size_large (u64), 48 disk_size (u64), 56 icount (u64); v3 needs at least up to 55
 *    then the id string, the name (neither NUL-terminated), zero padding to a multiple of 8
 * </pre>
 *
 * Entries jtap rewrites (the table is always rewritten whole, to new clusters) keep their bytes exactly, extra data
 * it does not know included; new entries carry the 24 bytes of extra data QEMU 7.2 writes.
 */
final class SnapshotTable {
    static final int FIXED_LENGTH = 40;
    /** The extra data jtap writes: vm_state_size_large, disk_size, icount (as QEMU 7.2's qemu-img does). */
    static final int EXTRA_LENGTH = 24;
    /** QEMU's QCOW_MAX_SNAPSHOT_EXTRA_DATA. */
    static final int MAX_EXTRA_LENGTH = 1024;
    /** QEMU's QCOW_MAX_SNAPSHOTS_SIZE: the table's limit (64 MiB), also jtap's guard against a corrupt count. */
    static final int MAX_TABLE_BYTES = 64 << 20;
    /** name_size and id_str_size are 16 bits wide. */
    static final int MAX_STRING_BYTES = 0xffff;

    /** One entry: what it says, and its bytes as found (padding included), to be written back unchanged. */
    record Entry(Qcow2Snapshot snapshot, byte[] raw) {
    }

    private final List<Entry> entries;
    private final long lengthBytes;

    private SnapshotTable(List<Entry> entries, long lengthBytes) {
        this.entries = List.copyOf(entries);
        this.lengthBytes = lengthBytes;
    }

    /** The entries, in table order. */
    List<Entry> entries() {
        return entries;
    }

    List<Qcow2Snapshot> snapshots() {
        return entries.stream().map(Entry::snapshot).toList();
    }

    /** The table's length in bytes as found (each entry padded to 8). */
    long lengthBytes() {
        return lengthBytes;
    }

    /** Reads and validates the table the header points to. */
    static SnapshotTable read(HostFile file, Qcow2Header header) throws IOException {
        List<Entry> out = new ArrayList<>();
        long pos = header.snapshotsOffset;
        for (int i = 0; i < header.nbSnapshots; i++) {
            if (pos - header.snapshotsOffset > MAX_TABLE_BYTES) {
                throw new CorruptImageException("snapshot table too large: index=" + i + ", max_bytes="
                        + MAX_TABLE_BYTES);
            }
            ByteBuffer fixed = ByteBuffer.allocate(FIXED_LENGTH);
            file.read(fixed, pos);
            int idSize = fixed.getShort(12) & 0xffff;
            int nameSize = fixed.getShort(14) & 0xffff;
            int extraSize = fixed.getInt(36);
            if (extraSize < 0 || extraSize > MAX_EXTRA_LENGTH) {
                throw new CorruptImageException("bad snapshot table entry: index=" + i + ", extra_data_size="
                        + extraSize);
            }
            int length = (FIXED_LENGTH + extraSize + idSize + nameSize + 7) & ~7;
            ByteBuffer raw = ByteBuffer.allocate(length);
            file.read(raw, pos);
            Qcow2Snapshot s = parse(raw.clear(), extraSize, idSize, nameSize);
            if ((s.l1TableOffset() & (header.clusterSize() - 1)) != 0 || s.l1TableOffset() < 0 || s.l1Size() < 0
                    || s.l1Size() > Qcow2Header.MAX_L1_BYTES / 8) {
                throw new CorruptImageException("bad snapshot L1 table: index=" + i + ", l1_table_offset="
                        + s.l1TableOffset() + ", l1_size=" + s.l1Size());
            }
            out.add(new Entry(s, raw.array()));
            pos += length;
        }
        return new SnapshotTable(out, pos - header.snapshotsOffset);
    }

    private static Qcow2Snapshot parse(ByteBuffer e, int extraSize, int idSize, int nameSize) {
        long vmStateSize = extraSize >= 8 ? e.getLong(FIXED_LENGTH) : e.getInt(32) & 0xffffffffL;
        long diskSize = extraSize >= 16 ? e.getLong(FIXED_LENGTH + 8) : -1;
        long icount = extraSize >= 24 ? e.getLong(FIXED_LENGTH + 16) : -1;
        byte[] id = new byte[idSize];
        byte[] name = new byte[nameSize];
        e.get(FIXED_LENGTH + extraSize, id).get(FIXED_LENGTH + extraSize + idSize, name);
        return new Qcow2Snapshot(new String(id, StandardCharsets.UTF_8), new String(name, StandardCharsets.UTF_8),
                e.getLong(0), e.getInt(8), diskSize, e.getInt(16) & 0xffffffffL, e.getInt(20), e.getLong(24),
                vmStateSize, icount);
    }

    /**
     * The entry of a new disk-only snapshot (no VM state, VM clock 0, icount 0, as qemu-img writes), padded to 8.
     * The id and name must fit their 16-bit length fields.
     */
    static byte[] encode(Qcow2Snapshot s) {
        byte[] id = s.id().getBytes(StandardCharsets.UTF_8);
        byte[] name = s.name().getBytes(StandardCharsets.UTF_8);
        if (id.length > MAX_STRING_BYTES || name.length > MAX_STRING_BYTES) {
            throw new IllegalArgumentException("snapshot id or name too long: id_bytes=" + id.length
                    + ", name_bytes=" + name.length + ", max=" + MAX_STRING_BYTES);
        }
        int length = (FIXED_LENGTH + EXTRA_LENGTH + id.length + name.length + 7) & ~7;
        ByteBuffer b = ByteBuffer.allocate(length);
        b.putLong(0, s.l1TableOffset()).putInt(8, s.l1Size()).putShort(12, (short) id.length)
                .putShort(14, (short) name.length).putInt(16, (int) s.dateSeconds()).putInt(20, s.dateNanos())
                .putLong(24, s.vmClockNanos()).putInt(32, (int) Math.min(s.vmStateSize(), 0xffffffffL))
                .putInt(36, EXTRA_LENGTH);
        b.putLong(FIXED_LENGTH, s.vmStateSize()).putLong(FIXED_LENGTH + 8, s.diskSize())
                .putLong(FIXED_LENGTH + 16, s.icount());
        b.put(FIXED_LENGTH + EXTRA_LENGTH, id).put(FIXED_LENGTH + EXTRA_LENGTH + id.length, name);
        return b.array();
    }

    /** The next free id: one more than the largest numeric id (QEMU: {@code find_new_snapshot_id}). */
    String nextId() {
        long max = 0;
        for (Entry e : entries) {
            try {
                max = Math.max(max, Long.parseLong(e.snapshot().id()));
            } catch (NumberFormatException notNumeric) {
                // QEMU's strtoul reads such an id as 0 (or its numeric prefix); it cannot collide with max + 1
            }
        }
        return Long.toString(max + 1);
    }
}
