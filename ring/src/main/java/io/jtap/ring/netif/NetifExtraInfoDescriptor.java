package io.jtap.ring.netif;

import io.jtap.ring.LittleEndian;

import java.nio.ByteBuffer;

/**
 * Extra information about a packet, {@code struct netif_extra_info}: it occupies a tx request slot (after a request
 * flagged {@link Netif#NETTXF_extra_info}) or an rx response slot (after {@link Netif#NETRXF_extra_info}). The
 * union {@code u} is read according to {@code type} ({@code XEN_NETIF_EXTRA_TYPE_*}).
 *
 * <pre>
 * struct netif_extra_info {                offset
 *     uint8_t type;                           0   XEN_NETIF_EXTRA_TYPE_*
 *     uint8_t flags;                          1   XEN_NETIF_EXTRA_FLAG_*
 *     union {                                 2
 *         struct { uint16_t size;             2   gso: MSS
 *                  uint8_t type;              4        XEN_NETIF_GSO_TYPE_*
 *                  uint8_t pad;               5
 *                  uint16_t features; } gso;  6
 *         struct { uint8_t addr[6]; } mcast;  2
 *         struct { uint8_t type;              2   hash: XEN_NETIF_CTRL_HASH_TYPE_* bit
 *                  uint8_t algorithm;         3
 *                  uint8_t value[4]; } hash;  4
 *         uint16_t pad[3];                    2
 *     } u;
 * };                                   sizeof 8
 *
 *  0      1       2          4        5       6           8
 *  +------+-------+----------+--------+-------+-----------+
 *  | type | flags | gso.size |gso.type|gso.pad|gso.features|
 *  |      |       |       mcast.addr[6]                   |
 *  |      |       |h.type|h.alg|    hash.value[4]         |
 *  +------+-------+----------+--------+-------+-----------+
 * </pre>
 */
public final class NetifExtraInfoDescriptor {
    public static final int TYPE_OFFSET = 0;
    public static final int FLAGS_OFFSET = 1;
    /** {@code offsetof(struct netif_extra_info, u)}. */
    public static final int U_OFFSET = 2;
    public static final int U_LENGTH = 6;
    public static final int GSO_SIZE_OFFSET = 2;
    public static final int GSO_TYPE_OFFSET = 4;
    public static final int GSO_PAD_OFFSET = 5;
    public static final int GSO_FEATURES_OFFSET = 6;
    public static final int MCAST_ADDR_OFFSET = 2;
    public static final int MCAST_ADDR_LENGTH = 6;
    public static final int HASH_TYPE_OFFSET = 2;
    public static final int HASH_ALGORITHM_OFFSET = 3;
    public static final int HASH_VALUE_OFFSET = 4;
    public static final int HASH_VALUE_LENGTH = 4;
    public static final int LENGTH = 8;

    private NetifExtraInfoDescriptor() {
    }

    public static int type(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getUint8(buffer, offset + TYPE_OFFSET);
    }

    public static int flags(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getUint8(buffer, offset + FLAGS_OFFSET);
    }

    public static int gsoSize(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getUint16(buffer, offset + GSO_SIZE_OFFSET);
    }

    public static int gsoType(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getUint8(buffer, offset + GSO_TYPE_OFFSET);
    }

    public static int gsoFeatures(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getUint16(buffer, offset + GSO_FEATURES_OFFSET);
    }

    /** The multicast MAC address as 48 bits, addr[0] most significant (network order). */
    public static long mcastAddr(final ByteBuffer buffer, final int offset) {
        long mac = 0;
        for (int i = 0; i < MCAST_ADDR_LENGTH; i++) {
            mac = mac << 8 | LittleEndian.getUint8(buffer, offset + MCAST_ADDR_OFFSET + i);
        }
        return mac;
    }

    public static int hashType(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getUint8(buffer, offset + HASH_TYPE_OFFSET);
    }

    public static int hashAlgorithm(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getUint8(buffer, offset + HASH_ALGORITHM_OFFSET);
    }

    /** The hash value as the guest stores it: value[0..3] as a little-endian 32-bit word. */
    public static int hashValue(final ByteBuffer buffer, final int offset) {
        return LittleEndian.getInt32(buffer, offset + HASH_VALUE_OFFSET);
    }

    public static void putGso(final ByteBuffer buffer, final int offset, final int flags, final int size,
                              final int gsoType, final int features) {
        LittleEndian.putUint8(buffer, offset + TYPE_OFFSET, Netif.XEN_NETIF_EXTRA_TYPE_GSO);
        LittleEndian.putUint8(buffer, offset + FLAGS_OFFSET, flags);
        LittleEndian.putInt16(buffer, offset + GSO_SIZE_OFFSET, size);
        LittleEndian.putUint8(buffer, offset + GSO_TYPE_OFFSET, gsoType);
        LittleEndian.putUint8(buffer, offset + GSO_PAD_OFFSET, 0);
        LittleEndian.putInt16(buffer, offset + GSO_FEATURES_OFFSET, features);
    }

    /** {@code type} is {@code XEN_NETIF_EXTRA_TYPE_MCAST_ADD} or {@code _DEL}; mac as in {@link #mcastAddr}. */
    public static void putMcast(final ByteBuffer buffer, final int offset, final int type, final int flags,
                                final long mac) {
        LittleEndian.putUint8(buffer, offset + TYPE_OFFSET, type);
        LittleEndian.putUint8(buffer, offset + FLAGS_OFFSET, flags);
        for (int i = 0; i < MCAST_ADDR_LENGTH; i++) {
            LittleEndian.putUint8(buffer, offset + MCAST_ADDR_OFFSET + i, (int) (mac >>> (8 * (5 - i))));
        }
    }

    public static void putHash(final ByteBuffer buffer, final int offset, final int flags, final int hashType,
                               final int algorithm, final int value) {
        LittleEndian.putUint8(buffer, offset + TYPE_OFFSET, Netif.XEN_NETIF_EXTRA_TYPE_HASH);
        LittleEndian.putUint8(buffer, offset + FLAGS_OFFSET, flags);
        LittleEndian.putUint8(buffer, offset + HASH_TYPE_OFFSET, hashType);
        LittleEndian.putUint8(buffer, offset + HASH_ALGORITHM_OFFSET, algorithm);
        LittleEndian.putInt32(buffer, offset + HASH_VALUE_OFFSET, value);
    }
}
