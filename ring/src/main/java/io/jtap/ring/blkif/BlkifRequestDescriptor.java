package io.jtap.ring.blkif;

import io.jtap.ring.LittleEndian;

import java.nio.ByteBuffer;

/**
 * A direct read/write (or flush, barrier) request, {@code struct blkif_request}. The layout depends on the guest's
 * ABI: x86_64 aligns {@code uint64_t} to 8 bytes, x86_32 to 4 (the same struct compiled with {@code gcc -m32}, as
 * Linux blkback's {@code blkif_x86_32_request} mirrors it). Use the instance for the ABI the front end declared:
 * {@link #X86_64} or {@link #X86_32} (or {@link BlkifAbi#request()}).
 *
 * <pre>
 * struct blkif_request {                                    x86_64   x86_32
 *     uint8_t        operation;      BLKIF_OP_*                 0        0
 *     uint8_t        nr_segments;                               1        1
 *     blkif_vdev_t   handle;         uint16_t                   2        2
 *     uint64_t       id;             echoed in the response     8        4
 *     blkif_sector_t sector_number;  uint64_t, 512-byte units  16       12
 *     struct blkif_request_segment seg[11];                    24       20
 * };                                                  sizeof  112      108
 *
 * x86_64:
 *  0         1           2       4       8              16                 24          112
 *  +---------+-----------+-------+-------+---------------+-----------------+-----//-----+
 *  |operation|nr_segments|handle | (pad) |      id       |  sector_number  | seg[0..10] |
 *  +---------+-----------+-------+-------+---------------+-----------------+-----//-----+
 * x86_32:
 *  0         1           2       4               12                 20          108
 *  +---------+-----------+-------+---------------+-----------------+-----//-----+
 *  |operation|nr_segments|handle |      id       |  sector_number  | seg[0..10] |
 *  +---------+-----------+-------+---------------+-----------------+-----//-----+
 * </pre>
 */
public final class BlkifRequestDescriptor {
    public static final int OPERATION_OFFSET = 0;
    public static final int NR_SEGMENTS_OFFSET = 1;
    public static final int HANDLE_OFFSET = 2;

    public static final int ID_OFFSET = 8;
    public static final int SECTOR_NUMBER_OFFSET = 16;
    public static final int SEG_OFFSET = 24;
    public static final int LENGTH = SEG_OFFSET + Blkif.BLKIF_MAX_SEGMENTS_PER_REQUEST * BlkifSegmentDescriptor.LENGTH;

    public static final int X86_32_ID_OFFSET = 4;
    public static final int X86_32_SECTOR_NUMBER_OFFSET = 12;
    public static final int X86_32_SEG_OFFSET = 20;
    public static final int X86_32_LENGTH =
        X86_32_SEG_OFFSET + Blkif.BLKIF_MAX_SEGMENTS_PER_REQUEST * BlkifSegmentDescriptor.LENGTH;

    public static final BlkifRequestDescriptor X86_64 =
        new BlkifRequestDescriptor(ID_OFFSET, SECTOR_NUMBER_OFFSET, SEG_OFFSET, LENGTH);
    public static final BlkifRequestDescriptor X86_32 = new BlkifRequestDescriptor(X86_32_ID_OFFSET,
        X86_32_SECTOR_NUMBER_OFFSET, X86_32_SEG_OFFSET, X86_32_LENGTH);

    private final int idOffset;
    private final int sectorNumberOffset;
    private final int segOffset;
    private final int length;

    private BlkifRequestDescriptor(final int idOffset, final int sectorNumberOffset, final int segOffset,
                                   final int length) {
        this.idOffset = idOffset;
        this.sectorNumberOffset = sectorNumberOffset;
        this.segOffset = segOffset;
        this.length = length;
    }

    public int idOffset() {
        return idOffset;
    }

    public int sectorNumberOffset() {
        return sectorNumberOffset;
    }

    public int segOffset() {
        return segOffset;
    }

    /** {@code sizeof(struct blkif_request)} in this ABI. */
    public int length() {
        return length;
    }

    /** Byte offset of {@code seg[index]} in the request at {@code offset}; see {@link BlkifSegmentDescriptor}. */
    public int segmentOffset(final int offset, final int index) {
        return offset + segOffset + index * BlkifSegmentDescriptor.LENGTH;
    }

    /** Also reads the operation of every other request type: it is the first byte of all of them. */
    public int operation(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getUint8(buffer, offset + OPERATION_OFFSET);
    }

    public int nrSegments(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getUint8(buffer, offset + NR_SEGMENTS_OFFSET);
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

    /** Writes the fixed fields; the caller writes nrSegments segments with {@link #segmentOffset}. */
    public void put(final ByteBuffer buffer, final int offset, final int operation, final int nrSegments,
                    final int handle, final long id, final long sectorNumber) {
        LittleEndian.putUint8(buffer, offset + OPERATION_OFFSET, operation);
        LittleEndian.putUint8(buffer, offset + NR_SEGMENTS_OFFSET, nrSegments);
        LittleEndian.putInt16(buffer, offset + HANDLE_OFFSET, handle);
        LittleEndian.putInt64(buffer, offset + idOffset, id);
        LittleEndian.putInt64(buffer, offset + sectorNumberOffset, sectorNumber);
    }
}
