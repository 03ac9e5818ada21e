package io.jtap.ring;

import static io.jtap.ring.SharedRingDescriptor.INDEX;
import static io.jtap.ring.SharedRingDescriptor.REQ_EVENT_OFFSET;
import static io.jtap.ring.SharedRingDescriptor.REQ_PROD_OFFSET;
import static io.jtap.ring.SharedRingDescriptor.RSP_EVENT_OFFSET;
import static io.jtap.ring.SharedRingDescriptor.RSP_PROD_OFFSET;

import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;

/**
 * The back end's view of a shared ring: it consumes requests and produces responses. Xen:
 * {@code struct __name##_back_ring} and the {@code RING_*} macros that take one.
 *
 * <p>The front end is not trusted. Requests are copied out of shared memory before they are looked at
 * ({@link #copyRequest}), and a producer index that claims more requests than the ring can hold is reported as
 * {@link RingOverflowException} by {@link #pollRequests()}. Nothing here allocates; the hot loop is
 *
 * <pre>{@code
 * int n = ring.pollRequests();                  // throws if the guest's req_prod is bogus
 * while (n-- > 0) {
 *     ring.copyRequest(privateRequest, 0);      // RING_COPY_REQUEST, req_cons++
 *     ... handle; later, per completion:
 *     int slot = ring.nextResponseSlot();       // RING_GET_RESPONSE(r, r->rsp_prod_pvt++)
 *     ... write the response at slot ...
 * }
 * if (ring.pushResponsesAndCheckNotify()) kick();
 * if (!ring.finalCheckForRequests()) sleep until kicked;
 * }</pre>
 *
 * <p>Not thread-safe: one thread owns the back end of a ring (the front end runs concurrently on the peer). The
 * ring does not own the buffer; whoever mapped it unmaps it.
 */
public final class BackRing {
    private final ByteBuffer shared;
    private final int size;
    private final int entryLength;
    /** Xen: {@code rsp_prod_pvt}, responses produced but maybe not yet pushed. */
    private int rspProdPvt;
    /** Xen: {@code req_cons}, requests copied out. */
    private int reqCons;
    /** The last req_prod read and checked; requests up to it may be copied. */
    private int reqProdSeen;

    private BackRing(final ByteBuffer shared, final int order, final int entryLength, final int startIndex) {
        SharedRingDescriptor.checkBuffer(shared, order);
        this.shared = shared;
        this.size = SharedRingDescriptor.ringSize(SharedRingDescriptor.ringBytes(order), entryLength);
        this.entryLength = entryLength;
        this.rspProdPvt = startIndex;
        this.reqCons = startIndex;
        this.reqProdSeen = startIndex;
    }

    /**
     * Attaches to a shared ring the front end has initialised, resuming where the responses stand. Xen:
     * {@code BACK_RING_ATTACH(r, s, s->rsp_prod, size)}; requests after {@code rsp_prod} (a reconnect's unanswered
     * ones included) will be consumed.
     *
     * @param sharedRing  the mapped ring pages; direct, writable, at least {@code 4096 << order} bytes
     * @param order       ring page order, 0..{@value SharedRingDescriptor#XEN_MAX_RING_PAGE_ORDER}
     * @param entryLength bytes per entry: the size of the request/response union
     */
    public static BackRing attach(final ByteBuffer sharedRing, final int order, final int entryLength) {
        SharedRingDescriptor.checkBuffer(sharedRing, order);
        // We see the front end's initialisation of the ring before we use any of it.
        final int rspProd = (int) INDEX.getAcquire(sharedRing, RSP_PROD_OFFSET);
        return new BackRing(sharedRing, order, entryLength, rspProd);
    }

    /** Xen: {@code BACK_RING_ATTACH(r, s, startIndex, size)}; the shared ring is not touched. */
    public static BackRing attach(final ByteBuffer sharedRing, final int order, final int entryLength,
                                  final int startIndex) {
        return new BackRing(sharedRing, order, entryLength, startIndex);
    }

    /** Xen: {@code BACK_RING_INIT}, i.e. attach at index 0; the shared ring is not touched. */
    public static BackRing init(final ByteBuffer sharedRing, final int order, final int entryLength) {
        return new BackRing(sharedRing, order, entryLength, 0);
    }

    /** Xen: {@code RING_SIZE}. */
    public int size() {
        return size;
    }

    public int entryLength() {
        return entryLength;
    }

    /** The shared buffer, for reading and writing entries at the offsets this ring hands out. */
    public ByteBuffer buffer() {
        return shared;
    }

    /** Xen: {@code req_cons}. */
    public int requestConsumer() {
        return reqCons;
    }

    /** Xen: {@code rsp_prod_pvt}. */
    public int responseProducer() {
        return rspProdPvt;
    }

    /** Byte offset in {@link #buffer()} of the slot for {@code index}. Xen: {@code RING_GET_REQUEST/RESPONSE}. */
    public int slotOffset(final int index) {
        return SharedRingDescriptor.entryOffset(index, size, entryLength);
    }

    /**
     * Requests that can be consumed now: published by the front end and with room for their responses. Xen:
     * {@code RING_HAS_UNCONSUMED_REQUESTS} ({@code XEN_RING_NR_UNCONSUMED_REQUESTS}). Bounded by {@link #size()}
     * even when req_prod is bogus; {@link #pollRequests()} also checks it. Allows that many {@link #copyRequest}s.
     */
    public int unconsumedRequests() {
        // We see the requests up to req_prod /before/ we copy them (the acquire is Xen's xen_rmb()).
        final int reqProd = (int) INDEX.getAcquire(shared, REQ_PROD_OFFSET);
        return unconsumed(reqProd);
    }

    private int unconsumed(final int reqProd) {
        final int requests = reqProd - reqCons;
        final int room = size - (reqCons - rspProdPvt);
        final int n = Integer.compareUnsigned(requests, room) < 0 ? requests : room;
        reqProdSeen = reqCons + n;
        return n;
    }

    /**
     * Reads req_prod, checks it, and returns how many requests can be copied now (0 when idle).
     *
     * @throws RingOverflowException if the front end published more requests than the ring holds
     *                               ({@link #requestProdOverflow}) or moved req_prod back behind req_cons; the
     *                               ring is broken and must not be serviced further
     */
    public int pollRequests() throws RingOverflowException {
        // We see the requests up to req_prod /before/ we copy them (the acquire is Xen's xen_rmb()).
        final int reqProd = (int) INDEX.getAcquire(shared, REQ_PROD_OFFSET);
        if (requestProdOverflow(reqProd)) {
            reqProdSeen = reqCons;
            throw new RingOverflowException("req_prod", reqProd, rspProdPvt, size);
        }
        if (Integer.compareUnsigned(reqProd - reqCons, reqProd - rspProdPvt) > 0) {
            // req_prod went back behind requests already consumed; Xen's check alone would let the back end
            // consume a ring's worth of stale slots.
            reqProdSeen = reqCons;
            throw new RingOverflowException("req_prod (behind req_cons)", reqProd, reqCons, size);
        }
        return unconsumed(reqProd);
    }

    /** Xen: {@code RING_REQUEST_PROD_OVERFLOW}: can there be this many requests? */
    public boolean requestProdOverflow(final int reqProd) {
        return Integer.compareUnsigned(reqProd - rspProdPvt, size) > 0;
    }

    /** Xen: {@code RING_REQUEST_CONS_OVERFLOW}: would consuming {@code cons} leave no room for its response? */
    public boolean requestConsOverflow(final int cons) {
        return Integer.compareUnsigned(cons - rspProdPvt, size) >= 0;
    }

    /**
     * Copies the request at req_cons out of shared memory into {@code dst} (entryLength bytes at {@code dstOffset})
     * and consumes it. Xen: {@code RING_COPY_REQUEST(r, r->req_cons++, dst)}. Only the private copy may be looked at
     * afterwards: the guest can change the slot at any time.
     *
     * @throws IllegalStateException if no request was reported by {@link #pollRequests()},
     *                               {@link #unconsumedRequests()} or {@link #finalCheckForRequests()}
     */
    public void copyRequest(final ByteBuffer dst, final int dstOffset) {
        if (reqCons == reqProdSeen) {
            throw new IllegalStateException("no request to copy: req_cons=" + Integer.toUnsignedString(reqCons));
        }
        dst.put(dstOffset, shared, slotOffset(reqCons), entryLength);
        reqCons++;
    }

    /**
     * Claims the slot for the next response and returns its byte offset in {@link #buffer()}; the caller writes the
     * response there before the next push. Xen: {@code RING_GET_RESPONSE(r, r->rsp_prod_pvt++)}.
     *
     * @throws IllegalStateException if every consumed request already has a response
     */
    public int nextResponseSlot() {
        if (rspProdPvt == reqCons) {
            throw new IllegalStateException("no request awaits a response: rsp_prod_pvt="
                + Integer.toUnsignedString(rspProdPvt));
        }
        return slotOffset(rspProdPvt++);
    }

    /** Publishes the responses written so far without checking for a notification. Xen: {@code RING_PUSH_RESPONSES}. */
    public void pushResponses() {
        // The front end sees the responses /before/ the updated producer index (the release is Xen's xen_wmb()).
        INDEX.setRelease(shared, RSP_PROD_OFFSET, rspProdPvt);
    }

    /**
     * Publishes the responses written so far and tells whether the front end asked to be notified of them (its
     * rsp_event falls within the pushed range). Xen: {@code RING_PUSH_RESPONSES_AND_CHECK_NOTIFY}.
     *
     * @return true if the caller must kick the front end's event channel
     */
    public boolean pushResponsesAndCheckNotify() {
        final int oldProd = (int) INDEX.getOpaque(shared, RSP_PROD_OFFSET);
        final int newProd = rspProdPvt;
        // The front end sees the responses /before/ the updated producer index (the release is Xen's xen_wmb()).
        INDEX.setRelease(shared, RSP_PROD_OFFSET, newProd);
        // The front end sees the new responses /before/ we check rsp_event (Xen's xen_mb()).
        VarHandle.fullFence();
        final int rspEvent = (int) INDEX.getOpaque(shared, RSP_EVENT_OFFSET);
        return Integer.compareUnsigned(newProd - rspEvent, newProd - oldProd) < 0;
    }

    /**
     * Checks for requests once more before the back end goes idle, first asking the front end (via req_event) to
     * notify on the next one, so that a request pushed concurrently is either seen here or notified. Xen:
     * {@code RING_FINAL_CHECK_FOR_REQUESTS}.
     *
     * @return true if requests can be consumed (do not sleep); false if the back end may wait for a kick
     */
    public boolean finalCheckForRequests() {
        if (unconsumedRequests() != 0) {
            return true;
        }
        INDEX.setOpaque(shared, REQ_EVENT_OFFSET, reqCons + 1);
        // The front end sees the new req_event /before/ we check req_prod again (Xen's xen_mb()).
        VarHandle.fullFence();
        return unconsumedRequests() != 0;
    }
}
