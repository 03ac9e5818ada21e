package io.jtap.ring.blkif;

import io.jtap.ring.LittleEndian;

import java.nio.ByteBuffer;

/**
 * One segment of a block request: a granted page and the sectors of it to transfer. Identical in every ABI. Also
 * the element of an indirect page ({@link Blkif#BLKIF_SEGMENTS_PER_INDIRECT_PAGE} per page).
 *
 * <pre>
 * struct blkif_request_segment {       offset
 *     grant_ref_t gref;                   0
 *     uint8_t     first_sect, last_sect;  4, 5
 * };                                      sizeof 8
 *
 *  0       1       2       3       4          5         6       7       8
 *  +-------+-------+-------+-------+----------+---------+-------+-------+
 *  |             gref              |first_sect|last_sect|  (padding)    |
 *  +-------+-------+-------+-------+----------+---------+-------+-------+
 * </pre>
 */
public final class BlkifSegmentDescriptor {
    public static final int GREF_OFFSET = 0;
    public static final int FIRST_SECT_OFFSET = 4;
    public static final int LAST_SECT_OFFSET = 5;
    public static final int LENGTH = 8;

    private BlkifSegmentDescriptor() {
    }

    public static int gref(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getInt32(buffer, offset + GREF_OFFSET);
    }

    /** First sector in the page to transfer, inclusive. */
    public static int firstSect(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getUint8(buffer, offset + FIRST_SECT_OFFSET);
    }

    /** Last sector in the page to transfer, inclusive. */
    public static int lastSect(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getUint8(buffer, offset + LAST_SECT_OFFSET);
    }

    /** Writes a whole segment. */
    public static void put(final ByteBuffer buffer, final int offset, final int gref, final int firstSect,
                           final int lastSect) {
        LittleEndian.putInt32(buffer, offset + GREF_OFFSET, gref);
        LittleEndian.putUint8(buffer, offset + FIRST_SECT_OFFSET, firstSect);
        LittleEndian.putUint8(buffer, offset + LAST_SECT_OFFSET, lastSect);
    }
}
