package io.jtap.ring.netif;

import io.jtap.ring.LittleEndian;

import java.nio.ByteBuffer;

/**
 * A packet fragment the guest transmits, {@code struct netif_tx_request}. A slot flagged
 * {@link Netif#NETTXF_extra_info} is followed by a {@link NetifExtraInfoDescriptor} in the next slot.
 *
 * <pre>
 * struct netif_tx_request {     offset
 *     grant_ref_t gref;            0
 *     uint16_t offset;             4   offset within the granted page
 *     uint16_t flags;              6   NETTXF_*
 *     uint16_t id;                 8   echoed in the response
 *     uint16_t size;              10   packet size (first slot) or fragment size
 * };                       sizeof 12
 *
 *  0               4        6       8      10      12
 *  +---------------+--------+-------+------+-------+
 *  |     gref      | offset | flags |  id  | size  |
 *  +---------------+--------+-------+------+-------+
 * </pre>
 */
public final class NetifTxRequestDescriptor {
    public static final int GREF_OFFSET = 0;
    public static final int OFFSET_OFFSET = 4;
    public static final int FLAGS_OFFSET = 6;
    public static final int ID_OFFSET = 8;
    public static final int SIZE_OFFSET = 10;
    public static final int LENGTH = 12;

    private NetifTxRequestDescriptor() {
    }

    public static int gref(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getInt32(buffer, offset + GREF_OFFSET);
    }

    /** Byte offset of the data within the granted page. */
    public static int offset(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getUint16(buffer, offset + OFFSET_OFFSET);
    }

    public static int flags(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getUint16(buffer, offset + FLAGS_OFFSET);
    }

    public static int id(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getUint16(buffer, offset + ID_OFFSET);
    }

    /** Bytes: the whole packet's in the first slot, this fragment's in the others. */
    public static int size(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getUint16(buffer, offset + SIZE_OFFSET);
    }

    public static void put(final ByteBuffer buffer, final int offset, final int gref, final int pageOffset,
                           final int flags, final int id, final int size) {
        LittleEndian.putInt32(buffer, offset + GREF_OFFSET, gref);
        LittleEndian.putInt16(buffer, offset + OFFSET_OFFSET, pageOffset);
        LittleEndian.putInt16(buffer, offset + FLAGS_OFFSET, flags);
        LittleEndian.putInt16(buffer, offset + ID_OFFSET, id);
        LittleEndian.putInt16(buffer, offset + SIZE_OFFSET, size);
    }
}
