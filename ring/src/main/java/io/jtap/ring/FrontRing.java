package io.jtap.ring;

import static io.jtap.ring.SharedRingDescriptor.INDEX;
import static io.jtap.ring.SharedRingDescriptor.REQ_EVENT_OFFSET;
import static io.jtap.ring.SharedRingDescriptor.REQ_PROD_OFFSET;
import static io.jtap.ring.SharedRingDescriptor.RSP_EVENT_OFFSET;
import static io.jtap.ring.SharedRingDescriptor.RSP_PROD_OFFSET;

import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;

/**
 * The front end's view of a shared ring: it produces requests and consumes responses. Xen:
 * {@code struct __name##_front_ring} and the {@code RING_*} macros that take one. jtap's own front ends are
 * simulations and tests, so the back end is trusted here beyond {@link #responseProdOverflow}.
 *
 * <p>Not thread-safe: one thread owns the front end of a ring. Nothing here allocates. The ring does not own the
 * buffer.
 */
public final class FrontRing {
    private final ByteBuffer shared;
    private final int size;
    private final int entryLength;
    /** Xen: {@code req_prod_pvt}, requests written but maybe not yet pushed. */
    private int reqProdPvt;
    /** Xen: {@code rsp_cons}. */
    private int rspCons;

    private FrontRing(final ByteBuffer shared, final int order, final int entryLength, final int startIndex) {
        SharedRingDescriptor.checkBuffer(shared, order);
        this.shared = shared;
        this.size = SharedRingDescriptor.ringSize(SharedRingDescriptor.ringBytes(order), entryLength);
        this.entryLength = entryLength;
        this.reqProdPvt = startIndex;
        this.rspCons = startIndex;
    }

    /**
     * Initialises the shared ring and attaches to it. Xen: {@code XEN_FRONT_RING_INIT}
     * ({@code SHARED_RING_INIT} then {@code FRONT_RING_INIT}).
     *
     * @param sharedRing  direct, writable, at least {@code 4096 << order} bytes
     * @param order       ring page order, 0..{@value SharedRingDescriptor#XEN_MAX_RING_PAGE_ORDER}
     * @param entryLength bytes per entry: the size of the request/response union
     */
    public static FrontRing init(final ByteBuffer sharedRing, final int order, final int entryLength) {
        return initAt(sharedRing, order, entryLength, 0);
    }

    /**
     * Like {@link #init} but every index starts at {@code startIndex} instead of 0 (event indices at
     * {@code startIndex + 1}): {@code SHARED_RING_INIT} and {@code FRONT_RING_ATTACH(r, s, startIndex, size)} with
     * the shared indices moved consistently. Tests use it to cross the 2^32 wrap early.
     */
    public static FrontRing initAt(final ByteBuffer sharedRing, final int order, final int entryLength,
                                   final int startIndex) {
        SharedRingDescriptor.checkBuffer(sharedRing, order);
        SharedRingDescriptor.init(sharedRing, startIndex);
        return new FrontRing(sharedRing, order, entryLength, startIndex);
    }

    /** Xen: {@code FRONT_RING_ATTACH}; the shared ring is not touched. */
    public static FrontRing attach(final ByteBuffer sharedRing, final int order, final int entryLength,
                                   final int startIndex) {
        return new FrontRing(sharedRing, order, entryLength, startIndex);
    }

    /** Xen: {@code RING_SIZE}. */
    public int size() {
        return size;
    }

    public int entryLength() {
        return entryLength;
    }

    public ByteBuffer buffer() {
        return shared;
    }

    /** Xen: {@code req_prod_pvt}. */
    public int requestProducer() {
        return reqProdPvt;
    }

    /** Xen: {@code rsp_cons}. */
    public int responseConsumer() {
        return rspCons;
    }

    /** Byte offset in {@link #buffer()} of the slot for {@code index}. Xen: {@code RING_GET_REQUEST/RESPONSE}. */
    public int slotOffset(final int index) {
        return SharedRingDescriptor.entryOffset(index, size, entryLength);
    }

    /** Xen: {@code RING_FREE_REQUESTS}. */
    public int freeRequests() {
        return size - (reqProdPvt - rspCons);
    }

    /** Xen: {@code RING_FULL}. */
    public boolean full() {
        return freeRequests() == 0;
    }

    /**
     * Claims the slot for the next request and returns its byte offset in {@link #buffer()}; the caller writes the
     * request there before the next push. Xen: {@code RING_GET_REQUEST(r, r->req_prod_pvt++)}.
     *
     * @throws IllegalStateException if the ring is {@link #full()}
     */
    public int nextRequestSlot() {
        if (full()) {
            throw new IllegalStateException("ring full: req_prod_pvt=" + Integer.toUnsignedString(reqProdPvt)
                + ", rsp_cons=" + Integer.toUnsignedString(rspCons));
        }
        return slotOffset(reqProdPvt++);
    }

    /** Publishes the requests written so far without checking for a notification. Xen: {@code RING_PUSH_REQUESTS}. */
    public void pushRequests() {
        // The back end sees the requests /before/ the updated producer index (the release is Xen's xen_wmb()).
        INDEX.setRelease(shared, REQ_PROD_OFFSET, reqProdPvt);
    }

    /**
     * Publishes the requests written so far and tells whether the back end asked to be notified of them. Xen:
     * {@code RING_PUSH_REQUESTS_AND_CHECK_NOTIFY}.
     *
     * @return true if the caller must kick the back end's event channel
     */
    public boolean pushRequestsAndCheckNotify() {
        final int oldProd = (int) INDEX.getOpaque(shared, REQ_PROD_OFFSET);
        final int newProd = reqProdPvt;
        // The back end sees the requests /before/ the updated producer index (the release is Xen's xen_wmb()).
        INDEX.setRelease(shared, REQ_PROD_OFFSET, newProd);
        // The back end sees the new requests /before/ we check req_event (Xen's xen_mb()).
        VarHandle.fullFence();
        final int reqEvent = (int) INDEX.getOpaque(shared, REQ_EVENT_OFFSET);
        return Integer.compareUnsigned(newProd - reqEvent, newProd - oldProd) < 0;
    }

    /** Xen: {@code RING_HAS_UNCONSUMED_RESPONSES} ({@code XEN_RING_NR_UNCONSUMED_RESPONSES}). */
    public int unconsumedResponses() {
        // We see the responses up to rsp_prod /before/ we read them (the acquire is Xen's xen_rmb()).
        return (int) INDEX.getAcquire(shared, RSP_PROD_OFFSET) - rspCons;
    }

    /** Xen: {@code RING_RESPONSE_PROD_OVERFLOW}: can there be this many responses? */
    public boolean responseProdOverflow(final int rspProd) {
        return Integer.compareUnsigned(rspProd - rspCons, size) > 0;
    }

    /**
     * Consumes the response at rsp_cons and returns its byte offset in {@link #buffer()}. The slot stays valid until
     * this front end claims it again with {@link #nextRequestSlot()}. Xen: {@code RING_GET_RESPONSE(r, r->rsp_cons++)}.
     *
     * @throws IllegalStateException if no response was published
     */
    public int nextResponseSlot() {
        if (unconsumedResponses() == 0) {
            throw new IllegalStateException("no response to consume: rsp_cons=" + Integer.toUnsignedString(rspCons));
        }
        return slotOffset(rspCons++);
    }

    /**
     * Checks for responses once more before the front end goes idle, first asking the back end (via rsp_event) to
     * notify on the next one. Xen: {@code RING_FINAL_CHECK_FOR_RESPONSES}.
     *
     * @return true if responses can be consumed; false if the front end may wait for a kick
     */
    public boolean finalCheckForResponses() {
        if (unconsumedResponses() != 0) {
            return true;
        }
        INDEX.setOpaque(shared, RSP_EVENT_OFFSET, rspCons + 1);
        // The back end sees the new rsp_event /before/ we check rsp_prod again (Xen's xen_mb()).
        VarHandle.fullFence();
        return unconsumedResponses() != 0;
    }
}
