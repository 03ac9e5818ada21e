package io.jtap.ring.blkif;

import io.jtap.ring.LittleEndian;

import java.nio.ByteBuffer;

/**
 * An indirect read/write request, {@code struct blkif_request_indirect} ({@link Blkif#BLKIF_OP_INDIRECT}): the
 * segments live in up to {@link Blkif#BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST} granted pages of
 * {@link Blkif#BLKIF_SEGMENTS_PER_INDIRECT_PAGE} segments each. On i386 blkif.h appends a {@code uint64_t pad} to
 * keep the struct 64 bytes.
 *
 * <pre>
 * struct blkif_request_indirect {                   x86_64   x86_32
 *     uint8_t        operation;    BLKIF_OP_INDIRECT     0        0
 *     uint8_t        indirect_op;  BLKIF_OP_{READ,WRITE} 1        1
 *     uint16_t       nr_segments;                        2        2
 *     uint64_t       id;                                 8        4
 *     blkif_sector_t sector_number;                     16       12
 *     blkif_vdev_t   handle;                            24       20
 *     grant_ref_t    indirect_grefs[8];                 28       24
 *     uint64_t       pad;          (i386 only)           -       56
 * };                                           sizeof   64       64
 *
 * x86_64:
 *  0  1  2          4     8     16              24     26  28                  60     64
 *  +--+--+----------+-----+-----+---------------+------+---+--------//---------+------+
 *  |op|io|nr_segment|(pad)| id  | sector_number |handle|pad| indirect_grefs[8] |(pad) |
 *  +--+--+----------+-----+-----+---------------+------+---+--------//---------+------+
 * x86_32:
 *  0  1  2          4     12              20     22  24                  56     64
 *  +--+--+----------+-----+---------------+------+---+--------//---------+------+
 *  |op|io|nr_segment| id  | sector_number |handle|pad| indirect_grefs[8] | pad  |
 *  +--+--+----------+-----+---------------+------+---+--------//---------+------+
 * </pre>
 */
public final class BlkifIndirectRequestDescriptor {
    public static final int OPERATION_OFFSET = 0;
    public static final int INDIRECT_OP_OFFSET = 1;
    public static final int NR_SEGMENTS_OFFSET = 2;

    public static final int ID_OFFSET = 8;
    public static final int SECTOR_NUMBER_OFFSET = 16;
    public static final int HANDLE_OFFSET = 24;
    public static final int INDIRECT_GREFS_OFFSET = 28;
    public static final int LENGTH = 64;

    public static final int X86_32_ID_OFFSET = 4;
    public static final int X86_32_SECTOR_NUMBER_OFFSET = 12;
    public static final int X86_32_HANDLE_OFFSET = 20;
    public static final int X86_32_INDIRECT_GREFS_OFFSET = 24;
    public static final int X86_32_PAD_OFFSET = 56;
    public static final int X86_32_LENGTH = 64;

    public static final BlkifIndirectRequestDescriptor X86_64 = new BlkifIndirectRequestDescriptor(ID_OFFSET,
        SECTOR_NUMBER_OFFSET, HANDLE_OFFSET, INDIRECT_GREFS_OFFSET, LENGTH);
    public static final BlkifIndirectRequestDescriptor X86_32 = new BlkifIndirectRequestDescriptor(X86_32_ID_OFFSET,
        X86_32_SECTOR_NUMBER_OFFSET, X86_32_HANDLE_OFFSET, X86_32_INDIRECT_GREFS_OFFSET, X86_32_LENGTH);

    private final int idOffset;
    private final int sectorNumberOffset;
    private final int handleOffset;
    private final int indirectGrefsOffset;
    private final int length;

    private BlkifIndirectRequestDescriptor(final int idOffset, final int sectorNumberOffset, final int handleOffset,
                                           final int indirectGrefsOffset, final int length) {
        this.idOffset = idOffset;
        this.sectorNumberOffset = sectorNumberOffset;
        this.handleOffset = handleOffset;
        this.indirectGrefsOffset = indirectGrefsOffset;
        this.length = length;
    }

    public int idOffset() {
        return idOffset;
    }

    public int sectorNumberOffset() {
        return sectorNumberOffset;
    }

    public int handleOffset() {
        return handleOffset;
    }

    public int indirectGrefsOffset() {
        return indirectGrefsOffset;
    }

    /** {@code sizeof(struct blkif_request_indirect)} in this ABI. */
    public int length() {
        return length;
    }

    public int operation(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getUint8(buffer, offset + OPERATION_OFFSET);
    }

    public int indirectOp(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getUint8(buffer, offset + INDIRECT_OP_OFFSET);
    }

    public int nrSegments(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getUint16(buffer, offset + NR_SEGMENTS_OFFSET);
    }

    public long id(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getInt64(buffer, offset + idOffset);
    }

    public long sectorNumber(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getInt64(buffer, offset + sectorNumberOffset);
    }

    public int handle(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getUint16(buffer, offset + handleOffset);
    }

    /** {@code indirect_grefs[index]}, index below {@link Blkif#BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST}. */
    public int indirectGref(final ByteBuffer buffer, final int offset, final int index) {
        return LittleEndian.getInt32(buffer, offset + indirectGrefsOffset + 4 * index);
    }

    /** Writes the fixed fields; the caller writes the grefs with {@link #putIndirectGref}. */
    public void put(final ByteBuffer buffer, final int offset, final int indirectOp, final int nrSegments,
                    final long id, final long sectorNumber, final int handle) {
        LittleEndian.putUint8(buffer, offset + OPERATION_OFFSET, Blkif.BLKIF_OP_INDIRECT);
        LittleEndian.putUint8(buffer, offset + INDIRECT_OP_OFFSET, indirectOp);
        LittleEndian.putInt16(buffer, offset + NR_SEGMENTS_OFFSET, nrSegments);
        LittleEndian.putInt64(buffer, offset + idOffset, id);
        LittleEndian.putInt64(buffer, offset + sectorNumberOffset, sectorNumber);
        LittleEndian.putInt16(buffer, offset + handleOffset, handle);
    }

    public void putIndirectGref(final ByteBuffer buffer, final int offset, final int index, final int gref) {
        LittleEndian.putInt32(buffer, offset + indirectGrefsOffset + 4 * index, gref);
    }
}
