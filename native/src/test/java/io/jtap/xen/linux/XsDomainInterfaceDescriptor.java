package io.jtap.xen.linux;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/**
 * Layout of a domain's xenstore page, mirroring {@code struct xenstore_domain_interface} in {@code xen/io/xs_wire.h}:
 * two byte rings of wire messages ({@link XsWireDescriptor}) and their free-running indices.
 *
 * <pre>
 *   0                        1024                       2048
 *   +------------------------+--------------------------+----------+----------+----------+----------+
 *   | req[1024]: guest to    | rsp[1024]: xenstored to  | req_cons | req_prod | rsp_cons | rsp_prod |
 *   | xenstored (requests)   | guest (replies, events)  | 2048     | 2052     | 2056     | 2060     |
 *   +------------------------+--------------------------+----------+----------+----------+----------+
 *   2064 server_features, 2068 connection, 2072 error (u32 each); the rest of the 4096-byte page is unused.
 * </pre>
 *
 * Indices are XENSTORE_RING_IDX (u32), free-running: a position in a ring is MASK_XENSTORE_IDX(index), and
 * {@code prod - cons} (mod 2^32) is how many bytes are in flight, never more than XENSTORE_RING_SIZE. Each ring has one
 * producer and one consumer; the guest produces req and consumes rsp. The indices are in the host's byte order (the
 * page is shared by two parties on one machine).
 */
final class XsDomainInterfaceDescriptor {
    /** XENSTORE_RING_SIZE; a power of two, so MASK_XENSTORE_IDX is a bit mask. */
    static final int XENSTORE_RING_SIZE = 1024;
    static final int REQ_OFFSET = 0;
    static final int RSP_OFFSET = 1024;
    static final int REQ_CONS_OFFSET = 2048;
    static final int REQ_PROD_OFFSET = 2052;
    static final int RSP_CONS_OFFSET = 2056;
    static final int RSP_PROD_OFFSET = 2060;
    static final int SERVER_FEATURES_OFFSET = 2064;
    static final int CONNECTION_OFFSET = 2068;
    static final int ERROR_OFFSET = 2072;
    /** One Xen page. */
    static final int PAGE_LENGTH = 4096;

    /** Ordered access (getAcquire/setRelease) to a u32 index in a direct buffer holding the page. */
    static final VarHandle INDEX = MethodHandles.byteBufferViewVarHandle(int[].class, ByteOrder.nativeOrder());

    private XsDomainInterfaceDescriptor() {
    }

    /** MASK_XENSTORE_IDX. */
    static int mask(int index) {
        return index & (XENSTORE_RING_SIZE - 1);
    }

    /** check_indexes() in xenstored: a producer index more than a ring ahead of the consumer is bogus. */
    static boolean plausible(int cons, int prod) {
        return Integer.compareUnsigned(prod - cons, XENSTORE_RING_SIZE) <= 0;
    }
}
