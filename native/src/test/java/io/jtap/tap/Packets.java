package io.jtap.tap;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Builds and parses the few packets the TAP tests exchange with a real kernel: Ethernet, ARP, IPv4, UDP, TCP. Network
 * byte order throughout. Each builder returns the Ethernet frame without the virtio-net header;
 * {@link #withHeader} prepends one.
 */
final class Packets {
    static final int ETHERTYPE_IPV4 = 0x0800;
    static final int ETHERTYPE_ARP = 0x0806;
    /** IEEE 802 local experimental EtherType 1: traffic no stack will act on. */
    static final int ETHERTYPE_EXPERIMENTAL = 0x88B5;
    static final int IPPROTO_TCP = 6;
    static final int IPPROTO_UDP = 17;
    static final int IPV4_HLEN = 20;
    static final int UDP_HLEN = 8;
    static final int TCP_HLEN = 20;
    /** Offset of the checksum inside the UDP and TCP headers: the {@code csum_offset} of a partial checksum. */
    static final int UDP_CHECK_OFFSET = 6;
    static final int TCP_CHECK_OFFSET = 16;

    static final int TCP_FIN = 0x01;
    static final int TCP_SYN = 0x02;
    static final int TCP_RST = 0x04;
    static final int TCP_PSH = 0x08;
    static final int TCP_ACK = 0x10;

    /** How a transport checksum is filled in. */
    enum Checksum {
        /** The complete checksum, as on the wire. */
        FULL,
        /** The folded pseudo-header sum, for a {@code NEEDS_CSUM} frame (Linux: {@code CHECKSUM_PARTIAL}). */
        PARTIAL,
        /** The complete checksum plus one: a corrupt packet the receiver must drop. */
        CORRUPT
    }

    private Packets() {
    }

    static byte[] mac(String text) {
        String[] parts = text.trim().split(":");
        byte[] mac = new byte[6];
        for (int i = 0; i < 6; i++) {
            mac[i] = (byte) Integer.parseInt(parts[i], 16);
        }
        return mac;
    }

    static byte[] ip(String dotted) {
        String[] parts = dotted.split("\\.");
        byte[] ip = new byte[4];
        for (int i = 0; i < 4; i++) {
            ip[i] = (byte) Integer.parseInt(parts[i]);
        }
        return ip;
    }

    static byte[] ethernet(byte[] dst, byte[] src, int etherType, byte[] payload) {
        ByteBuffer b = ByteBuffer.allocate(TapDevice.ETH_HLEN + payload.length);
        b.put(dst).put(src).putShort((short) etherType).put(payload);
        return b.array();
    }

    /** An ARP reply (op 2) telling {@code targetMac}/{@code targetIp} that {@code senderIp} is at {@code senderMac}. */
    static byte[] arpReply(byte[] senderMac, byte[] senderIp, byte[] targetMac, byte[] targetIp) {
        ByteBuffer arp = ByteBuffer.allocate(28);
        arp.putShort((short) 1).putShort((short) ETHERTYPE_IPV4).put((byte) 6).put((byte) 4).putShort((short) 2);
        arp.put(senderMac).put(senderIp).put(targetMac).put(targetIp);
        return ethernet(targetMac, senderMac, ETHERTYPE_ARP, arp.array());
    }

    /**
     * An IPv4 packet (no options, DF set) with a correct header checksum; {@code totalLength} may exceed 1500 (GSO).
     */
    static byte[] ipv4(byte[] src, byte[] dst, int protocol, int id, byte[] l4) {
        ByteBuffer b = ByteBuffer.allocate(IPV4_HLEN + l4.length);
        b.put((byte) 0x45).put((byte) 0).putShort((short) (IPV4_HLEN + l4.length)).putShort((short) id)
                .putShort((short) 0x4000).put((byte) 64).put((byte) protocol).putShort((short) 0).put(src).put(dst);
        b.putShort(10, (short) ~fold(sum(b.array(), 0, IPV4_HLEN, 0)));
        b.position(IPV4_HLEN);
        b.put(l4);
        return b.array();
    }

    static byte[] udp(byte[] srcIp, byte[] dstIp, int srcPort, int dstPort, byte[] payload, Checksum checksum) {
        ByteBuffer b = ByteBuffer.allocate(UDP_HLEN + payload.length);
        b.putShort((short) srcPort).putShort((short) dstPort).putShort((short) (UDP_HLEN + payload.length))
                .putShort((short) 0).put(payload);
        fillChecksum(b.array(), UDP_CHECK_OFFSET, srcIp, dstIp, IPPROTO_UDP, checksum);
        return b.array();
    }

    /** A TCP segment with a 20-byte header plus {@code options} (a multiple of 4 bytes). */
    static byte[] tcp(byte[] srcIp, byte[] dstIp, int srcPort, int dstPort, long seq, long ack, int flags, int window,
            byte[] options, byte[] payload, Checksum checksum) {
        int headerLength = TCP_HLEN + options.length;
        ByteBuffer b = ByteBuffer.allocate(headerLength + payload.length);
        b.putShort((short) srcPort).putShort((short) dstPort).putInt((int) seq).putInt((int) ack)
                .put((byte) (headerLength / 4 << 4)).put((byte) flags).putShort((short) window).putShort((short) 0)
                .putShort((short) 0).put(options).put(payload);
        fillChecksum(b.array(), TCP_CHECK_OFFSET, srcIp, dstIp, IPPROTO_TCP, checksum);
        return b.array();
    }

    /** The TCP MSS option (kind 2). */
    static byte[] mssOption(int mss) {
        return new byte[] {2, 4, (byte) (mss >>> 8), (byte) mss};
    }

    private static void fillChecksum(byte[] l4, int field, byte[] srcIp, byte[] dstIp, int protocol, Checksum how) {
        long pseudo = pseudoHeaderSum(srcIp, dstIp, protocol, l4.length);
        int value;
        if (how == Checksum.PARTIAL) {
            value = fold(pseudo);
        } else {
            value = ~fold(sum(l4, 0, l4.length, pseudo)) & 0xffff;
            if (value == 0 && protocol == IPPROTO_UDP) {
                value = 0xffff; // RFC 768: a computed 0 is sent as all ones; 0 means "no checksum".
            }
            if (how == Checksum.CORRUPT) {
                value = (value + 1) & 0xffff;
            }
        }
        l4[field] = (byte) (value >>> 8);
        l4[field + 1] = (byte) value;
    }

    static long pseudoHeaderSum(byte[] srcIp, byte[] dstIp, int protocol, int l4Length) {
        long s = sum(srcIp, 0, 4, 0);
        s = sum(dstIp, 0, 4, s);
        return s + protocol + l4Length;
    }

    /** One's-complement sum of 16-bit big-endian words, unfolded. */
    static long sum(byte[] data, int offset, int length, long initial) {
        long s = initial;
        int i = offset;
        for (; i + 1 < offset + length; i += 2) {
            s += (data[i] & 0xff) << 8 | (data[i + 1] & 0xff);
        }
        if (i < offset + length) {
            s += (data[i] & 0xff) << 8;
        }
        return s;
    }

    static int fold(long sum) {
        while ((sum >>> 16) != 0) {
            sum = (sum & 0xffff) + (sum >>> 16);
        }
        return (int) sum;
    }

    /** The virtio-net header followed by {@code ethernetFrame}, ready for {@link TapDevice#write}. */
    static ByteBuffer withHeader(byte[] ethernetFrame, int flags, int gsoType, int hdrLen, int gsoSize, int csumStart,
            int csumOffset) {
        ByteBuffer b = ByteBuffer.allocateDirect(VirtioNetHeaderDescriptor.LENGTH + ethernetFrame.length);
        VirtioNetHeaderDescriptor.put(b, 0, flags, gsoType, hdrLen, gsoSize, csumStart, csumOffset);
        b.position(VirtioNetHeaderDescriptor.LENGTH);
        b.put(ethernetFrame);
        b.flip();
        return b;
    }

    /** A frame without offloads: an all-zero virtio-net header. */
    static ByteBuffer withHeader(byte[] ethernetFrame) {
        return withHeader(ethernetFrame, 0, VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_GSO_NONE, 0, 0, 0, 0);
    }

    /**
     * A frame read from a TAP device (virtio-net header included), with accessors for the fields the tests look at.
     * {@code l3} etc. are offsets into {@link #bytes}.
     */
    static final class Frame {
        final byte[] bytes;
        final ByteBuffer buf;
        final int eth;

        Frame(byte[] bytes, int vnetHeaderBytes) {
            this.bytes = bytes;
            this.buf = ByteBuffer.wrap(bytes).order(ByteOrder.BIG_ENDIAN);
            this.eth = vnetHeaderBytes;
        }

        int vnetFlags() {
            return VirtioNetHeaderDescriptor.flags(buf, 0);
        }

        int gsoType() {
            return VirtioNetHeaderDescriptor.gsoType(buf, 0);
        }

        int gsoSize() {
            return VirtioNetHeaderDescriptor.gsoSize(buf, 0);
        }

        int csumStart() {
            return VirtioNetHeaderDescriptor.csumStart(buf, 0);
        }

        int csumOffset() {
            return VirtioNetHeaderDescriptor.csumOffset(buf, 0);
        }

        String header() {
            return VirtioNetHeaderDescriptor.toString(buf, 0);
        }

        byte[] dstMac() {
            return slice(eth, 6);
        }

        byte[] srcMac() {
            return slice(eth + 6, 6);
        }

        int etherType() {
            return buf.getShort(eth + 12) & 0xffff;
        }

        int l3() {
            return eth + TapDevice.ETH_HLEN;
        }

        boolean isArpRequestFor(byte[] ip) {
            return etherType() == ETHERTYPE_ARP && bytes.length >= l3() + 28 && buf.getShort(l3() + 6) == 1
                    && java.util.Arrays.equals(slice(l3() + 24, 4), ip);
        }

        byte[] arpSenderMac() {
            return slice(l3() + 8, 6);
        }

        byte[] arpSenderIp() {
            return slice(l3() + 14, 4);
        }

        boolean isIpv4(int protocol) {
            return etherType() == ETHERTYPE_IPV4 && (bytes[l3() + 9] & 0xff) == protocol;
        }

        byte[] ipSrc() {
            return slice(l3() + 12, 4);
        }

        byte[] ipDst() {
            return slice(l3() + 16, 4);
        }

        int ipTotalLength() {
            return buf.getShort(l3() + 2) & 0xffff;
        }

        int l4() {
            return l3() + (bytes[l3()] & 0x0f) * 4;
        }

        int srcPort() {
            return buf.getShort(l4()) & 0xffff;
        }

        int dstPort() {
            return buf.getShort(l4() + 2) & 0xffff;
        }

        long tcpSeq() {
            return buf.getInt(l4() + 4) & 0xffffffffL;
        }

        long tcpAck() {
            return buf.getInt(l4() + 8) & 0xffffffffL;
        }

        int tcpFlags() {
            return bytes[l4() + 13] & 0xff;
        }

        int l4HeaderLength() {
            return isIpv4(IPPROTO_TCP) ? ((bytes[l4() + 12] & 0xff) >>> 4) * 4 : UDP_HLEN;
        }

        /** The transport payload, bounded by the IP total length (not the frame, which may be padded). */
        byte[] payload() {
            int start = l4() + l4HeaderLength();
            int end = l3() + ipTotalLength();
            return slice(start, end - start);
        }

        /**
         * Verifies the transport checksum as a receiver would, first completing a partial one ({@code NEEDS_CSUM}) the
         * way the device would: sum from {@code csum_start} to the end, store the complement at {@code csum_offset}.
         */
        boolean transportChecksumValid() {
            byte[] copy = bytes.clone();
            int l4Length = l3() + ipTotalLength() - l4();
            if ((vnetFlags() & VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_F_NEEDS_CSUM) != 0) {
                int start = eth + csumStart();
                int field = start + csumOffset();
                int value = ~fold(sum(copy, start, l3() + ipTotalLength() - start, 0)) & 0xffff;
                copy[field] = (byte) (value >>> 8);
                copy[field + 1] = (byte) value;
            }
            long pseudo = pseudoHeaderSum(ipSrc(), ipDst(), bytes[l3() + 9] & 0xff, l4Length);
            return fold(sum(copy, l4(), l4Length, pseudo)) == 0xffff;
        }

        private byte[] slice(int offset, int length) {
            byte[] out = new byte[length];
            System.arraycopy(bytes, offset, out, 0, length);
            return out;
        }

        @Override
        public String toString() {
            return "Frame{length=" + bytes.length + ", " + header() + ", etherType=0x"
                    + Integer.toHexString(etherType()) + "}";
        }
    }
}
