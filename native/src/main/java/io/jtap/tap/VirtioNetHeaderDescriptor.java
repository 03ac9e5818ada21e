package io.jtap.tap;

import java.nio.ByteBuffer;

/**
 * Layout of the virtio-net header that precedes every frame on a {@link TapDevice}: {@code struct virtio_net_hdr_v1}
 * from {@code linux/virtio_net.h}, bitwise the same as the legacy {@code struct virtio_net_hdr_mrg_rxbuf}.
 *
 * <pre>
 *   0        1          2          4          6            8             10            12
 *   +--------+----------+----------+----------+------------+-------------+-------------+
 *   | flags  | gso_type | hdr_len  | gso_size | csum_start | csum_offset | num_buffers |
 *   +--------+----------+----------+----------+------------+-------------+-------------+
 *    u8       u8         le16       le16       le16         le16          le16
 *   |&lt;------------- struct virtio_net_hdr (legacy, 10 bytes) -----------&gt;|
 *   |&lt;------------- struct virtio_net_hdr_v1 = _mrg_rxbuf (12 bytes) -------------------&gt;|
 * </pre>
 *
 * <p>jtap always uses the 12-byte layout ({@code TUNSETVNETHDRSZ 12}): it is what a virtio 1.0 device and
 * netfront-to-virtio translation expect, and keeping {@code num_buffers} costs two bytes. The tun driver ignores
 * {@code num_buffers} on write and writes 0 there on read.
 *
 * <p>The 16-bit fields are little-endian: {@code __virtio16} is little-endian for virtio 1.0, and jtap asks the tun
 * driver for that explicitly with {@code TUNSETVNETLE} (on little-endian hosts such as x86 the legacy default is the
 * same). These accessors read and write little-endian whatever the buffer's {@link ByteBuffer#order()} and never move
 * its position.
 */
public final class VirtioNetHeaderDescriptor {
    /** {@code flags}: use {@code csum_start}, {@code csum_offset} (the checksum field holds the pseudo-header sum). */
    public static final int VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
    /** {@code flags}: the checksum has been verified. */
    public static final int VIRTIO_NET_HDR_F_DATA_VALID = 2;
    /** {@code flags}: receive segment coalescing info in the csum fields (not used by tun). */
    public static final int VIRTIO_NET_HDR_F_RSC_INFO = 4;

    /** {@code gso_type}: not a GSO frame. */
    public static final int VIRTIO_NET_HDR_GSO_NONE = 0;
    /** {@code gso_type}: IPv4 TCP (TSO). */
    public static final int VIRTIO_NET_HDR_GSO_TCPV4 = 1;
    /** {@code gso_type}: IPv4 UDP (UFO). */
    public static final int VIRTIO_NET_HDR_GSO_UDP = 3;
    /** {@code gso_type}: IPv6 TCP. */
    public static final int VIRTIO_NET_HDR_GSO_TCPV6 = 4;
    /** {@code gso_type}: UDP segmentation offload (USO, kernel 6.2+; not in older uapi headers). */
    public static final int VIRTIO_NET_HDR_GSO_UDP_L4 = 5;
    /** {@code gso_type} bit: TCP has ECN set. */
    public static final int VIRTIO_NET_HDR_GSO_ECN = 0x80;

    public static final int FLAGS_OFFSET = 0;
    public static final int GSO_TYPE_OFFSET = 1;
    public static final int HDR_LEN_OFFSET = 2;
    public static final int GSO_SIZE_OFFSET = 4;
    public static final int CSUM_START_OFFSET = 6;
    public static final int CSUM_OFFSET_OFFSET = 8;
    public static final int NUM_BUFFERS_OFFSET = 10;

    /** {@code sizeof(struct virtio_net_hdr)}: the legacy header without {@code num_buffers}. */
    public static final int LEGACY_LENGTH = 10;
    /** {@code sizeof(struct virtio_net_hdr_v1)} = {@code sizeof(struct virtio_net_hdr_mrg_rxbuf)}: what jtap uses. */
    public static final int LENGTH = 12;

    private VirtioNetHeaderDescriptor() {
    }

    public static int flags(ByteBuffer buf, int index) {
        return buf.get(index + FLAGS_OFFSET) & 0xff;
    }

    public static int gsoType(ByteBuffer buf, int index) {
        return buf.get(index + GSO_TYPE_OFFSET) & 0xff;
    }

    public static int hdrLen(ByteBuffer buf, int index) {
        return u16(buf, index + HDR_LEN_OFFSET);
    }

    public static int gsoSize(ByteBuffer buf, int index) {
        return u16(buf, index + GSO_SIZE_OFFSET);
    }

    public static int csumStart(ByteBuffer buf, int index) {
        return u16(buf, index + CSUM_START_OFFSET);
    }

    public static int csumOffset(ByteBuffer buf, int index) {
        return u16(buf, index + CSUM_OFFSET_OFFSET);
    }

    public static int numBuffers(ByteBuffer buf, int index) {
        return u16(buf, index + NUM_BUFFERS_OFFSET);
    }

    /**
     * Writes a whole 12-byte header at {@code index}.
     *
     * @param csumStart  offset from the start of the Ethernet frame (not of this header) where checksumming starts
     * @param csumOffset offset from {@code csumStart} of the 16-bit checksum field
     */
    public static void put(ByteBuffer buf, int index, int flags, int gsoType, int hdrLen, int gsoSize, int csumStart,
            int csumOffset) {
        buf.put(index + FLAGS_OFFSET, (byte) flags);
        buf.put(index + GSO_TYPE_OFFSET, (byte) gsoType);
        putU16(buf, index + HDR_LEN_OFFSET, hdrLen);
        putU16(buf, index + GSO_SIZE_OFFSET, gsoSize);
        putU16(buf, index + CSUM_START_OFFSET, csumStart);
        putU16(buf, index + CSUM_OFFSET_OFFSET, csumOffset);
        putU16(buf, index + NUM_BUFFERS_OFFSET, 0);
    }

    /** Writes an all-zero header: no checksum offload, not GSO. */
    public static void putNone(ByteBuffer buf, int index) {
        put(buf, index, 0, VIRTIO_NET_HDR_GSO_NONE, 0, 0, 0, 0);
    }

    /** One line for logs and assertion messages. */
    public static String toString(ByteBuffer buf, int index) {
        return "virtio_net_hdr{flags=" + flags(buf, index) + ", gso_type=0x" + Integer.toHexString(gsoType(buf, index))
                + ", hdr_len=" + hdrLen(buf, index) + ", gso_size=" + gsoSize(buf, index) + ", csum_start="
                + csumStart(buf, index) + ", csum_offset=" + csumOffset(buf, index) + ", num_buffers="
                + numBuffers(buf, index) + "}";
    }

    private static int u16(ByteBuffer buf, int index) {
        return (buf.get(index) & 0xff) | (buf.get(index + 1) & 0xff) << 8;
    }

    private static void putU16(ByteBuffer buf, int index, int value) {
        if ((value & ~0xffff) != 0) {
            throw new IllegalArgumentException("virtio_net_hdr field out of range: value=" + value);
        }
        buf.put(index, (byte) value);
        buf.put(index + 1, (byte) (value >>> 8));
    }
}
