package io.jtap.ring;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Layout of a Xen shared ring: the header and the entry array that {@code DEFINE_RING_TYPES} declares in
 * {@code xen/io/ring.h}, mirrored byte for byte.
 *
 * <pre>
 * struct __name##_sring {                    offset
 *     RING_IDX req_prod, req_event;             0, 4
 *     RING_IDX rsp_prod, rsp_event;             8, 12
 *     union { ... uint8_t pvt_pad[4]; } pvt;   16
 *     uint8_t __pad[44];                       20
 *     union __name##_sring_entry ring[1];      64   (variable length)
 * };
 *
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +---------------------------------------------------------------+
 *  |                  req_prod (written by front)                  |  0
 *  +---------------------------------------------------------------+
 *  |                  req_event (written by back)                  |  4
 *  +---------------------------------------------------------------+
 *  |                  rsp_prod (written by back)                   |  8
 *  +---------------------------------------------------------------+
 *  |                  rsp_event (written by front)                 | 12
 *  +---------------------------------------------------------------+
 *  |                          pvt_pad[4]                           | 16
 *  +---------------------------------------------------------------+
 *  |                      __pad[44] ... (to 64)                    | 20
 *  +---------------------------------------------------------------+
 *  |  entry 0 | entry 1 | ... | entry RING_SIZE - 1                | 64
 *  +---------------------------------------------------------------+
 * </pre>
 *
 * <p>An entry is the union of the request and the response type, so its length is the larger of the two. The
 * ring occupies {@code 1 << order} contiguous 4 KiB Xen pages (order 0..{@value #XEN_MAX_RING_PAGE_ORDER}),
 * mapped as one buffer. Indices ({@code RING_IDX}) are free-running unsigned 32-bit counters; a slot is an index
 * masked with {@code RING_SIZE - 1}.
 */
public final class SharedRingDescriptor {
    /** Xen: {@code XEN_PAGE_SHIFT}. Rings are measured in Xen pages whatever the host page size. */
    public static final int XEN_PAGE_SHIFT = 12;
    public static final int XEN_PAGE_SIZE = 1 << XEN_PAGE_SHIFT;
    /** Largest ring order a backend offers here (blkif "max-ring-page-order"): 16 pages. */
    public static final int XEN_MAX_RING_PAGE_ORDER = 4;

    public static final int REQ_PROD_OFFSET = 0;
    public static final int REQ_EVENT_OFFSET = 4;
    public static final int RSP_PROD_OFFSET = 8;
    public static final int RSP_EVENT_OFFSET = 12;
    public static final int PVT_OFFSET = 16;
    public static final int PVT_LENGTH = 4;
    public static final int PAD_OFFSET = 20;
    public static final int PAD_LENGTH = 44;
    /** Xen: {@code offsetof(struct __name##_sring, ring)}. */
    public static final int RING_OFFSET = 64;

    /**
     * Little-endian int view used for every access to a shared index. The ring is shared with a guest of the same
     * (little-endian, x86) byte order; the buffer's own {@link ByteOrder} is irrelevant to it.
     */
    static final VarHandle INDEX = MethodHandles.byteBufferViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);

    private SharedRingDescriptor() {
    }

    /** Bytes of a ring of {@code 1 << order} Xen pages. */
    public static int ringBytes(final int order) {
        if (order < 0 || order > XEN_MAX_RING_PAGE_ORDER) {
            throw new IllegalArgumentException("ring page order out of range: order=" + order
                + ", max=" + XEN_MAX_RING_PAGE_ORDER);
        }
        return XEN_PAGE_SIZE << order;
    }

    /**
     * Number of entries in a ring of {@code ringBytes} bytes whose entries are {@code entryLength} bytes: what fits
     * after the header, rounded down to a power of two. Xen: {@code __CONST_RING_SIZE} / {@code __RING_SIZE}.
     */
    public static int ringSize(final int ringBytes, final int entryLength) {
        if (entryLength <= 0 || ringBytes < RING_OFFSET + entryLength) {
            throw new IllegalArgumentException("ring too small for one entry: ringBytes=" + ringBytes
                + ", entryLength=" + entryLength);
        }
        return roundDownToPowerOfTwo((ringBytes - RING_OFFSET) / entryLength);
    }

    /** Xen: {@code __RD32}, the largest power of two not above {@code x} (0 for 0). */
    public static int roundDownToPowerOfTwo(final int x) {
        return Integer.highestOneBit(x);
    }

    /** Byte offset in the shared buffer of the slot that {@code index} maps to, in a ring of {@code size}. */
    public static int entryOffset(final int index, final int size, final int entryLength) {
        return RING_OFFSET + (index & (size - 1)) * entryLength;
    }

    /**
     * Allocates a zeroed, page-aligned, little-endian direct buffer of {@code 1 << order} Xen pages: the stand-in
     * for granted pages in simulations and tests.
     */
    public static ByteBuffer allocate(final int order) {
        final int bytes = ringBytes(order);
        return ByteBuffer.allocateDirect(bytes + XEN_PAGE_SIZE).alignedSlice(XEN_PAGE_SIZE)
            .limit(bytes).slice().order(ByteOrder.LITTLE_ENDIAN);
    }

    /**
     * Checks that {@code sharedRing} can carry a ring of {@code 1 << order} pages: direct (it will alias granted
     * pages), writable, large enough and 4-byte aligned so the indices can be accessed atomically.
     */
    static void checkBuffer(final ByteBuffer sharedRing, final int order) {
        final int bytes = ringBytes(order);
        if (!sharedRing.isDirect() || sharedRing.isReadOnly() || sharedRing.capacity() < bytes
            || sharedRing.alignmentOffset(0, 4) != 0) {
            throw new IllegalArgumentException("unusable shared ring buffer: direct=" + sharedRing.isDirect()
                + ", readOnly=" + sharedRing.isReadOnly() + ", capacity=" + sharedRing.capacity()
                + ", ringBytes=" + bytes + ", alignment=" + sharedRing.alignmentOffset(0, 4));
        }
    }

    /**
     * Writes an empty shared ring whose indices all start at {@code startIndex}: producers and consumers at
     * {@code startIndex}, both event indices one past it, private fields zeroed. With {@code startIndex == 0} this
     * is Xen's {@code SHARED_RING_INIT}; other values let tests start just below 2^32 to cross the wrap.
     */
    static void init(final ByteBuffer sharedRing, final int startIndex) {
        for (int i = PVT_OFFSET; i < RING_OFFSET; i++) {
            sharedRing.put(i, (byte) 0);
        }
        INDEX.setOpaque(sharedRing, REQ_PROD_OFFSET, startIndex);
        INDEX.setOpaque(sharedRing, RSP_PROD_OFFSET, startIndex);
        INDEX.setOpaque(sharedRing, REQ_EVENT_OFFSET, startIndex + 1);
        // The back end sees the initialised header before anything published after this call.
        INDEX.setRelease(sharedRing, RSP_EVENT_OFFSET, startIndex + 1);
    }
}
