package io.jtap.formats.qcow2;

import io.jtap.formats.CorruptImageException;
import io.jtap.formats.HostFile;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * One internal snapshot from the snapshot table (qcow2.txt, "Snapshots"):
 *
 * <pre>
 *  0 l1_table_offset  8 l1_size  12 id_str_size  14 name_size  16 date_sec  20 date_nsec  24 vm_clock_nsec
 * 32 vm_state_size   36 extra_data_size  40 extra data (8 vm_state_size_large, 8 disk_size, 8 icount)
 *    then id string, name string, padding to 8
 * </pre>
 *
 * @param id            the id string
 * @param name          the name
 * @param l1TableOffset the snapshot's L1 table
 * @param l1Size        its entries
 * @param diskSize      virtual size at the time of the snapshot (-1 when the entry predates the field)
 * @param dateSeconds   creation time, seconds since the epoch
 */
public record Qcow2Snapshot(String id, String name, long l1TableOffset, int l1Size, long diskSize,
                            long dateSeconds) {
    /** QEMU's limit on the snapshot table size (64 MiB), also jtap's guard against a corrupt count. */
    static final int MAX_TABLE_BYTES = 64 << 20;

    static List<Qcow2Snapshot> readTable(HostFile file, Qcow2Header header) throws IOException {
        return readTable(file, header, new long[1]);
    }

    /** Reads the table; {@code lengthOut[0]} receives its length in bytes (each entry padded to 8). */
    static List<Qcow2Snapshot> readTable(HostFile file, Qcow2Header header, long[] lengthOut) throws IOException {
        List<Qcow2Snapshot> out = new ArrayList<>();
        long pos = header.snapshotsOffset;
        for (int i = 0; i < header.nbSnapshots; i++) {
            ByteBuffer fixed = ByteBuffer.allocate(40);
            file.read(fixed, pos);
            int idSize = fixed.getShort(12) & 0xffff;
            int nameSize = fixed.getShort(14) & 0xffff;
            int extraSize = fixed.getInt(36);
            if (extraSize < 0 || extraSize > 1024 || pos - header.snapshotsOffset > MAX_TABLE_BYTES) {
                throw new CorruptImageException("bad snapshot table entry: index=" + i + ", extra_data_size="
                        + extraSize);
            }
            ByteBuffer rest = ByteBuffer.allocate(extraSize + idSize + nameSize);
            file.read(rest, pos + 40);
            long diskSize = extraSize >= 16 ? rest.getLong(8) : -1;
            byte[] id = new byte[idSize];
            byte[] name = new byte[nameSize];
            rest.get(extraSize, id).get(extraSize + idSize, name);
            Qcow2Snapshot s = new Qcow2Snapshot(new String(id, StandardCharsets.UTF_8),
                    new String(name, StandardCharsets.UTF_8), fixed.getLong(0), fixed.getInt(8), diskSize,
                    fixed.getInt(16) & 0xffffffffL);
            if ((s.l1TableOffset & (header.clusterSize() - 1)) != 0 || s.l1TableOffset < 0 || s.l1Size < 0
                    || s.l1Size > Qcow2Header.MAX_L1_BYTES / 8) {
                throw new CorruptImageException("bad snapshot L1 table: index=" + i + ", l1_table_offset="
                        + s.l1TableOffset + ", l1_size=" + s.l1Size);
            }
            out.add(s);
            pos += (40L + extraSize + idSize + nameSize + 7) & ~7L;
        }
        lengthOut[0] = pos - header.snapshotsOffset;
        return out;
    }
}
