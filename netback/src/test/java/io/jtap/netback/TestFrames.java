package io.jtap.netback;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Ethernet / IPv4 / IPv6 / TCP / UDP frames for tests, with full, partial (pseudo-header sum only, as a frontend with
 * checksum offload leaves it) or corrupt checksums, and a checker. Payloads are self-describing: byte i of a payload
 * made by {@link #payload(int, int)} depends on its index and a tag, so a misplaced byte names where it came from.
 */
final class TestFrames {
    static final int ETH_HLEN = 14;
    static final int IPV4_HLEN = 20;
    static final int IPV6_HLEN = 40;
    static final int TCP_HLEN = 20;
    static final int UDP_HLEN = 8;

    enum Checksum { FULL, PARTIAL }

    private TestFrames() {
    }

    static byte[] payload(int length, int tag) {
        byte[] p = new byte[length];
        for (int i = 0; i < length; i++) {
            p[i] = (byte) (i * 7 + tag * 31 + (i >>> 8));
        }
        return p;
    }

    static byte[] mac(long mac) {
        byte[] m = new byte[6];
        for (int i = 0; i < 6; i++) {
            m[i] = (byte) (mac >>> (8 * (5 - i)));
        }
        return m;
    }

    static byte[] ip4(int a, int b, int c, int d) {
        return new byte[] {(byte) a, (byte) b, (byte) c, (byte) d};
    }

    static byte[] ip6(int last) {
        byte[] ip = new byte[16];
        ip[0] = (byte) 0xfd;
        ip[1] = 0x6a;
        ip[15] = (byte) last;
        return ip;
    }

    static byte[] udp4(byte[] dstMac, byte[] srcMac, byte[] src, byte[] dst, int sport, int dport, byte[] payload,
            Checksum how) {
        byte[] l4 = l4(FrameHeaders.IPPROTO_UDP, sport, dport, 0, 0, 0, payload);
        fill(l4, FrameHeaders.UDP_CHECK_OFFSET, src, dst, FrameHeaders.IPPROTO_UDP, how);
        return eth(dstMac, srcMac, FrameHeaders.ETH_P_IP, ipv4(src, dst, FrameHeaders.IPPROTO_UDP, l4));
    }

    static byte[] udp6(byte[] dstMac, byte[] srcMac, byte[] src, byte[] dst, int sport, int dport, byte[] payload,
            Checksum how) {
        byte[] l4 = l4(FrameHeaders.IPPROTO_UDP, sport, dport, 0, 0, 0, payload);
        fill(l4, FrameHeaders.UDP_CHECK_OFFSET, src, dst, FrameHeaders.IPPROTO_UDP, how);
        return eth(dstMac, srcMac, FrameHeaders.ETH_P_IPV6, ipv6(src, dst, FrameHeaders.IPPROTO_UDP, l4));
    }

    static byte[] tcp4(byte[] dstMac, byte[] srcMac, byte[] src, byte[] dst, int sport, int dport, long seq, long ack,
            int flags, byte[] payload, Checksum how) {
        byte[] l4 = l4(FrameHeaders.IPPROTO_TCP, sport, dport, seq, ack, flags, payload);
        fill(l4, FrameHeaders.TCP_CHECK_OFFSET, src, dst, FrameHeaders.IPPROTO_TCP, how);
        return eth(dstMac, srcMac, FrameHeaders.ETH_P_IP, ipv4(src, dst, FrameHeaders.IPPROTO_TCP, l4));
    }

    static byte[] tcp6(byte[] dstMac, byte[] srcMac, byte[] src, byte[] dst, int sport, int dport, long seq, long ack,
            int flags, byte[] payload, Checksum how) {
        byte[] l4 = l4(FrameHeaders.IPPROTO_TCP, sport, dport, seq, ack, flags, payload);
        fill(l4, FrameHeaders.TCP_CHECK_OFFSET, src, dst, FrameHeaders.IPPROTO_TCP, how);
        return eth(dstMac, srcMac, FrameHeaders.ETH_P_IPV6, ipv6(src, dst, FrameHeaders.IPPROTO_TCP, l4));
    }

    private static byte[] l4(int proto, int sport, int dport, long seq, long ack, int flags, byte[] payload) {
        int h = proto == FrameHeaders.IPPROTO_TCP ? TCP_HLEN : UDP_HLEN;
        ByteBuffer b = ByteBuffer.allocate(h + payload.length).order(ByteOrder.BIG_ENDIAN);
        b.putShort((short) sport).putShort((short) dport);
        if (proto == FrameHeaders.IPPROTO_TCP) {
            b.putInt((int) seq).putInt((int) ack).put((byte) (5 << 4)).put((byte) flags).putShort((short) 65535)
                    .putShort((short) 0).putShort((short) 0);
        } else {
            b.putShort((short) (h + payload.length)).putShort((short) 0);
        }
        b.put(payload);
        return b.array();
    }

    private static void fill(byte[] l4, int field, byte[] src, byte[] dst, int proto, Checksum how) {
        long sum = FrameHeaders.sum(ByteBuffer.wrap(src), 0, src.length, 0)
                + FrameHeaders.sum(ByteBuffer.wrap(dst), 0, dst.length, 0) + proto + l4.length;
        int value;
        if (how == Checksum.PARTIAL) {
            value = FrameHeaders.fold(sum);
        } else {
            value = ~FrameHeaders.fold(FrameHeaders.sum(ByteBuffer.wrap(l4), 0, l4.length, sum)) & 0xffff;
        }
        l4[field] = (byte) (value >>> 8);
        l4[field + 1] = (byte) value;
    }

    private static byte[] ipv4(byte[] src, byte[] dst, int proto, byte[] l4) {
        ByteBuffer b = ByteBuffer.allocate(IPV4_HLEN + l4.length);
        b.put((byte) 0x45).put((byte) 0).putShort((short) (IPV4_HLEN + l4.length)).putShort((short) 1)
                .putShort((short) 0x4000).put((byte) 64).put((byte) proto).putShort((short) 0).put(src).put(dst);
        int c = ~FrameHeaders.fold(FrameHeaders.sum(b, 0, IPV4_HLEN, 0)) & 0xffff;
        b.putShort(10, (short) c);
        b.position(IPV4_HLEN);
        b.put(l4);
        return b.array();
    }

    private static byte[] ipv6(byte[] src, byte[] dst, int proto, byte[] l4) {
        ByteBuffer b = ByteBuffer.allocate(IPV6_HLEN + l4.length);
        b.putInt(0x6000_0000).putShort((short) l4.length).put((byte) proto).put((byte) 64).put(src).put(dst).put(l4);
        return b.array();
    }

    static byte[] eth(byte[] dst, byte[] src, int type, byte[] payload) {
        ByteBuffer b = ByteBuffer.allocate(ETH_HLEN + payload.length);
        b.put(dst).put(src).putShort((short) type).put(payload);
        return b.array();
    }

    /** Whether the TCP/UDP checksum of {@code frame} (IPv4 or IPv6, no options) verifies. */
    static boolean transportChecksumValid(byte[] frame) {
        FrameHeaders h = new FrameHeaders();
        ByteBuffer b = ByteBuffer.wrap(frame);
        if (!h.parse(b, 0, frame.length)) {
            return false;
        }
        int l4Length = frame.length - h.l4Offset;
        long sum = h.etherType == FrameHeaders.ETH_P_IP ? FrameHeaders.sum(b, h.l3Offset + 12, 8, 0)
                : FrameHeaders.sum(b, h.l3Offset + 8, 32, 0);
        sum += h.l4Protocol + l4Length;
        return FrameHeaders.fold(FrameHeaders.sum(b, h.l4Offset, l4Length, sum)) == 0xffff;
    }

    /** A virtio-net header followed by {@code frame}. */
    static ByteBuffer withHeader(byte[] frame, int flags, int gsoType, int hdrLen, int gsoSize, int csumStart,
            int csumOffset) {
        ByteBuffer b = ByteBuffer.allocate(12 + frame.length);
        io.jtap.tap.VirtioNetHeaderDescriptor.put(b, 0, flags, gsoType, hdrLen, gsoSize, csumStart, csumOffset);
        b.position(12);
        b.put(frame);
        b.flip();
        return b;
    }
}
