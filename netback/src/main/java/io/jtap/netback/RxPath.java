package io.jtap.netback;

import static io.jtap.ring.netif.Netif.NETIF_RSP_ERROR;
import static io.jtap.ring.netif.Netif.NETRXF_csum_blank;
import static io.jtap.ring.netif.Netif.NETRXF_data_validated;
import static io.jtap.ring.netif.Netif.NETRXF_extra_info;
import static io.jtap.ring.netif.Netif.NETRXF_more_data;
import static io.jtap.ring.netif.Netif.XEN_NETIF_GSO_TYPE_NONE;
import static io.jtap.ring.netif.Netif.XEN_NETIF_GSO_TYPE_TCPV4;
import static io.jtap.ring.netif.Netif.XEN_NETIF_GSO_TYPE_TCPV6;

import io.jtap.ring.BackRing;
import io.jtap.ring.RingOverflowException;
import io.jtap.ring.SharedRingDescriptor;
import io.jtap.ring.netif.NetifExtraInfoDescriptor;
import io.jtap.ring.netif.NetifRxRequestDescriptor;
import io.jtap.ring.netif.NetifRxResponseDescriptor;
import io.jtap.tap.TapDevice;
import io.jtap.tap.VirtioNetHeaderDescriptor;
import io.jtap.xen.GrantCopyBatch;
import io.jtap.xen.GrantStatus;
import io.jtap.xen.GrantTable;
import java.io.IOException;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Host to guest for one queue (Linux: {@code xenvif_rx_action}): frames from the TAP, or handed over by the queue
 * that reads the TAP, are copied with one batched grant copy into the rx buffers the guest posted, a page per slot,
 * spanning several slots only for a frontend with {@code feature-sg}; a GSO frame carries a GSO extra in the slot
 * after its first (only for a frontend that asked for that GSO type); checksum state becomes
 * {@code NETRXF_csum_blank | NETRXF_data_validated} or {@code NETRXF_data_validated}, and a partial checksum the
 * frontend cannot take is completed here. Every response is written in the slot of the request it answers, with that
 * request's id.
 *
 * <p>Without posted buffers the TAP is not read: frames wait in the TAP's own queue, which fills and drops, as when
 * Linux stops the vif's queue. Frames already read — the one that found no buffers, and frames the TAP-reading queue
 * hands to the other queues — wait in a bounded backlog ({@link NetbackOptions#rxQueueBytes()}); a frame that waited
 * there longer than {@link NetbackOptions#rxDrainTimeoutNs()} is dropped. With a multi-queue TAP each queue reads its
 * own TAP queue ({@link VifDevice#perQueueTap()}); with a single-queue TAP queue 0 reads it for every queue, and while
 * queue 0 waits for buffers the other queues get no new frames either.
 *
 * <p>Thread confinement: the queue thread, except {@link #offerHeld}, which any queue thread may call.
 */
final class RxPath implements AutoCloseable {
    private static final int VNET = VirtioNetHeaderDescriptor.LENGTH;
    private static final int PAGE_SIZE = GrantTable.PAGE_SIZE;
    private static final int FRAME_ROOM = VNET + TapDevice.MAX_FRAME_BYTES;
    private static final int FRAME_BUFFER_BYTES = (1 << 20) + FRAME_ROOM;
    private static final int PLACED = 0;
    private static final int NO_SLOTS = 1;
    private static final int DROPPED = 2;

    private record Held(byte[] frame, long enqueuedNs) {
    }

    private final VifDevice vif;
    private final int queueIndex;
    private final BackRing ring;
    private final GrantTable grants;
    private final ByteBuffer frames = ByteBuffer.allocateDirect(FRAME_BUFFER_BYTES);
    private final GrantCopyBatch batch;
    private final ByteBuffer request = ByteBuffer.allocate(NetifRxRequestDescriptor.LENGTH);
    private final FrameHeaders headers = new FrameHeaders();
    private final ConcurrentLinkedQueue<Held> held = new ConcurrentLinkedQueue<>();
    private final AtomicLong heldBytes = new AtomicLong();
    // Responses of this round, in slot order.
    private final int[] respId;
    private final int[] respFlags;
    private final int[] respLength;
    private final int[] respSegment;
    private final int[] respGsoType;
    private final int[] respGsoSize;
    private int nresp;
    private int avail;
    private boolean waitingForSlots;
    // Queues this round handed frames to (indexed by queue; grown on first use), woken after the TAP loop.
    private boolean[] handedOver = new boolean[0];

    RxPath(VifDevice vif, int queueIndex, BackRing ring, GrantTable grants) {
        this.vif = vif;
        this.queueIndex = queueIndex;
        this.ring = ring;
        this.grants = grants;
        int n = ring.size();
        this.batch = new GrantCopyBatch(n);
        this.respId = new int[n];
        this.respFlags = new int[n];
        this.respLength = new int[n];
        this.respSegment = new int[n];
        this.respGsoType = new int[n];
        this.respGsoSize = new int[n];
    }

    /** Queues a frame (virtio-net header + Ethernet frame) for this queue; false when the backlog is full. */
    boolean offerHeld(byte[] frame) {
        if (heldBytes.get() >= vif.options.rxQueueBytes()) {
            return false;
        }
        heldBytes.addAndGet(frame.length);
        held.add(new Held(frame, vif.options.clockNs().getAsLong()));
        return true;
    }

    /**
     * Whether this queue reads a TAP fd: its own TAP queue when every queue has one ({@link VifDevice#perQueueTap()}),
     * else queue 0 reads the TAP for every queue.
     */
    private boolean tapReader() {
        return queueIndex == 0 || vif.perQueueTap();
    }

    /** Whether this queue should poll the TAP fd: it reads the TAP and its backlog has room. */
    boolean wantsTap() {
        return tapReader() && !waitingForSlots && heldBytes.get() < vif.options.rxQueueBytes();
    }

    /** Whether frames wait while buffers are posted: the queue must not sleep. */
    boolean hasWork() {
        return !held.isEmpty() && !waitingForSlots;
    }

    /**
     * Places waiting frames and, for the TAP-reading queue, frames from the TAP.
     *
     * @param notify set to true when the guest must be notified of responses
     * @return frames handled (0 when idle)
     */
    int doWork(boolean[] notify) throws IOException, GuestFatalException {
        try {
            avail = ring.pollRequests();
        } catch (RingOverflowException e) {
            throw new GuestFatalException("rx ring producer index is bogus: " + e.getMessage());
        }
        dropExpired();
        waitingForSlots = false;
        batch.clear();
        nresp = 0;
        int work = 0;
        int pos = 0;
        for (Held h = held.peek(); h != null && pos + FRAME_ROOM <= frames.capacity(); h = held.peek()) {
            frames.put(pos, h.frame);
            int r = place(pos, h.frame.length);
            if (r == NO_SLOTS) {
                waitingForSlots = true;
                break;
            }
            held.poll();
            heldBytes.addAndGet(-h.frame.length);
            work++;
            if (r == PLACED) {
                pos = align(pos + h.frame.length);
            }
        }
        if (tapReader()) {
            TapDevice tap = vif.tapFor(queueIndex);
            // With a TAP queue per queue the kernel has already spread the flows: nothing is handed over.
            int queues = vif.perQueueTap() ? 1 : vif.queueCount();
            if (handedOver.length < queues) {
                handedOver = new boolean[queues];
            }
            // While the guest has no buffers for the next frame, frames stay in the TAP's own queue (which then
            // fills and drops, as when Linux stops the vif's queue) instead of being copied aside.
            while (!waitingForSlots && pos + FRAME_ROOM <= frames.capacity()
                    && heldBytes.get() < vif.options.rxQueueBytes()) {
                frames.limit(frames.capacity()).position(pos);
                int length = tap.read(frames);
                if (length == 0) {
                    break;
                }
                work++;
                int target = queueIndex;
                if (queues > 1) {
                    headers.parse(frames, pos + VNET, length - VNET);
                    target = Integer.remainderUnsigned(headers.flowHash(frames, pos + VNET, length - VNET), queues);
                }
                if (target != queueIndex) {
                    if (vif.dispatchRx(target, copyOut(pos, length))) {
                        handedOver[target] = true;
                    } else {
                        vif.stats.rxDropped.increment();
                    }
                    continue;
                }
                int r = held.isEmpty() && !waitingForSlots ? place(pos, length) : NO_SLOTS;
                if (r == NO_SLOTS) {
                    waitingForSlots = true;
                    offerHeld(copyOut(pos, length));
                } else if (r == PLACED) {
                    pos = align(pos + length);
                }
            }
            wakeHandedOver();
        }
        flush(notify);
        return work;
    }

    /**
     * Wakes each queue this round handed frames to, once per round: a queue thread asleep in {@code poll} sees no
     * event for its backlog (it does not poll the TAP), so without this it would sleep until its idle timeout.
     */
    private void wakeHandedOver() {
        for (int q = 0; q < handedOver.length; q++) {
            if (handedOver[q]) {
                handedOver[q] = false;
                vif.wakeQueue(q);
            }
        }
    }

    private static int align(int pos) {
        return (pos + 63) & ~63;
    }

    private byte[] copyOut(int pos, int length) {
        byte[] copy = new byte[length];
        frames.get(pos, copy);
        return copy;
    }

    private void dropExpired() {
        long now = vif.options.clockNs().getAsLong();
        for (Held h = held.peek(); h != null && now - h.enqueuedNs >= vif.options.rxDrainTimeoutNs(); h = held.peek()) {
            held.poll();
            heldBytes.addAndGet(-h.frame.length);
            vif.stats.rxDropped.increment();
        }
    }

    /** Reserves rx requests for the frame at {@code pos} and adds its copy segments and responses to the round. */
    private int place(int pos, int length) {
        int eth = pos + VNET;
        int ethLength = length - VNET;
        FrontendConfig fe = vif.frontend;
        int vflags = VirtioNetHeaderDescriptor.flags(frames, pos);
        int vgso = VirtioNetHeaderDescriptor.gsoType(frames, pos) & ~VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_GSO_ECN;
        if (vif.multicastControl() && (frames.get(eth) & 1) != 0 && !isBroadcast(eth)
                && !vif.multicastAllowed(mac(eth))) {
            vif.stats.rxDropped.increment();
            return DROPPED;
        }
        int gsoType = XEN_NETIF_GSO_TYPE_NONE;
        if (vgso == VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_GSO_TCPV4 && fe.sg() && fe.gsoTcpv4()) {
            gsoType = XEN_NETIF_GSO_TYPE_TCPV4;
        } else if (vgso == VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_GSO_TCPV6 && fe.sg() && fe.gsoTcpv6()) {
            gsoType = XEN_NETIF_GSO_TYPE_TCPV6;
        } else if (vgso != VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_GSO_NONE) {
            vif.stats.rxDropped.increment(); // the TAP's offloads do not allow this; never the guest's fault
            return DROPPED;
        }
        int dataSlots = Math.max(1, (ethLength + PAGE_SIZE - 1) / PAGE_SIZE);
        int needed = dataSlots + (gsoType != XEN_NETIF_GSO_TYPE_NONE ? 1 : 0);
        if ((dataSlots > 1 && !fe.sg()) || needed > ring.size()) {
            vif.stats.rxDropped.increment();
            return DROPPED;
        }
        if (!slotsAvailable(needed)) {
            return NO_SLOTS;
        }
        int rxFlags = 0;
        if ((vflags & VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_F_NEEDS_CSUM) != 0) {
            headers.parse(frames, eth, ethLength);
            boolean canTakePartial = gsoType != XEN_NETIF_GSO_TYPE_NONE
                    || (headers.etherType == FrameHeaders.ETH_P_IPV6 ? fe.csumIpv6() : fe.csumIpv4());
            if (canTakePartial) {
                rxFlags = NETRXF_csum_blank | NETRXF_data_validated;
            } else if (!FrameHeaders.completeChecksum(frames, eth, ethLength,
                    VirtioNetHeaderDescriptor.csumStart(frames, pos),
                    VirtioNetHeaderDescriptor.csumOffset(frames, pos))) {
                vif.stats.rxDropped.increment();
                return DROPPED;
            }
        } else if ((vflags & VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_F_DATA_VALID) != 0) {
            rxFlags = NETRXF_data_validated;
        }
        for (int s = 0; s < dataSlots; s++) {
            ring.copyRequest(request, 0);
            avail--;
            int chunk = Math.min(PAGE_SIZE, ethLength - s * PAGE_SIZE);
            int flags = s < dataSlots - 1 ? NETRXF_more_data : 0;
            if (s == 0) {
                flags |= rxFlags | (gsoType != XEN_NETIF_GSO_TYPE_NONE ? NETRXF_extra_info : 0);
            }
            respId[nresp] = NetifRxRequestDescriptor.id(request, 0);
            respFlags[nresp] = flags;
            respLength[nresp] = chunk;
            respGsoType[nresp] = XEN_NETIF_GSO_TYPE_NONE;
            respSegment[nresp] = batch.copyToForeign(frames, eth + s * PAGE_SIZE, vif.domid,
                    NetifRxRequestDescriptor.gref(request, 0), 0, chunk);
            nresp++;
            if (s == 0 && gsoType != XEN_NETIF_GSO_TYPE_NONE) {
                // Linux xenvif_rx_extra_slot: extras go after the first data slot, consuming a request.
                ring.copyRequest(request, 0);
                avail--;
                respId[nresp] = NetifRxRequestDescriptor.id(request, 0);
                respGsoType[nresp] = gsoType;
                respGsoSize[nresp] = VirtioNetHeaderDescriptor.gsoSize(frames, pos);
                respSegment[nresp] = -1;
                nresp++;
            }
        }
        vif.stats.rxPackets.increment();
        vif.stats.rxBytes.add(ethLength);
        return PLACED;
    }

    /**
     * Whether {@code needed} rx requests are posted; if not, asks the guest to notify when it posts the next one
     * (Linux: {@code xenvif_rx_ring_slots_available}, with feature-rx-notify).
     */
    private boolean slotsAvailable(int needed) {
        if (avail >= needed) {
            return true;
        }
        ByteBuffer shared = ring.buffer();
        shared.putInt(SharedRingDescriptor.REQ_EVENT_OFFSET, ring.requestConsumer() + avail + 1);
        // The guest sees the new req_event /before/ we read req_prod again (Xen's xen_mb()).
        VarHandle.fullFence();
        avail = ring.unconsumedRequests();
        return avail >= needed;
    }

    private void flush(boolean[] notify) throws IOException {
        if (nresp == 0) {
            return;
        }
        if (batch.size() > 0) {
            grants.copy(batch);
        }
        ByteBuffer shared = ring.buffer();
        for (int r = 0; r < nresp; r++) {
            int slot = ring.nextResponseSlot();
            if (respSegment[r] < 0) {
                NetifExtraInfoDescriptor.putGso(shared, slot, 0, respGsoSize[r], respGsoType[r], 0);
                continue;
            }
            int status = respLength[r];
            short copyStatus = batch.status(respSegment[r]);
            if (copyStatus != GrantStatus.GNTST_okay) {
                status = NETIF_RSP_ERROR;
                vif.warnGuest("rx grant copy failed: status=" + GrantStatus.name(copyStatus) + ", id=" + respId[r]);
            }
            NetifRxResponseDescriptor.put(shared, slot, respId[r], 0, respFlags[r], status);
        }
        batch.clear();
        nresp = 0;
        if (ring.pushResponsesAndCheckNotify()) {
            notify[0] = true;
        }
    }

    private boolean isBroadcast(int eth) {
        for (int i = 0; i < 6; i++) {
            if (frames.get(eth + i) != (byte) 0xff) {
                return false;
            }
        }
        return true;
    }

    private long mac(int eth) {
        long mac = 0;
        for (int i = 0; i < 6; i++) {
            mac = mac << 8 | (frames.get(eth + i) & 0xff);
        }
        return mac;
    }

    /** Frames waiting for rx buffers (for tests and stats). */
    int heldFrames() {
        return held.size();
    }

    @Override
    public void close() {
        batch.close();
        held.clear();
        heldBytes.set(0);
    }
}
