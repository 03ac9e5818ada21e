package io.jtap.ring.blkif;

import io.jtap.ring.LittleEndian;

import java.nio.ByteBuffer;

/**
 * A discard request, {@code struct blkif_request_discard} ({@link Blkif#BLKIF_OP_DISCARD}).
 *
 * <pre>
 * struct blkif_request_discard {                          x86_64   x86_32
 *     uint8_t        operation;     BLKIF_OP_DISCARD          0        0
 *     uint8_t        flag;          BLKIF_DISCARD_SECURE or 0 1        1
 *     blkif_vdev_t   handle;                                  2        2
 *     uint64_t       id;                                      8        4
 *     blkif_sector_t sector_number;                          16       12
 *     uint64_t       nr_sectors;                             24       20
 * };                                                sizeof   32       28
 *
 * x86_64:
 *  0         1    2       4       8       16              24           32
 *  +---------+----+-------+-------+-------+---------------+------------+
 *  |operation|flag|handle | (pad) |  id   | sector_number | nr_sectors |
 *  +---------+----+-------+-------+-------+---------------+------------+
 * x86_32:
 *  0         1    2       4       12              20           28
 *  +---------+----+-------+-------+---------------+------------+
 *  |operation|flag|handle |  id   | sector_number | nr_sectors |
 *  +---------+----+-------+-------+---------------+------------+
 * </pre>
 */
public final class BlkifDiscardRequestDescriptor {
    public static final int OPERATION_OFFSET = 0;
    public static final int FLAG_OFFSET = 1;
    public static final int HANDLE_OFFSET = 2;

    public static final int ID_OFFSET = 8;
    public static final int SECTOR_NUMBER_OFFSET = 16;
    public static final int NR_SECTORS_OFFSET = 24;
    public static final int LENGTH = 32;

    public static final int X86_32_ID_OFFSET = 4;
    public static final int X86_32_SECTOR_NUMBER_OFFSET = 12;
    public static final int X86_32_NR_SECTORS_OFFSET = 20;
    public static final int X86_32_LENGTH = 28;

    public static final BlkifDiscardRequestDescriptor X86_64 =
        new BlkifDiscardRequestDescriptor(ID_OFFSET, SECTOR_NUMBER_OFFSET, NR_SECTORS_OFFSET, LENGTH);
    public static final BlkifDiscardRequestDescriptor X86_32 = new BlkifDiscardRequestDescriptor(X86_32_ID_OFFSET,
        X86_32_SECTOR_NUMBER_OFFSET, X86_32_NR_SECTORS_OFFSET, X86_32_LENGTH);

    private final int idOffset;
    private final int sectorNumberOffset;
    private final int nrSectorsOffset;
    private final int length;

    private BlkifDiscardRequestDescriptor(final int idOffset, final int sectorNumberOffset, final int nrSectorsOffset,
                                          final int length) {
        this.idOffset = idOffset;
        this.sectorNumberOffset = sectorNumberOffset;
        this.nrSectorsOffset = nrSectorsOffset;
        this.length = length;
    }

    public int idOffset() {
        return idOffset;
    }

    public int sectorNumberOffset() {
        return sectorNumberOffset;
    }

    public int nrSectorsOffset() {
        return nrSectorsOffset;
    }

    /** {@code sizeof(struct blkif_request_discard)} in this ABI. */
    public int length() {
        return length;
    }

    public int flag(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getUint8(buffer, offset + FLAG_OFFSET);
    }

    public int handle(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getUint16(buffer, offset + HANDLE_OFFSET);
    }

    public long id(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getInt64(buffer, offset + idOffset);
    }

    public long sectorNumber(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getInt64(buffer, offset + sectorNumberOffset);
    }

    public long nrSectors(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getInt64(buffer, offset + nrSectorsOffset);
    }

    public void put(final ByteBuffer buffer, final int offset, final int flag, final int handle, final long id,
                    final long sectorNumber, final long nrSectors) {
        LittleEndian.putUint8(buffer, offset + OPERATION_OFFSET, Blkif.BLKIF_OP_DISCARD);
        LittleEndian.putUint8(buffer, offset + FLAG_OFFSET, flag);
        LittleEndian.putInt16(buffer, offset + HANDLE_OFFSET, handle);
        LittleEndian.putInt64(buffer, offset + idOffset, id);
        LittleEndian.putInt64(buffer, offset + sectorNumberOffset, sectorNumber);
        LittleEndian.putInt64(buffer, offset + nrSectorsOffset, nrSectors);
    }
}
