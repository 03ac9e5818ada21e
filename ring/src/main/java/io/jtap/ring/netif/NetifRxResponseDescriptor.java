package io.jtap.ring.netif;

import io.jtap.ring.LittleEndian;

import java.nio.ByteBuffer;

/**
 * A received fragment, {@code struct netif_rx_response}. A slot flagged {@link Netif#NETRXF_extra_info} is followed
 * by a {@link NetifExtraInfoDescriptor} in the next slot.
 *
 * <pre>
 * struct netif_rx_response {    offset
 *     uint16_t id;                 0   from the rx request
 *     uint16_t offset;             2   offset of the data in the page
 *     uint16_t flags;              4   NETRXF_*
 *     int16_t  status;             6   bytes received if &gt;= 0, else NETIF_RSP_*
 * };                        sizeof 8
 *
 *  0      2        4       6        8
 *  +------+--------+-------+--------+
 *  |  id  | offset | flags | status |
 *  +------+--------+-------+--------+
 * </pre>
 */
public final class NetifRxResponseDescriptor {
    public static final int ID_OFFSET = 0;
    public static final int OFFSET_OFFSET = 2;
    public static final int FLAGS_OFFSET = 4;
    public static final int STATUS_OFFSET = 6;
    public static final int LENGTH = 8;

    private NetifRxResponseDescriptor() {
    }

    public static int id(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getUint16(buffer, offset + ID_OFFSET);
    }

    public static int offset(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getUint16(buffer, offset + OFFSET_OFFSET);
    }

    public static int flags(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getUint16(buffer, offset + FLAGS_OFFSET);
    }

    /** Bytes received if non-negative, else {@code NETIF_RSP_*}. */
    public static int status(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getInt16(buffer, offset + STATUS_OFFSET);
    }

    public static void put(final ByteBuffer buffer, final int offset, final int id, final int pageOffset,
                           final int flags, final int status) {
        LittleEndian.putInt16(buffer, offset + ID_OFFSET, id);
        LittleEndian.putInt16(buffer, offset + OFFSET_OFFSET, pageOffset);
        LittleEndian.putInt16(buffer, offset + FLAGS_OFFSET, flags);
        LittleEndian.putInt16(buffer, offset + STATUS_OFFSET, status);
    }
}
