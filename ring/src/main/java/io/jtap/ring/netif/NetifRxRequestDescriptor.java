package io.jtap.ring.netif;

import io.jtap.ring.LittleEndian;

import java.nio.ByteBuffer;

/**
 * A page the guest posts for receiving, {@code struct netif_rx_request}.
 *
 * <pre>
 * struct netif_rx_request {     offset
 *     uint16_t    id;              0   echoed in the response
 *     uint16_t    pad;             2
 *     grant_ref_t gref;            4
 * };                        sizeof 8
 *
 *  0      2       4               8
 *  +------+-------+---------------+
 *  |  id  |  pad  |     gref      |
 *  +------+-------+---------------+
 * </pre>
 */
public final class NetifRxRequestDescriptor {
    public static final int ID_OFFSET = 0;
    public static final int PAD_OFFSET = 2;
    public static final int GREF_OFFSET = 4;
    public static final int LENGTH = 8;

    private NetifRxRequestDescriptor() {
    }

    public static int id(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getUint16(buffer, offset + ID_OFFSET);
    }

    public static int gref(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getInt32(buffer, offset + GREF_OFFSET);
    }

    public static void put(final ByteBuffer buffer, final int offset, final int id, final int gref) {
        LittleEndian.putInt16(buffer, offset + ID_OFFSET, id);
        LittleEndian.putInt16(buffer, offset + PAD_OFFSET, 0);
        LittleEndian.putInt32(buffer, offset + GREF_OFFSET, gref);
    }
}
