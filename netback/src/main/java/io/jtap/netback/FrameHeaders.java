package io.jtap.netback;

import java.nio.ByteBuffer;

/**
 * Just enough header parsing of an Ethernet frame for offloads and queue selection: where the IPv4/IPv6 header and the
 * TCP/UDP header start (Linux's {@code skb_checksum_setup} does the same on tx to find {@code csum_start} and
 * {@code csum_offset}), a flow hash for picking an rx queue, and the checksum helpers. Reads only; frames are
 * untrusted, every offset is bounds-checked against the frame's length.
 *
 * <p>A parse result is held in the fields of a reusable instance (no allocation per frame); one owner thread.
 */
final class FrameHeaders {
    static final int ETH_HLEN = 14;
    static final int ETH_P_IP = 0x0800;
    static final int ETH_P_IPV6 = 0x86DD;
    static final int ETH_P_8021Q = 0x8100;
    static final int IPPROTO_TCP = 6;
    static final int IPPROTO_UDP = 17;
    /** {@code offsetof(struct tcphdr, check)}. */
    static final int TCP_CHECK_OFFSET = 16;
    /** {@code offsetof(struct udphdr, check)}. */
    static final int UDP_CHECK_OFFSET = 6;

    /** Ethertype of the network header (after one VLAN tag), or -1. */
    int etherType;
    /** Offset of the IP header from the frame start, or -1. */
    int l3Offset;
    /** Offset of the TCP/UDP header from the frame start, or -1 when there is none we understand. */
    int l4Offset;
    /** {@link #IPPROTO_TCP} or {@link #IPPROTO_UDP}, or -1. */
    int l4Protocol;
    /** TCP header length in bytes, 0 for UDP. */
    int l4HeaderLength;

    /**
     * Parses the frame of {@code length} bytes at {@code start} of {@code buf}.
     *
     * @return whether a TCP or UDP header over IPv4/IPv6 was found
     */
    boolean parse(ByteBuffer buf, int start, int length) {
        etherType = -1;
        l3Offset = -1;
        l4Offset = -1;
        l4Protocol = -1;
        l4HeaderLength = 0;
        if (length < ETH_HLEN) {
            return false;
        }
        int type = u16(buf, start + 12);
        int off = ETH_HLEN;
        if (type == ETH_P_8021Q) {
            if (length < off + 4) {
                return false;
            }
            type = u16(buf, start + off + 2);
            off += 4;
        }
        etherType = type;
        l3Offset = off;
        int proto;
        if (type == ETH_P_IP) {
            if (length < off + 20) {
                return false;
            }
            int ihl = (buf.get(start + off) & 0x0f) * 4;
            int fragment = u16(buf, start + off + 6) & 0x3fff; // MF flag and fragment offset
            if (ihl < 20 || length < off + ihl || fragment != 0) {
                return false;
            }
            proto = buf.get(start + off + 9) & 0xff;
            off += ihl;
        } else if (type == ETH_P_IPV6) {
            if (length < off + 40) {
                return false;
            }
            proto = buf.get(start + off + 6) & 0xff;
            off += 40;
            // Hop-by-hop (0), routing (43) and destination options (60): <next header, length in 8-byte units - 1>.
            for (int i = 0; i < 4 && (proto == 0 || proto == 43 || proto == 60); i++) {
                if (length < off + 8) {
                    return false;
                }
                int next = buf.get(start + off) & 0xff;
                off += ((buf.get(start + off + 1) & 0xff) + 1) * 8;
                proto = next;
            }
        } else {
            return false;
        }
        if (proto == IPPROTO_TCP) {
            if (length < off + 20) {
                return false;
            }
            int doff = ((buf.get(start + off + 12) & 0xff) >>> 4) * 4;
            if (doff < 20 || length < off + doff) {
                return false;
            }
            l4HeaderLength = doff;
        } else if (proto == IPPROTO_UDP) {
            if (length < off + 8) {
                return false;
            }
        } else {
            return false;
        }
        l4Offset = off;
        l4Protocol = proto;
        return true;
    }

    /** The checksum field's offset from the L4 header, for {@code csum_offset}. */
    int checksumFieldOffset() {
        return l4Protocol == IPPROTO_TCP ? TCP_CHECK_OFFSET : UDP_CHECK_OFFSET;
    }

    /**
     * A flow hash of the last parsed frame: addresses and ports when there are some, else the MAC addresses, so that
     * one flow always lands in one rx queue.
     */
    int flowHash(ByteBuffer buf, int start, int length) {
        int h = 0x9e3779b9;
        if (l3Offset >= 0 && etherType == ETH_P_IP && length >= l3Offset + 20) {
            h = mix(h, buf.getInt(start + l3Offset + 12));
            h = mix(h, buf.getInt(start + l3Offset + 16));
            h = mix(h, buf.get(start + l3Offset + 9));
        } else if (l3Offset >= 0 && etherType == ETH_P_IPV6 && length >= l3Offset + 40) {
            for (int i = 8; i < 40; i += 4) {
                h = mix(h, buf.getInt(start + l3Offset + i));
            }
        } else {
            for (int i = 0; i < 12 && i + 4 <= length; i += 4) {
                h = mix(h, buf.getInt(start + i));
            }
            return h;
        }
        if (l4Offset >= 0) {
            h = mix(h, buf.getInt(start + l4Offset)); // both ports
        }
        return h;
    }

    private static int mix(int h, int v) {
        h ^= v;
        h *= 0x01000193;
        return h ^ (h >>> 15);
    }

    /**
     * Completes a partial checksum in software, as Linux's {@code skb_checksum_help}: the one's-complement sum from
     * {@code csumStart} to the end of the frame (the field holds the pseudo-header sum) is folded into the field, a
     * result of 0 written as 0xffff.
     *
     * @return false when the offsets lie outside the frame (the frame is then left alone)
     */
    static boolean completeChecksum(ByteBuffer buf, int start, int length, int csumStart, int csumOffset) {
        int field = csumStart + csumOffset;
        if (csumStart < 0 || csumStart >= length || field + 2 > length) {
            return false;
        }
        long sum = sum(buf, start + csumStart, length - csumStart, 0);
        int folded = ~fold(sum) & 0xffff;
        if (folded == 0) {
            folded = 0xffff; // Linux CSUM_MANGLED_0: the same value in one's complement, and UDP's "no checksum" is 0
        }
        buf.put(start + field, (byte) (folded >>> 8));
        buf.put(start + field + 1, (byte) folded);
        return true;
    }

    /**
     * Writes the pseudo-header sum (not inverted) into the L4 checksum field of the last parsed frame, which makes it a
     * valid partial checksum (Linux: {@code skb_checksum_setup} with {@code recalculate} for a GSO packet that came
     * without {@code csum_blank}).
     */
    void putPseudoHeaderSum(ByteBuffer buf, int start, int length) {
        int l4Length = length - l4Offset;
        long sum;
        if (etherType == ETH_P_IP) {
            sum = sum(buf, start + l3Offset + 12, 8, 0);
        } else {
            sum = sum(buf, start + l3Offset + 8, 32, 0);
        }
        sum += l4Protocol + l4Length;
        int folded = fold(sum);
        int field = start + l4Offset + checksumFieldOffset();
        buf.put(field, (byte) (folded >>> 8));
        buf.put(field + 1, (byte) folded);
    }

    static long sum(ByteBuffer buf, int index, int length, long initial) {
        long sum = initial;
        int i = 0;
        for (; i + 1 < length; i += 2) {
            sum += ((buf.get(index + i) & 0xff) << 8) | (buf.get(index + i + 1) & 0xff);
        }
        if (i < length) {
            sum += (buf.get(index + i) & 0xff) << 8;
        }
        return sum;
    }

    static int fold(long sum) {
        while ((sum >>> 16) != 0) {
            sum = (sum & 0xffff) + (sum >>> 16);
        }
        return (int) sum;
    }

    static int u16(ByteBuffer buf, int index) {
        return (buf.get(index) & 0xff) << 8 | (buf.get(index + 1) & 0xff);
    }
}
