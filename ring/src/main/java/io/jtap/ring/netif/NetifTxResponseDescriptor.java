package io.jtap.ring.netif;

import io.jtap.ring.LittleEndian;

import java.nio.ByteBuffer;

/**
 * The back end's answer to one tx request, {@code struct netif_tx_response}.
 *
 * <pre>
 * struct netif_tx_response {    offset
 *     uint16_t id;                 0
 *     int16_t  status;             2   NETIF_RSP_*
 * };                        sizeof 4
 *
 *  0      2        4
 *  +------+--------+
 *  |  id  | status |
 *  +------+--------+
 * </pre>
 */
public final class NetifTxResponseDescriptor {
    public static final int ID_OFFSET = 0;
    public static final int STATUS_OFFSET = 2;
    public static final int LENGTH = 4;

    private NetifTxResponseDescriptor() {
    }

    public static int id(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getUint16(buffer, offset + ID_OFFSET);
    }

    public static int status(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getInt16(buffer, offset + STATUS_OFFSET);
    }

    public static void put(final ByteBuffer buffer, final int offset, final int id, final int status) {
        LittleEndian.putInt16(buffer, offset + ID_OFFSET, id);
        LittleEndian.putInt16(buffer, offset + STATUS_OFFSET, status);
    }
}
