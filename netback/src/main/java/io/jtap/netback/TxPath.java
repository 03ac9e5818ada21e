package io.jtap.netback;

import static io.jtap.ring.netif.Netif.NETIF_RSP_ERROR;
import static io.jtap.ring.netif.Netif.NETIF_RSP_NULL;
import static io.jtap.ring.netif.Netif.NETIF_RSP_OKAY;
import static io.jtap.ring.netif.Netif.NETTXF_csum_blank;
import static io.jtap.ring.netif.Netif.NETTXF_data_validated;
import static io.jtap.ring.netif.Netif.NETTXF_extra_info;
import static io.jtap.ring.netif.Netif.NETTXF_more_data;
import static io.jtap.ring.netif.Netif.XEN_NETIF_EXTRA_FLAG_MORE;
import static io.jtap.ring.netif.Netif.XEN_NETIF_EXTRA_TYPE_GSO;
import static io.jtap.ring.netif.Netif.XEN_NETIF_EXTRA_TYPE_MAX;
import static io.jtap.ring.netif.Netif.XEN_NETIF_EXTRA_TYPE_MCAST_ADD;
import static io.jtap.ring.netif.Netif.XEN_NETIF_EXTRA_TYPE_MCAST_DEL;
import static io.jtap.ring.netif.Netif.XEN_NETIF_EXTRA_TYPE_NONE;
import static io.jtap.ring.netif.Netif.XEN_NETIF_GSO_TYPE_TCPV4;
import static io.jtap.ring.netif.Netif.XEN_NETIF_GSO_TYPE_TCPV6;

import io.jtap.ring.BackRing;
import io.jtap.ring.RingOverflowException;
import io.jtap.ring.netif.NetifExtraInfoDescriptor;
import io.jtap.ring.netif.NetifTxRequestDescriptor;
import io.jtap.ring.netif.NetifTxResponseDescriptor;
import io.jtap.tap.VirtioNetHeaderDescriptor;
import io.jtap.xen.GrantCopyBatch;
import io.jtap.xen.GrantStatus;
import io.jtap.xen.GrantTable;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Guest to host for one queue (Linux: {@code xenvif_tx_action}): consumes tx requests, validates each packet as Linux
 * does ({@code xenvif_count_requests}, {@code xenvif_get_extras}), copies the data of a batch of packets with one
 * grant copy into frames, writes each frame to the TAP behind a virtio-net header built from {@code csum_blank},
 * {@code data_validated} and the GSO extra, and answers every slot in order: {@code NETIF_RSP_OKAY} /
 * {@code NETIF_RSP_ERROR} with the request's id, {@code NETIF_RSP_NULL} for extra-info slots.
 *
 * <p>A malformed packet gets error responses; a ring the guest broke (bogus producer, missing slots, a slot crossing
 * its page, an unknown extra type, a zero GSO size, too many slots) throws {@link GuestFatalException}. No data grant
 * is held: data is copied, never mapped.
 *
 * <p>Thread confinement: the queue thread.
 */
final class TxPath implements AutoCloseable {
    /** Linux {@code XEN_NETBK_LEGACY_SLOTS_MAX}: a packet of more slots than this is dropped with an error. */
    static final int XEN_NETBK_LEGACY_SLOTS_MAX = 18;
    /** Linux {@code FATAL_SKB_SLOTS_DEFAULT}: a frontend using this many slots for one packet is malicious. */
    static final int FATAL_SKB_SLOTS = 20;
    /** Ethernet header: the first slot must hold at least this much (Linux: "Bad packet size"). */
    static final int ETH_HLEN = 14;
    static final int PAGE_SIZE = GrantTable.PAGE_SIZE;
    /** Packets per grant-copy batch (Linux copies up to its pending ring; 64 keeps the latency of a batch low). */
    static final int MAX_BATCH_PACKETS = 64;
    private static final int VNET = VirtioNetHeaderDescriptor.LENGTH;
    /** Room for one frame of the largest tx packet in the frame buffer. */
    private static final int MAX_PACKET_ROOM = VNET + 0xFFFF;
    private static final int FRAME_BUFFER_BYTES = 1 << 20;

    private final VifDevice vif;
    private final int queueIndex;
    private final BackRing ring;
    private final GrantTable grants;
    private final CreditLimiter limiter;
    private final ByteBuffer frames = ByteBuffer.allocateDirect(FRAME_BUFFER_BYTES);
    /** One frame of {@link #frames} at a time, handed to the TAP (reused: no allocation per frame). */
    private final ByteBuffer frameView = frames.duplicate();
    private final GrantCopyBatch batch = new GrantCopyBatch(MAX_BATCH_PACKETS * XEN_NETBK_LEGACY_SLOTS_MAX);
    private final ByteBuffer request = ByteBuffer.allocate(NetifTxRequestDescriptor.LENGTH);
    private final FrameHeaders headers = new FrameHeaders();
    // Responses of this round, in slot order.
    private final int[] respId;
    private final int[] respStatus;
    // Packets of this round that carry a frame.
    private final int[] pktFrameStart = new int[MAX_BATCH_PACKETS];
    private final int[] pktLength = new int[MAX_BATCH_PACKETS];
    private final int[] pktFirstSegment = new int[MAX_BATCH_PACKETS];
    private final int[] pktSegments = new int[MAX_BATCH_PACKETS];
    private final int[] pktFirstResp = new int[MAX_BATCH_PACKETS];
    private final int[] pktResps = new int[MAX_BATCH_PACKETS];
    private final int[] pktFlags = new int[MAX_BATCH_PACKETS];
    private final int[] pktGsoType = new int[MAX_BATCH_PACKETS];
    private final int[] pktGsoSize = new int[MAX_BATCH_PACKETS];
    // The current packet's fragments, until its first slot's length is known.
    private final int[] fragRef = new int[FATAL_SKB_SLOTS + 1];
    private final int[] fragOffset = new int[FATAL_SKB_SLOTS + 1];
    private final int[] fragSize = new int[FATAL_SKB_SLOTS + 1];
    private boolean rateLimited;

    TxPath(VifDevice vif, int queueIndex, BackRing ring, GrantTable grants, CreditLimiter limiter) {
        this.vif = vif;
        this.queueIndex = queueIndex;
        this.ring = ring;
        this.grants = grants;
        this.limiter = limiter;
        this.respId = new int[ring.size()];
        this.respStatus = new int[ring.size()];
    }

    /** Whether the last round stopped because of the rate limit; {@link #retryAtNs()} tells when to look again. */
    boolean rateLimited() {
        return rateLimited;
    }

    long retryAtNs() {
        return limiter.retryAtNs();
    }

    /** Xen {@code RING_FINAL_CHECK_FOR_REQUESTS} on the tx ring, before the queue sleeps. */
    boolean finalCheck() {
        return !rateLimited && ring.finalCheckForRequests();
    }

    /**
     * Handles the requests the guest has published, up to a batch.
     *
     * @param notify set to true when the guest must be notified of responses
     *     ({@code RING_PUSH_RESPONSES_AND_CHECK_NOTIFY})
     * @return the number of slots consumed (0 when idle)
     */
    int doWork(boolean[] notify) throws IOException, GuestFatalException {
        int avail;
        try {
            avail = ring.pollRequests();
        } catch (RingOverflowException e) {
            throw new GuestFatalException("tx ring producer index is bogus: " + e.getMessage());
        }
        rateLimited = false;
        if (avail == 0) {
            return 0;
        }
        batch.clear();
        int nresp = 0;
        int npkt = 0;
        int framePos = 0;
        long now = vif.options.clockNs().getAsLong();
        while (avail > 0 && npkt < MAX_BATCH_PACKETS && framePos + MAX_PACKET_ROOM <= frames.capacity()
                && batch.size() + XEN_NETBK_LEGACY_SLOTS_MAX <= batch.capacity()) {
            // Linux peeks the size for the credit check; the copy below is what is used afterwards.
            int peekSize = NetifTxRequestDescriptor.size(ring.buffer(), ring.slotOffset(ring.requestConsumer()));
            if (limiter.exceeded(peekSize, now)) {
                rateLimited = true;
                break;
            }
            ring.copyRequest(request, 0);
            avail--;
            int id = NetifTxRequestDescriptor.id(request, 0);
            int flags = NetifTxRequestDescriptor.flags(request, 0);
            int size = NetifTxRequestDescriptor.size(request, 0);
            int offset = NetifTxRequestDescriptor.offset(request, 0);
            int gref = NetifTxRequestDescriptor.gref(request, 0);
            limiter.consume(size);
            int firstResp = nresp;
            respId[nresp] = id;
            respStatus[nresp++] = NETIF_RSP_OKAY;

            int gsoType = 0;
            int gsoSize = 0;
            int mcastType = XEN_NETIF_EXTRA_TYPE_NONE;
            long mcastAddr = 0;
            if ((flags & NETTXF_extra_info) != 0) {
                int extraFlags;
                do {
                    if (avail == 0) {
                        throw new GuestFatalException("missing extra info: id=" + id);
                    }
                    ring.copyRequest(request, 0);
                    avail--;
                    respId[nresp] = 0;
                    respStatus[nresp++] = NETIF_RSP_NULL;
                    int type = NetifExtraInfoDescriptor.type(request, 0);
                    extraFlags = NetifExtraInfoDescriptor.flags(request, 0);
                    if (type == XEN_NETIF_EXTRA_TYPE_NONE || type >= XEN_NETIF_EXTRA_TYPE_MAX) {
                        throw new GuestFatalException("invalid extra type: id=" + id + ", type=" + type);
                    }
                    if (type == XEN_NETIF_EXTRA_TYPE_GSO) {
                        gsoType = NetifExtraInfoDescriptor.gsoType(request, 0);
                        gsoSize = NetifExtraInfoDescriptor.gsoSize(request, 0);
                        if (gsoSize == 0) {
                            throw new GuestFatalException("GSO size must not be zero: id=" + id);
                        }
                        if (gsoType != XEN_NETIF_GSO_TYPE_TCPV4 && gsoType != XEN_NETIF_GSO_TYPE_TCPV6) {
                            throw new GuestFatalException("bad GSO type: id=" + id + ", gso_type=" + gsoType);
                        }
                    } else if (type == XEN_NETIF_EXTRA_TYPE_MCAST_ADD || type == XEN_NETIF_EXTRA_TYPE_MCAST_DEL) {
                        mcastType = type;
                        mcastAddr = NetifExtraInfoDescriptor.mcastAddr(request, 0);
                    }
                    // XEN_NETIF_EXTRA_TYPE_HASH: a hint for the receive side's hash; jtap does not use it.
                } while ((extraFlags & XEN_NETIF_EXTRA_FLAG_MORE) != 0);
            }
            if (mcastType != XEN_NETIF_EXTRA_TYPE_NONE) {
                // Linux: a multicast-control request carries no packet; its status tells whether it took effect.
                boolean ok = true;
                if (mcastType == XEN_NETIF_EXTRA_TYPE_MCAST_ADD) {
                    ok = vif.addMulticast(mcastAddr);
                } else {
                    vif.removeMulticast(mcastAddr);
                }
                respStatus[firstResp] = ok ? NETIF_RSP_OKAY : NETIF_RSP_ERROR;
                continue;
            }

            // The fragments (Linux: xenvif_count_requests). The first slot's data is size minus the fragments.
            int firstSize = size;
            boolean dropErr = false;
            String dropWhy = null;
            int frags = 0;
            int segStart = batch.size();
            int frameStart = framePos;
            int fill = framePos + VNET;
            int lastFlags = flags;
            // The first slot's data goes in front of the fragments: its length is known only after them.
            while ((lastFlags & NETTXF_more_data) != 0) {
                if (avail == 0) {
                    throw new GuestFatalException("packet asks for more slots than the guest published: id=" + id
                            + ", slots=" + (frags + 1));
                }
                if (!dropErr && frags >= XEN_NETBK_LEGACY_SLOTS_MAX) {
                    dropErr = true;
                    dropWhy = "too many slots";
                }
                ring.copyRequest(request, 0);
                avail--;
                if (frags >= FATAL_SKB_SLOTS) {
                    throw new GuestFatalException("malicious frontend using too many slots: id=" + id + ", slots="
                            + (frags + 1));
                }
                int fsize = NetifTxRequestDescriptor.size(request, 0);
                int foffset = NetifTxRequestDescriptor.offset(request, 0);
                if (!dropErr && fsize > firstSize) {
                    dropErr = true;
                    dropWhy = "fragment larger than what is left of the packet size";
                }
                firstSize -= fsize;
                respId[nresp] = NetifTxRequestDescriptor.id(request, 0);
                respStatus[nresp++] = NETIF_RSP_OKAY;
                if (foffset + fsize > PAGE_SIZE) {
                    throw new GuestFatalException("fragment crosses its page: id=" + id + ", offset=" + foffset
                            + ", size=" + fsize);
                }
                if (!dropErr) {
                    fragRef[frags] = NetifTxRequestDescriptor.gref(request, 0);
                    fragOffset[frags] = foffset;
                    fragSize[frags] = fsize;
                }
                lastFlags = NetifTxRequestDescriptor.flags(request, 0);
                frags++;
            }
            if (!dropErr && firstSize < ETH_HLEN) {
                dropErr = true;
                dropWhy = "first slot shorter than an Ethernet header";
            }
            if (dropErr) {
                vif.warnGuest("tx packet dropped with an error: " + dropWhy + ", id=" + id + ", size=" + size
                        + ", slots=" + (frags + 1));
                for (int r = firstResp; r < nresp; r++) {
                    if (respStatus[r] != NETIF_RSP_NULL) {
                        respStatus[r] = NETIF_RSP_ERROR;
                    }
                }
                vif.stats.txErrors.increment();
                continue;
            }
            if (offset + firstSize > PAGE_SIZE) {
                throw new GuestFatalException("first slot crosses its page: id=" + id + ", offset=" + offset
                        + ", size=" + firstSize);
            }
            batch.copyFromForeign(vif.domid, gref, offset, frames, fill, firstSize);
            fill += firstSize;
            for (int f = 0; f < frags; f++) {
                if (fragSize[f] > 0) {
                    batch.copyFromForeign(vif.domid, fragRef[f], fragOffset[f], frames, fill, fragSize[f]);
                    fill += fragSize[f];
                }
            }
            pktFrameStart[npkt] = frameStart;
            pktLength[npkt] = size;
            pktFirstSegment[npkt] = segStart;
            pktSegments[npkt] = batch.size() - segStart;
            pktFirstResp[npkt] = firstResp;
            pktResps[npkt] = nresp - firstResp;
            pktFlags[npkt] = flags;
            pktGsoType[npkt] = gsoType;
            pktGsoSize[npkt] = gsoSize;
            npkt++;
            framePos = (fill + 63) & ~63;
        }
        if (batch.size() > 0) {
            grants.copy(batch);
        }
        for (int p = 0; p < npkt; p++) {
            boolean copied = true;
            for (int s = pktFirstSegment[p]; s < pktFirstSegment[p] + pktSegments[p]; s++) {
                if (batch.status(s) != GrantStatus.GNTST_okay) {
                    copied = false;
                    vif.warnGuest("tx grant copy failed: status=" + GrantStatus.name(batch.status(s)) + ", ref="
                            + Integer.toUnsignedString(batch.ref(s)));
                    break;
                }
            }
            if (!copied) {
                for (int r = pktFirstResp[p]; r < pktFirstResp[p] + pktResps[p]; r++) {
                    if (respStatus[r] != NETIF_RSP_NULL) {
                        respStatus[r] = NETIF_RSP_ERROR;
                    }
                }
                vif.stats.txErrors.increment();
                continue;
            }
            deliver(pktFrameStart[p], pktLength[p], pktFlags[p], pktGsoType[p], pktGsoSize[p]);
        }
        batch.clear();
        for (int r = 0; r < nresp; r++) {
            NetifTxResponseDescriptor.put(ring.buffer(), ring.nextResponseSlot(), respId[r], respStatus[r]);
        }
        if (nresp > 0 && ring.pushResponsesAndCheckNotify()) {
            notify[0] = true;
        }
        return nresp;
    }

    /** Builds the virtio-net header in front of a copied packet and writes the frame to the TAP. */
    private void deliver(int start, int length, int flags, int xenGsoType, int gsoSize) {
        int eth = start + VNET;
        boolean gso = xenGsoType != 0;
        boolean partial = (flags & NETTXF_csum_blank) != 0;
        int vflags = 0;
        int vgso = VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_GSO_NONE;
        int hdrLen = 0;
        int csumStart = 0;
        int csumOffset = 0;
        if (partial || gso) {
            // Linux skb_checksum_setup: find the L4 header; a GSO packet without csum_blank gets a fresh
            // pseudo-header sum (some frontends forget the flag).
            if (!headers.parse(frames, eth, length)) {
                vif.stats.txDropped.increment();
                vif.warnGuest("tx packet with checksum offload or GSO has no TCP/UDP header netback understands: "
                        + "length=" + length);
                return;
            }
            if (gso && !partial) {
                headers.putPseudoHeaderSum(frames, eth, length);
            }
            vflags = VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_F_NEEDS_CSUM;
            csumStart = headers.l4Offset;
            csumOffset = headers.checksumFieldOffset();
            if (gso) {
                boolean v4 = xenGsoType == XEN_NETIF_GSO_TYPE_TCPV4;
                if (headers.l4Protocol != FrameHeaders.IPPROTO_TCP
                        || headers.etherType != (v4 ? FrameHeaders.ETH_P_IP : FrameHeaders.ETH_P_IPV6)) {
                    vif.stats.txDropped.increment();
                    vif.warnGuest("tx GSO type does not match the packet: gso_type=" + xenGsoType);
                    return;
                }
                vgso = v4 ? VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_GSO_TCPV4
                        : VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_GSO_TCPV6;
                hdrLen = headers.l4Offset + headers.l4HeaderLength;
            }
        } else if ((flags & NETTXF_data_validated) != 0) {
            vflags = VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_F_DATA_VALID;
        }
        VirtioNetHeaderDescriptor.put(frames, start, vflags, vgso, hdrLen, gso ? gsoSize : 0, csumStart, csumOffset);
        frameView.limit(start + VNET + length).position(start);
        if (vif.writeToTap(queueIndex, frameView)) {
            vif.stats.txPackets.increment();
            vif.stats.txBytes.add(length);
        } else {
            vif.stats.txDropped.increment();
        }
    }

    @Override
    public void close() {
        batch.close();
    }
}
