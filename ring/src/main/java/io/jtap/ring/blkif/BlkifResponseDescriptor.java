package io.jtap.ring.blkif;

import io.jtap.ring.LittleEndian;

import java.nio.ByteBuffer;

/**
 * A response, {@code struct blkif_response}. The field offsets are the same in both ABIs; only the tail padding
 * (and so the size) differs.
 *
 * <pre>
 * struct blkif_response {                          x86_64   x86_32
 *     uint64_t id;         copied from request         0        0
 *     uint8_t  operation;  copied from request         8        8
 *     int16_t  status;     BLKIF_RSP_*                10       10
 * };                                         sizeof   16       12
 *
 *  0                      8         9       10       12             16
 *  +----------------------+---------+-------+--------+--------------+
 *  |          id          |operation| (pad) | status | (pad, x86_64)|
 *  +----------------------+---------+-------+--------+--------------+
 * </pre>
 */
public final class BlkifResponseDescriptor {
    public static final int ID_OFFSET = 0;
    public static final int OPERATION_OFFSET = 8;
    public static final int STATUS_OFFSET = 10;
    public static final int LENGTH = 16;
    public static final int X86_32_LENGTH = 12;

    private BlkifResponseDescriptor() {
    }

    public static long id(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getInt64(buffer, offset + ID_OFFSET);
    }

    public static int operation(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getUint8(buffer, offset + OPERATION_OFFSET);
    }

    /** {@code BLKIF_RSP_*}, signed. */
    public static int status(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getInt16(buffer, offset + STATUS_OFFSET);
    }

    /** Writes a whole response; valid in both ABIs. */
    public static void put(final ByteBuffer buffer, final int offset, final long id, final int operation,
                           final int status) {
        LittleEndian.putInt64(buffer, offset + ID_OFFSET, id);
        LittleEndian.putUint8(buffer, offset + OPERATION_OFFSET, operation);
        LittleEndian.putInt16(buffer, offset + STATUS_OFFSET, status);
    }
}
