package io.jtap.ring;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class SharedRingDescriptorTest {
    @ParameterizedTest(name = "ringSize({0}, {1}) = {2}")
    @CsvSource({
        "4096, 112, 32",    // blkif x86_64: 36 fit
        "4096, 108, 32",    // blkif x86_32: 37 fit
        "4096, 12, 256",    // netif tx: 336 fit
        "4096, 8, 256",     // netif rx: 504 fit
        "8192, 112, 64",
        "65536, 112, 512",  // order 4: 584 fit
        "4096, 4032, 1",    // exactly one entry after the header
        "4096, 2016, 2",
        "4096, 2017, 1",
        "4096, 63, 64",
    })
    void ringSizeIsWhatFitsRoundedDownToAPowerOfTwo(final int ringBytes, final int entryLength, final int size) {
        assertEquals(size, SharedRingDescriptor.ringSize(ringBytes, entryLength));
    }

    @Test
    void ringsTooSmallOrOfUnsupportedOrderAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> SharedRingDescriptor.ringSize(4096, 4033));
        assertThrows(IllegalArgumentException.class, () -> SharedRingDescriptor.ringSize(4096, 0));
        assertThrows(IllegalArgumentException.class, () -> SharedRingDescriptor.ringBytes(-1));
        assertThrows(IllegalArgumentException.class,
            () -> SharedRingDescriptor.ringBytes(SharedRingDescriptor.XEN_MAX_RING_PAGE_ORDER + 1));
        assertThrows(IllegalArgumentException.class,
            () -> BackRing.attach(ByteBuffer.allocate(4096), 0, 112), "heap buffer cannot alias granted pages");
        assertThrows(IllegalArgumentException.class,
            () -> BackRing.attach(SharedRingDescriptor.allocate(0), 1, 112), "buffer smaller than the ring");
    }

    @Test
    void allocatedRingsArePageAlignedAndInitialisedLikeSharedRingInit() {
        for (int order = 0; order <= SharedRingDescriptor.XEN_MAX_RING_PAGE_ORDER; order++) {
            final ByteBuffer pages = SharedRingDescriptor.allocate(order);
            assertEquals(4096 << order, pages.capacity());
            assertEquals(0, pages.alignmentOffset(0, 4096));
            for (int i = 0; i < 64; i++) {
                pages.put(i, (byte) 0x5a);
            }
            final FrontRing front = FrontRing.init(pages, order, 112);
            assertEquals(0, LittleEndian.getInt32(pages, SharedRingDescriptor.REQ_PROD_OFFSET));
            assertEquals(1, LittleEndian.getInt32(pages, SharedRingDescriptor.REQ_EVENT_OFFSET));
            assertEquals(0, LittleEndian.getInt32(pages, SharedRingDescriptor.RSP_PROD_OFFSET));
            assertEquals(1, LittleEndian.getInt32(pages, SharedRingDescriptor.RSP_EVENT_OFFSET));
            for (int i = SharedRingDescriptor.PVT_OFFSET; i < SharedRingDescriptor.RING_OFFSET; i++) {
                assertEquals(0, pages.get(i), "pvt and __pad zeroed");
            }
            assertEquals(32 << order, front.size(), "blkif entries double with each order");
            assertTrue(front.freeRequests() == front.size() && !front.full());
        }
    }

    @Test
    void entriesAreMaskedFromFreeRunningIndices() {
        assertEquals(64, SharedRingDescriptor.entryOffset(0, 32, 112));
        assertEquals(64 + 31 * 112, SharedRingDescriptor.entryOffset(-1, 32, 112));
        assertEquals(64, SharedRingDescriptor.entryOffset(Integer.MIN_VALUE, 32, 112));
        assertEquals(64 + 112, SharedRingDescriptor.entryOffset(33, 32, 112));
    }
}
