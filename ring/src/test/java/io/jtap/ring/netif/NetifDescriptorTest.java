package io.jtap.ring.netif;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.ByteBuffer;

import org.junit.jupiter.api.Test;

/**
 * The netif accessors write and read each field little-endian at its offset and nothing else: every test writes a
 * message after a canary byte and compares the raw bytes with the C layout (offsets checked in
 * XenHeaderLayoutTest).
 */
class NetifDescriptorTest {
    private static final int AT = 3; // an odd offset: accessors must not assume alignment

    private static ByteBuffer buffer() {
        final ByteBuffer buffer = ByteBuffer.allocate(32); // big-endian on purpose: accessors ignore buffer order
        for (int i = 0; i < buffer.capacity(); i++) {
            buffer.put(i, (byte) 0xee);
        }
        return buffer;
    }

    private static byte[] bytes(final ByteBuffer buffer, final int length) {
        final byte[] raw = new byte[length + 2];
        buffer.get(AT - 1, raw);
        return raw;
    }

    private static byte[] expect(final int... values) {
        final byte[] raw = new byte[values.length + 2];
        raw[0] = (byte) 0xee;
        for (int i = 0; i < values.length; i++) {
            raw[i + 1] = (byte) values[i];
        }
        raw[raw.length - 1] = (byte) 0xee;
        return raw;
    }

    @Test
    void txRequest() {
        final ByteBuffer b = buffer();
        NetifTxRequestDescriptor.put(b, AT, 0x04030201, 0x0605, Netif.NETTXF_more_data | Netif.NETTXF_extra_info,
            0xfffe, 0x0c0b);
        assertArrayEquals(expect(1, 2, 3, 4, 5, 6, 0x0c, 0, 0xfe, 0xff, 0x0b, 0x0c),
            bytes(b, NetifTxRequestDescriptor.LENGTH));
        assertEquals(0x04030201, NetifTxRequestDescriptor.gref(b, AT));
        assertEquals(0x0605, NetifTxRequestDescriptor.offset(b, AT));
        assertEquals(0x0c, NetifTxRequestDescriptor.flags(b, AT));
        assertEquals(0xfffe, NetifTxRequestDescriptor.id(b, AT), "uint16_t id is unsigned");
        assertEquals(0x0c0b, NetifTxRequestDescriptor.size(b, AT));
    }

    @Test
    void txResponse() {
        final ByteBuffer b = buffer();
        NetifTxResponseDescriptor.put(b, AT, 0x8001, Netif.NETIF_RSP_DROPPED);
        assertArrayEquals(expect(0x01, 0x80, 0xfe, 0xff), bytes(b, NetifTxResponseDescriptor.LENGTH));
        assertEquals(0x8001, NetifTxResponseDescriptor.id(b, AT));
        assertEquals(Netif.NETIF_RSP_DROPPED, NetifTxResponseDescriptor.status(b, AT), "int16_t status is signed");
    }

    @Test
    void rxRequest() {
        final ByteBuffer b = buffer();
        NetifRxRequestDescriptor.put(b, AT, 0x0201, 0x08070605);
        assertArrayEquals(expect(1, 2, 0, 0, 5, 6, 7, 8), bytes(b, NetifRxRequestDescriptor.LENGTH));
        assertEquals(0x0201, NetifRxRequestDescriptor.id(b, AT));
        assertEquals(0x08070605, NetifRxRequestDescriptor.gref(b, AT));
    }

    @Test
    void rxResponse() {
        final ByteBuffer b = buffer();
        NetifRxResponseDescriptor.put(b, AT, 0x0201, 0x0403, Netif.NETRXF_gso_prefix, 1514);
        assertArrayEquals(expect(1, 2, 3, 4, 0x10, 0, 0xea, 0x05), bytes(b, NetifRxResponseDescriptor.LENGTH));
        assertEquals(0x0201, NetifRxResponseDescriptor.id(b, AT));
        assertEquals(0x0403, NetifRxResponseDescriptor.offset(b, AT));
        assertEquals(Netif.NETRXF_gso_prefix, NetifRxResponseDescriptor.flags(b, AT));
        assertEquals(1514, NetifRxResponseDescriptor.status(b, AT));
    }

    @Test
    void extraInfoUnionMembers() {
        final ByteBuffer b = buffer();
        NetifExtraInfoDescriptor.putGso(b, AT, Netif.XEN_NETIF_EXTRA_FLAG_MORE, 1448, Netif.XEN_NETIF_GSO_TYPE_TCPV6,
            0x0201);
        assertArrayEquals(expect(1, 1, 0xa8, 0x05, 2, 0, 1, 2), bytes(b, NetifExtraInfoDescriptor.LENGTH));
        assertEquals(Netif.XEN_NETIF_EXTRA_TYPE_GSO, NetifExtraInfoDescriptor.type(b, AT));
        assertEquals(Netif.XEN_NETIF_EXTRA_FLAG_MORE, NetifExtraInfoDescriptor.flags(b, AT));
        assertEquals(1448, NetifExtraInfoDescriptor.gsoSize(b, AT));
        assertEquals(Netif.XEN_NETIF_GSO_TYPE_TCPV6, NetifExtraInfoDescriptor.gsoType(b, AT));
        assertEquals(0x0201, NetifExtraInfoDescriptor.gsoFeatures(b, AT));

        NetifExtraInfoDescriptor.putMcast(b, AT, Netif.XEN_NETIF_EXTRA_TYPE_MCAST_ADD, 0, 0x01005e0000fbL);
        assertArrayEquals(expect(2, 0, 0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb), bytes(b, NetifExtraInfoDescriptor.LENGTH));
        assertEquals(0x01005e0000fbL, NetifExtraInfoDescriptor.mcastAddr(b, AT));

        NetifExtraInfoDescriptor.putHash(b, AT, 0, 2, 1, 0x44332211);
        assertArrayEquals(expect(4, 0, 2, 1, 0x11, 0x22, 0x33, 0x44), bytes(b, NetifExtraInfoDescriptor.LENGTH));
        assertEquals(2, NetifExtraInfoDescriptor.hashType(b, AT));
        assertEquals(1, NetifExtraInfoDescriptor.hashAlgorithm(b, AT));
        assertEquals(0x44332211, NetifExtraInfoDescriptor.hashValue(b, AT));
    }

    @Test
    void ringSizesAreComputedFromEntryLengths() {
        assertEquals(12, Netif.TX_ENTRY_LENGTH);
        assertEquals(8, Netif.RX_ENTRY_LENGTH);
        assertEquals(256, Netif.NET_TX_RING_SIZE);
        assertEquals(256, Netif.NET_RX_RING_SIZE);
    }
}
