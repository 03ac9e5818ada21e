package io.jtap.tap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class VirtioNetHeaderDescriptorTest {
    enum Order {
        BIG(ByteOrder.BIG_ENDIAN), LITTLE(ByteOrder.LITTLE_ENDIAN);

        final ByteOrder order;

        Order(ByteOrder order) {
            this.order = order;
        }
    }

    /** The header is little-endian whatever the buffer's order, at any index, and leaves the position alone. */
    @ParameterizedTest
    @EnumSource(Order.class)
    void fieldsAreLittleEndianAtTheirOffsets(Order order) {
        ByteBuffer buf = ByteBuffer.allocate(3 + VirtioNetHeaderDescriptor.LENGTH).order(order.order);
        VirtioNetHeaderDescriptor.put(buf, 3, 0x01, 0x81, 0x0302, 0x0504, 0x0706, 0x0908);
        byte[] expected = {0, 0, 0, 0x01, (byte) 0x81, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0, 0};
        assertArrayEquals(expected, buf.array());
        assertEquals(0, buf.position());
        assertEquals(0x01, VirtioNetHeaderDescriptor.flags(buf, 3));
        assertEquals(0x81, VirtioNetHeaderDescriptor.gsoType(buf, 3));
        assertEquals(0x0302, VirtioNetHeaderDescriptor.hdrLen(buf, 3));
        assertEquals(0x0504, VirtioNetHeaderDescriptor.gsoSize(buf, 3));
        assertEquals(0x0706, VirtioNetHeaderDescriptor.csumStart(buf, 3));
        assertEquals(0x0908, VirtioNetHeaderDescriptor.csumOffset(buf, 3));
        assertEquals(0, VirtioNetHeaderDescriptor.numBuffers(buf, 3));
    }

    @Test
    void sixteenBitFieldsRejectValuesThatDoNotFit() {
        ByteBuffer buf = ByteBuffer.allocate(VirtioNetHeaderDescriptor.LENGTH);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> VirtioNetHeaderDescriptor.put(buf, 0, 0, 0, 0x10000, 0, 0, 0));
        assertEquals("virtio_net_hdr field out of range: value=65536", e.getMessage());
    }
}
