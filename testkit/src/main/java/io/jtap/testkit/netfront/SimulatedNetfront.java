package io.jtap.testkit.netfront;

import io.jtap.ring.FrontRing;
import io.jtap.ring.SharedRingDescriptor;
import io.jtap.ring.netif.Netif;
import io.jtap.ring.netif.NetifExtraInfoDescriptor;
import io.jtap.ring.netif.NetifRxRequestDescriptor;
import io.jtap.ring.netif.NetifRxResponseDescriptor;
import io.jtap.ring.netif.NetifTxRequestDescriptor;
import io.jtap.ring.netif.NetifTxResponseDescriptor;
import io.jtap.xen.EventChannels;
import io.jtap.xen.XenStore;
import io.jtap.xen.XenStorePermission;
import io.jtap.xen.XenStorePermission.Access;
import io.jtap.xen.sim.GuestPages;
import io.jtap.xen.sim.SimulatedDomain;
import io.jtap.xen.sim.SimulatedXen;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * Linux's xen-netfront, played over {@link SimulatedXen} against a backend under test — with its toolstack (both
 * xenstore directories, with their permissions, in one transaction) and its hotplug script
 * ({@code hotplug-status = connected}).
 *
 * <p>It negotiates as netfront does ({@link NetfrontOptions} switches every feature), refuses a backend without
 * {@code feature-rx-copy}, keeps its rx ring full of granted pages, sends tx packets cut into slots with extra info,
 * and receives rx packets. It checks the backend as netfront's hardening does and records each breach as a
 * violation: a tx response with an id that is not in flight, an rx response whose id is not that of the request in
 * its slot, a grant still mapped when netfront ends access to it ("grant held too long"), a response producer beyond
 * the ring. {@link #assertNoViolations()} turns them into a test failure.
 *
 * <p>Not thread-safe: one test thread drives it.
 */
public final class SimulatedNetfront implements AutoCloseable {
    private static final int PAGE = 4096;
    private static final int TX_SIZE = Netif.NET_TX_RING_SIZE;
    private static final int RX_SIZE = Netif.NET_RX_RING_SIZE;

    private final SimulatedXen xen;
    private final SimulatedDomain guest;
    private final int devid;
    private final NetfrontOptions options;
    private final XenStore guestStore;
    private final XenStore toolstack;
    private final EventChannels channels;
    private final String frontendPath;
    private final String backendPath;
    private final List<String> violations = Collections.synchronizedList(new ArrayList<>());
    private final List<Queue> queues = new ArrayList<>();
    private boolean connected;

    /** One tx/rx ring pair with its pages and ports. */
    private final class Queue {
        final FrontRing tx;
        final FrontRing rx;
        final int txRingRef;
        final int rxRingRef;
        final int txPort;
        final int rxPort;
        final GuestPages txPages;
        final GuestPages rxPages;
        final Deque<Integer> freeTxIds = new ArrayDeque<>();
        /** id → grant ref of the slot in flight (-1 for raw slots without a grant of ours). */
        final Map<Integer, Deque<Integer>> inflight = new HashMap<>();
        /** Grants made by {@link #grantTxData} for raw slots; ended at disconnect. */
        final List<Integer> rawGrants = new ArrayList<>();
        /** Grant ref and id of each posted rx request, by ring index & mask. */
        final int[] rxRef = new int[RX_SIZE];
        final int[] rxId = new int[RX_SIZE];
        final boolean[] rxPosted = new boolean[RX_SIZE];
        final ByteArrayOutputStream partial = new ByteArrayOutputStream();
        int partialFlags;
        int partialGsoType;
        int partialGsoSize;
        int partialSlots;
        int partialStatus;
        boolean expectExtra;
        boolean moreData;
        boolean inPacket;

        RxPacket finishPacket() {
            inPacket = false;
            return new RxPacket(partial.toByteArray(), partialFlags, partialGsoType, partialGsoSize, partialSlots,
                    partialStatus);
        }

        Queue(int index) throws IOException {
            GuestPages rings = guest.allocatePages(2);
            tx = FrontRing.init(rings.page(0), 0, Netif.TX_ENTRY_LENGTH);
            rx = FrontRing.init(rings.page(1), 0, Netif.RX_ENTRY_LENGTH);
            txRingRef = guest.grantAccess(SimulatedXen.DOM0, rings.frame(0), false);
            rxRingRef = guest.grantAccess(SimulatedXen.DOM0, rings.frame(1), false);
            txPort = channels.bindUnboundPort(SimulatedXen.DOM0);
            rxPort = options.splitChannels() && backendFlag("feature-split-event-channels")
                    ? channels.bindUnboundPort(SimulatedXen.DOM0) : txPort;
            txPages = guest.allocatePages(TX_SIZE);
            rxPages = guest.allocatePages(RX_SIZE);
            for (int id = 0; id < TX_SIZE; id++) {
                freeTxIds.add(id);
            }
        }

        boolean split() {
            return rxPort != txPort;
        }
    }

    private SimulatedNetfront(SimulatedXen xen, SimulatedDomain guest, int devid, NetfrontOptions options) {
        this.xen = xen;
        this.guest = guest;
        this.devid = devid;
        this.options = options;
        this.guestStore = xen.xenStore().connect(guest.domid());
        this.toolstack = xen.xenStore().connect(SimulatedXen.DOM0);
        EventChannels ch;
        try {
            ch = guest.openEventChannels();
        } catch (IOException e) {
            closeStores();
            throw new IllegalStateException("cannot open the guest's event channels", e);
        }
        this.channels = ch;
        this.frontendPath = "/local/domain/" + guest.domid() + "/device/vif/" + devid;
        this.backendPath = "/local/domain/" + SimulatedXen.DOM0 + "/backend/vif/" + guest.domid() + "/" + devid;
    }

    /**
     * The toolstack's part of {@code xl network-attach}: the backend directory (owned by dom0, readable by the guest)
     * and the frontend directory (owned by the guest, readable by dom0), every node in one transaction.
     */
    public static SimulatedNetfront create(SimulatedXen xen, SimulatedDomain guest, int devid,
            NetfrontOptions options) throws IOException {
        SimulatedNetfront f = new SimulatedNetfront(xen, guest, devid, options);
        try {
            f.writeDevice();
        } catch (IOException | RuntimeException e) {
            f.closeHandles();
            throw e;
        }
        return f;
    }

    /**
     * {@code xl network-detach} and {@code xl network-attach} of this devid in one transaction, as a toolstack may
     * make them: both directories removed and written afresh, with {@code options} (another {@code mac},
     * {@code vifname}, {@code rate}, ...). This frontend is left as it is (connected or not; {@link #close()} still
     * ends its grants); the returned one stands for the guest's netfront on the new directories, not connected.
     */
    public SimulatedNetfront recreate(NetfrontOptions options) throws IOException {
        SimulatedNetfront f = new SimulatedNetfront(xen, guest, devid, options);
        try {
            toolstack.transaction(tx -> {
                tx.rm(backendPath);
                tx.rm(frontendPath);
                f.writeDevice(tx);
                return null;
            });
        } catch (IOException | RuntimeException e) {
            f.closeHandles();
            throw e;
        }
        return f;
    }

    private void writeDevice() throws IOException {
        toolstack.transaction(tx -> {
            writeDevice(tx);
            return null;
        });
    }

    private void writeDevice(XenStore.Transaction tx) throws IOException {
        int domid = guest.domid();
        List<XenStorePermission> backendPerms = List.of(XenStorePermission.of(SimulatedXen.DOM0, Access.NONE),
                XenStorePermission.of(domid, Access.READ));
        List<XenStorePermission> frontendPerms = List.of(XenStorePermission.of(domid, Access.NONE),
                XenStorePermission.of(SimulatedXen.DOM0, Access.READ));
        tx.mkdir(backendPath);
        tx.setPermissions(backendPath, backendPerms);
        tx.write(backendPath + "/frontend", frontendPath);
        tx.write(backendPath + "/frontend-id", Integer.toString(domid));
        tx.write(backendPath + "/online", "1");
        tx.write(backendPath + "/state", "1");
        tx.write(backendPath + "/handle", Integer.toString(devid));
        tx.write(backendPath + "/script", "/etc/xen/scripts/vif-bridge");
        if (options.mac() != null) {
            tx.write(backendPath + "/mac", options.mac());
        }
        if (options.rate() != null) {
            tx.write(backendPath + "/rate", options.rate());
        }
        if (options.vifname() != null) {
            tx.write(backendPath + "/vifname", options.vifname());
        }
        if (options.mtu() != null) {
            tx.write(backendPath + "/mtu", options.mtu());
        }
        tx.mkdir(frontendPath);
        tx.setPermissions(frontendPath, frontendPerms);
        tx.write(frontendPath + "/backend", backendPath);
        tx.write(frontendPath + "/backend-id", Integer.toString(SimulatedXen.DOM0));
        tx.write(frontendPath + "/state", "1");
        tx.write(frontendPath + "/handle", Integer.toString(devid));
        if (options.mac() != null) {
            tx.write(frontendPath + "/mac", options.mac());
        }
    }

    public String frontendPath() {
        return frontendPath;
    }

    public String backendPath() {
        return backendPath;
    }

    public SimulatedDomain guest() {
        return guest;
    }

    /** Queues negotiated by the last {@link #connect}. */
    public int queueCount() {
        return queues.size();
    }

    public boolean splitChannels() {
        return !queues.isEmpty() && queues.get(0).split();
    }

    /** The backend's {@code state}, as a number (XenbusState), or -1 when missing. */
    public int backendState() throws IOException {
        return guestStore.readString(backendPath + "/state").map(s -> Integer.parseInt(s.trim())).orElse(-1);
    }

    /** Waits (polling xenstore) until the backend's state is one of {@code states}. */
    public void awaitBackendState(Duration timeout, int... states) throws IOException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            int s = backendState();
            for (int want : states) {
                if (s == want) {
                    return;
                }
            }
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("backend state stayed " + s + ", expected one of "
                        + java.util.Arrays.toString(states) + " within " + timeout + ": " + backendPath);
            }
            sleepMs(1);
        }
    }

    /** The hotplug script's part: {@code hotplug-status = connected} in the backend directory. */
    public void playHotplug() throws IOException {
        toolstack.write(backendPath + "/hotplug-status", "connected");
    }

    /**
     * netfront's {@code talk_to_netback}: waits for InitWait, checks {@code feature-rx-copy}, sets up the rings and
     * channels, writes every key in one transaction, switches to Connected, fills the rx ring, and (when
     * {@code waitConnected}) waits for the backend's Connected.
     */
    public void connect(Duration timeout, boolean waitConnected) throws IOException {
        connect(timeout, waitConnected, Map.of());
    }

    /**
     * {@link #connect(Duration, boolean)} without waiting for Connected, with {@code overrides} (frontend keys and
     * values) written last in the same transaction: how a test plants a bad value.
     */
    public void connectWithOverrides(Duration timeout, Map<String, String> overrides) throws IOException {
        connect(timeout, false, overrides);
    }

    private void connect(Duration timeout, boolean waitConnected, Map<String, String> overrides) throws IOException {
        awaitBackendState(timeout, 2);
        if (!backendFlag("feature-rx-copy")) {
            throw new IllegalStateException("backend does not support copying receive path (no feature-rx-copy): "
                    + backendPath);
        }
        int maxQueues = guestStore.readString(backendPath + "/multi-queue-max-queues").map(Integer::parseInt)
                .orElse(1);
        int n = Math.max(1, Math.min(options.queues(), maxQueues));
        queues.clear();
        for (int i = 0; i < n; i++) {
            queues.add(new Queue(i));
        }
        guestStore.transaction(tx -> {
            for (int i = 0; i < n; i++) {
                Queue q = queues.get(i);
                String dir = n == 1 ? frontendPath : frontendPath + "/queue-" + i;
                tx.write(dir + "/tx-ring-ref", Integer.toString(q.txRingRef));
                tx.write(dir + "/rx-ring-ref", Integer.toString(q.rxRingRef));
                if (q.split()) {
                    tx.write(dir + "/event-channel-tx", Integer.toString(q.txPort));
                    tx.write(dir + "/event-channel-rx", Integer.toString(q.rxPort));
                } else {
                    tx.write(dir + "/event-channel", Integer.toString(q.txPort));
                }
            }
            if (maxQueues > 1 || n > 1) {
                tx.write(frontendPath + "/multi-queue-num-queues", Integer.toString(n));
            }
            tx.write(frontendPath + "/request-rx-copy", options.requestRxCopy() ? "1" : "0");
            tx.write(frontendPath + "/feature-rx-notify", options.rxNotify() ? "1" : "0");
            tx.write(frontendPath + "/feature-sg", options.sg() ? "1" : "0");
            tx.write(frontendPath + "/feature-gso-tcpv4", options.gsoTcpv4() ? "1" : "0");
            tx.write(frontendPath + "/feature-gso-tcpv6", options.gsoTcpv6() ? "1" : "0");
            tx.write(frontendPath + "/feature-no-csum-offload", options.csumOffload() ? "0" : "1");
            tx.write(frontendPath + "/feature-ipv6-csum-offload", options.ipv6CsumOffload() ? "1" : "0");
            tx.write(frontendPath + "/request-multicast-control", options.multicastControl() ? "1" : "0");
            for (Map.Entry<String, String> e : overrides.entrySet()) {
                tx.write(frontendPath + "/" + e.getKey(), e.getValue());
            }
            return null;
        });
        for (Queue q : queues) {
            for (int i = 0; i < RX_SIZE; i++) {
                postRx(q);
            }
            if (q.rx.pushRequestsAndCheckNotify()) {
                channels.notify(q.rxPort);
            }
        }
        if (options.hotplug()) {
            playHotplug();
        }
        guestStore.write(frontendPath + "/state", "4");
        connected = true;
        if (waitConnected) {
            awaitBackendState(timeout, 4);
        }
    }

    /** {@link #connect(Duration, boolean)} waiting for Connected. */
    public void connect(Duration timeout) throws IOException {
        connect(timeout, true);
    }

    private boolean backendFlag(String key) throws IOException {
        return guestStore.readString(backendPath + "/" + key).map(s -> s.trim().equals("1")).orElse(false);
    }

    private void postRx(Queue q) {
        int index = q.rx.requestProducer();
        int id = index & (RX_SIZE - 1);
        int ref = guest.grantAccess(SimulatedXen.DOM0, q.rxPages.frame(id), false);
        q.rxRef[id] = ref;
        q.rxId[id] = id;
        q.rxPosted[id] = true;
        NetifRxRequestDescriptor.put(q.rx.buffer(), q.rx.nextRequestSlot(), id, ref);
    }

    // --- tx ---------------------------------------------------------------------------------------------------------

    /**
     * Sends one packet on {@code queue}: slots as {@code how} cuts them, the GSO extra after the first slot, each slot
     * a page granted read-only to dom0 for the time the request is in flight.
     *
     * @return the ids used, first slot first
     */
    public int[] send(int queue, byte[] frame, TxPacket how) throws IOException {
        Queue q = queues.get(queue);
        int[] sizes = how.slotSizes();
        if (sizes == null) {
            List<Integer> cut = new ArrayList<>();
            int left = frame.length;
            int room = PAGE - how.firstOffset();
            while (left > 0) {
                int s = Math.min(left, room);
                cut.add(s);
                left -= s;
                room = PAGE;
            }
            sizes = cut.stream().mapToInt(Integer::intValue).toArray();
        }
        int needed = sizes.length + (how.gsoType() != 0 ? 1 : 0);
        if (q.tx.freeRequests() < needed || q.freeTxIds.size() < sizes.length) {
            throw new IllegalStateException("tx ring full: free=" + q.tx.freeRequests() + ", needed=" + needed);
        }
        int[] ids = new int[sizes.length];
        int done = 0;
        for (int s = 0; s < sizes.length; s++) {
            int id = q.freeTxIds.poll();
            ids[s] = id;
            int offset = s == 0 ? how.firstOffset() : 0;
            ByteBuffer page = q.txPages.page(id);
            page.put(offset, frame, done, sizes[s]);
            int ref = guest.grantAccess(SimulatedXen.DOM0, q.txPages.frame(id), true);
            q.inflight.computeIfAbsent(id, k -> new ArrayDeque<>()).add(ref);
            int flags = s < sizes.length - 1 ? Netif.NETTXF_more_data : 0;
            int size = sizes[s];
            if (s == 0) {
                size = frame.length;
                flags |= (how.csumBlank() ? Netif.NETTXF_csum_blank : 0)
                        | (how.dataValidated() ? Netif.NETTXF_data_validated : 0)
                        | (how.gsoType() != 0 ? Netif.NETTXF_extra_info : 0);
            }
            NetifTxRequestDescriptor.put(q.tx.buffer(), q.tx.nextRequestSlot(), ref, offset, flags, id, size);
            if (s == 0 && how.gsoType() != 0) {
                NetifExtraInfoDescriptor.putGso(q.tx.buffer(), q.tx.nextRequestSlot(), 0, how.gsoSize(),
                        how.gsoType(), 0);
            }
            done += sizes[s];
        }
        if (q.tx.pushRequestsAndCheckNotify()) {
            channels.notify(q.txPort);
        }
        return ids;
    }

    /** A raw tx ring entry for fuzzing: a request, or (when {@code extra} is set) 8 raw extra-info bytes. */
    public record RawSlot(int gref, int offset, int flags, int id, int size, byte[] extra) {
        public static RawSlot request(int gref, int offset, int flags, int id, int size) {
            return new RawSlot(gref, offset, flags, id, size, null);
        }

        public static RawSlot extra(byte[] bytes) {
            return new RawSlot(0, 0, 0, 0, 0, bytes);
        }
    }

    /**
     * Grants tx page {@code id} (read-only to dom0) holding {@code data}, for raw slots; returns the ref. The grant is
     * ended at disconnect, when it must not be mapped.
     */
    public int grantTxData(int queue, int id, byte[] data) {
        Queue q = queues.get(queue);
        q.txPages.page(id).put(0, data, 0, Math.min(PAGE, data.length));
        int ref = guest.grantAccess(SimulatedXen.DOM0, q.txPages.frame(id), true);
        q.rawGrants.add(ref);
        return ref;
    }

    /**
     * Writes raw entries into the tx ring and pushes them. Each request's id (and the stale id field under each extra,
     * in case the backend reads it as a request) is recorded as in flight once more, so a response with an id the
     * frontend never sent, or more responses than requests for an id, is still a violation.
     */
    public void sendRaw(int queue, List<RawSlot> slots) throws IOException {
        Queue q = queues.get(queue);
        for (RawSlot s : slots) {
            int at = q.tx.nextRequestSlot();
            if (s.extra() != null) {
                q.tx.buffer().put(at, s.extra(), 0, NetifExtraInfoDescriptor.LENGTH);
                // An extra slot that the backend reads as a request (no extra_info flag before it) carries whatever
                // id the slot's bytes 8-9 hold from an earlier lap: the guest's own garbage, legitimately echoed.
                q.inflight.computeIfAbsent(NetifTxRequestDescriptor.id(q.tx.buffer(), at), k -> new ArrayDeque<>())
                        .add(-1);
            } else {
                NetifTxRequestDescriptor.put(q.tx.buffer(), at, s.gref(), s.offset(), s.flags(), s.id(), s.size());
                q.inflight.computeIfAbsent(s.id(), k -> new ArrayDeque<>()).add(-1);
            }
        }
        if (q.tx.pushRequestsAndCheckNotify()) {
            channels.notify(q.txPort);
        }
    }

    /** Writes req_prod {@code delta} past the requests written (a producer that jumps) and kicks the backend. */
    public void jumpTxRequestProducer(int queue, int delta) throws IOException {
        Queue q = queues.get(queue);
        q.tx.buffer().putInt(SharedRingDescriptor.REQ_PROD_OFFSET, q.tx.requestProducer() + delta);
        channels.notify(q.txPort);
    }

    /** One tx response as netfront sees it. */
    public record TxResult(int id, int status) {
    }

    /** Takes the tx responses published so far, checking each as netfront's {@code xennet_tx_buf_gc} does. */
    public List<TxResult> pollTx(int queue) {
        Queue q = queues.get(queue);
        List<TxResult> out = new ArrayList<>();
        int rspProd = q.tx.responseConsumer() + q.tx.unconsumedResponses();
        if (q.tx.responseProdOverflow(rspProd)) {
            violations.add("tx response producer beyond the ring: rsp_prod=" + Integer.toUnsignedString(rspProd));
            return out;
        }
        while (q.tx.unconsumedResponses() > 0) {
            int at = q.tx.nextResponseSlot();
            int status = (short) NetifTxResponseDescriptor.status(q.tx.buffer(), at);
            if (status == Netif.NETIF_RSP_NULL) {
                continue;
            }
            int id = NetifTxResponseDescriptor.id(q.tx.buffer(), at);
            Deque<Integer> refs = q.inflight.get(id);
            if (refs == null || refs.isEmpty()) {
                violations.add("tx response for an id not in flight (netfront: \"tx ring broken\"): id=" + id
                        + ", queue=" + queue);
                continue;
            }
            int ref = refs.poll();
            if (refs.isEmpty()) {
                q.inflight.remove(id);
            }
            if (ref >= 0 && !guest.endAccess(ref)) {
                violations.add("tx grant still in use by the backend after its response: ref=" + ref + ", id=" + id);
            }
            if (id < TX_SIZE && !q.inflight.containsKey(id) && !q.freeTxIds.contains(id)) {
                q.freeTxIds.add(id);
            }
            out.add(new TxResult(id, status));
        }
        return out;
    }

    /** Waits for {@code count} tx responses (NULL responses not counted). */
    public List<TxResult> awaitTx(int queue, int count, Duration timeout) throws IOException {
        List<TxResult> out = new ArrayList<>(pollTx(queue));
        long deadline = System.nanoTime() + timeout.toNanos();
        while (out.size() < count) {
            if (!queues.get(queue).tx.finalCheckForResponses()) {
                waitForEvent(deadline);
            }
            out.addAll(pollTx(queue));
            if (out.size() < count && System.nanoTime() - deadline > 0) {
                throw new AssertionError("only " + out.size() + " of " + count + " tx responses within " + timeout
                        + ": " + out);
            }
        }
        return out;
    }

    /** Tx requests still awaiting a response. */
    public int txInFlight(int queue) {
        int n = 0;
        for (Deque<Integer> d : queues.get(queue).inflight.values()) {
            n += d.size();
        }
        return n;
    }

    // --- rx ---------------------------------------------------------------------------------------------------------

    /**
     * Takes the rx responses published so far and assembles packets (netfront's {@code xennet_poll}), checking that
     * each response sits in the slot of its request with that request's id, then ends access to each buffer (it must
     * not be mapped) and posts a fresh one.
     */
    public List<RxPacket> pollRx(int queue) throws IOException {
        Queue q = queues.get(queue);
        List<RxPacket> out = new ArrayList<>();
        int rspProd = q.rx.responseConsumer() + q.rx.unconsumedResponses();
        if (q.rx.responseProdOverflow(rspProd)) {
            violations.add("rx response producer beyond the ring: rsp_prod=" + Integer.toUnsignedString(rspProd));
            return out;
        }
        int consumed = 0;
        while (q.rx.unconsumedResponses() > 0) {
            int index = q.rx.responseConsumer();
            int slot = index & (RX_SIZE - 1);
            int at = q.rx.nextResponseSlot();
            consumed++;
            ByteBuffer ring = q.rx.buffer();
            if (!q.rxPosted[slot]) {
                violations.add("rx response in a slot without a posted request: index=" + index);
                continue;
            }
            q.rxPosted[slot] = false;
            if (!guest.endAccess(q.rxRef[slot])) {
                violations.add("rx grant still in use by the backend after its response: ref=" + q.rxRef[slot]);
            }
            if (q.expectExtra) {
                if (NetifExtraInfoDescriptor.type(ring, at) == Netif.XEN_NETIF_EXTRA_TYPE_GSO) {
                    q.partialGsoType = NetifExtraInfoDescriptor.gsoType(ring, at);
                    q.partialGsoSize = NetifExtraInfoDescriptor.gsoSize(ring, at);
                } else {
                    violations.add("rx extra info of unexpected type: type=" + NetifExtraInfoDescriptor.type(ring, at));
                }
                q.expectExtra = (NetifExtraInfoDescriptor.flags(ring, at) & Netif.XEN_NETIF_EXTRA_FLAG_MORE) != 0;
                q.partialSlots++;
                if (!q.expectExtra && !q.moreData) {
                    out.add(q.finishPacket());
                }
                continue;
            }
            int id = NetifRxResponseDescriptor.id(ring, at);
            if (id != q.rxId[slot]) {
                violations.add("rx response id is not that of the request in its slot: index=" + index + ", id=" + id
                        + ", posted id=" + q.rxId[slot]);
            }
            int flags = NetifRxResponseDescriptor.flags(ring, at);
            int status = (short) NetifRxResponseDescriptor.status(ring, at);
            int offset = NetifRxResponseDescriptor.offset(ring, at);
            if (!q.inPacket) {
                q.inPacket = true;
                q.partial.reset();
                q.partialFlags = flags;
                q.partialGsoType = 0;
                q.partialGsoSize = 0;
                q.partialSlots = 0;
                q.partialStatus = 0;
                q.expectExtra = (flags & Netif.NETRXF_extra_info) != 0;
            }
            q.partialSlots++;
            q.moreData = (flags & Netif.NETRXF_more_data) != 0;
            if (status < 0) {
                q.partialStatus = q.partialStatus == 0 ? status : q.partialStatus;
            } else if (offset + status > PAGE) {
                violations.add("rx response beyond its page: offset=" + offset + ", status=" + status);
            } else {
                byte[] chunk = new byte[status];
                q.rxPages.page(slot).get(offset, chunk);
                q.partial.writeBytes(chunk);
            }
            if (!q.moreData && !q.expectExtra) {
                out.add(q.finishPacket());
            }
        }
        for (int i = 0; i < consumed; i++) {
            postRx(q);
        }
        if (consumed > 0 && q.rx.pushRequestsAndCheckNotify()) {
            channels.notify(q.rxPort);
        }
        return out;
    }

    /**
     * The benchmark's receive: consumes the rx responses published so far without assembling packets (netfront's
     * bookkeeping only: end access, count, repost), and adds packets and bytes to {@code counts[0]} and
     * {@code counts[1]}. Hardening checks still apply.
     */
    public void drainRx(int queue, long[] counts) throws IOException {
        Queue q = queues.get(queue);
        int consumed = 0;
        while (q.rx.unconsumedResponses() > 0) {
            int index = q.rx.responseConsumer();
            int slot = index & (RX_SIZE - 1);
            int at = q.rx.nextResponseSlot();
            consumed++;
            q.rxPosted[slot] = false;
            if (!guest.endAccess(q.rxRef[slot])) {
                violations.add("rx grant still in use by the backend after its response: ref=" + q.rxRef[slot]);
            }
            if (q.expectExtra) {
                q.expectExtra = (NetifExtraInfoDescriptor.flags(q.rx.buffer(), at) & Netif.XEN_NETIF_EXTRA_FLAG_MORE)
                        != 0;
                if (!q.expectExtra && !q.moreData) {
                    counts[0]++;
                }
                continue;
            }
            if (NetifRxResponseDescriptor.id(q.rx.buffer(), at) != q.rxId[slot]) {
                violations.add("rx response id is not that of the request in its slot: index=" + index);
            }
            int flags = NetifRxResponseDescriptor.flags(q.rx.buffer(), at);
            int status = (short) NetifRxResponseDescriptor.status(q.rx.buffer(), at);
            counts[1] += Math.max(0, status);
            if (!q.inPacket) {
                q.inPacket = true;
                q.expectExtra = (flags & Netif.NETRXF_extra_info) != 0;
            }
            q.moreData = (flags & Netif.NETRXF_more_data) != 0;
            if (!q.moreData && !q.expectExtra) {
                q.inPacket = false;
                counts[0]++;
            } else if (!q.moreData) {
                q.inPacket = false;
            }
        }
        for (int i = 0; i < consumed; i++) {
            postRx(q);
        }
        if (consumed > 0 && q.rx.pushRequestsAndCheckNotify()) {
            channels.notify(q.rxPort);
        }
    }

    /** Waits up to {@code timeoutNs} for an event on any of this frontend's channels (the benchmark's idle path). */
    public void awaitEvent(long timeoutNs) throws IOException {
        boolean any = false;
        for (Queue q : queues) {
            any |= q.rx.finalCheckForResponses() | q.tx.finalCheckForResponses();
        }
        if (!any) {
            waitForEvent(System.nanoTime() + timeoutNs);
        }
    }

    /** Free tx ring slots of {@code queue}. */
    public int txFree(int queue) {
        Queue q = queues.get(queue);
        return Math.min(q.tx.freeRequests(), q.freeTxIds.size());
    }

    /** Waits for {@code count} rx packets. */
    public List<RxPacket> awaitRx(int queue, int count, Duration timeout) throws IOException {
        List<RxPacket> out = new ArrayList<>(pollRx(queue));
        long deadline = System.nanoTime() + timeout.toNanos();
        while (out.size() < count) {
            if (!queues.get(queue).rx.finalCheckForResponses()) {
                waitForEvent(deadline);
            }
            out.addAll(pollRx(queue));
            if (out.size() < count && System.nanoTime() - deadline > 0) {
                throw new AssertionError("only " + out.size() + " of " + count + " rx packets within " + timeout);
            }
        }
        return out;
    }

    /** Waits for rx packets on any queue until {@code count} arrived; returns them per queue. */
    public List<List<RxPacket>> awaitRxAnyQueue(int count, Duration timeout) throws IOException {
        List<List<RxPacket>> out = new ArrayList<>();
        for (int i = 0; i < queues.size(); i++) {
            out.add(new ArrayList<>());
        }
        long deadline = System.nanoTime() + timeout.toNanos();
        int total = 0;
        while (true) {
            for (int i = 0; i < queues.size(); i++) {
                List<RxPacket> got = pollRx(i);
                out.get(i).addAll(got);
                total += got.size();
            }
            if (total >= count) {
                return out;
            }
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("only " + total + " of " + count + " rx packets within " + timeout);
            }
            boolean any = false;
            for (Queue q : queues) {
                any |= q.rx.finalCheckForResponses();
            }
            if (!any) {
                waitForEvent(Math.min(deadline, System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(10)));
            }
        }
    }

    private void waitForEvent(long deadlineNs) throws IOException {
        int[] ports = new int[64];
        long left = Math.max(0, Math.min(deadlineNs - System.nanoTime(), TimeUnit.MILLISECONDS.toNanos(50)));
        int n = channels.awaitPending(ports, left);
        for (int i = 0; i < n; i++) {
            channels.unmask(ports[i]);
        }
    }

    // --- lifecycle --------------------------------------------------------------------------------------------------

    /**
     * netfront's close (also the first half of suspend): Closing, wait for the backend to follow, Closed, wait; then
     * end access to every grant — each must be unmapped by now, or it is a violation — and unbind the channels.
     */
    public void disconnect(Duration timeout) throws IOException {
        if (!connected) {
            return;
        }
        connected = false;
        guestStore.write(frontendPath + "/state", "5");
        awaitBackendState(timeout, 5, 6);
        guestStore.write(frontendPath + "/state", "6");
        awaitBackendState(timeout, 6);
        releaseQueues();
    }

    private void releaseQueues() throws IOException {
        for (Queue q : queues) {
            endAccess(q.txRingRef, "tx ring");
            endAccess(q.rxRingRef, "rx ring");
            for (Deque<Integer> refs : q.inflight.values()) {
                for (int ref : refs) {
                    if (ref >= 0) {
                        endAccess(ref, "tx buffer in flight");
                    }
                }
            }
            q.inflight.clear();
            for (int ref : q.rawGrants) {
                endAccess(ref, "raw tx data");
            }
            q.rawGrants.clear();
            for (int i = 0; i < RX_SIZE; i++) {
                if (q.rxPosted[i]) {
                    endAccess(q.rxRef[i], "posted rx buffer");
                    q.rxPosted[i] = false;
                }
            }
            channels.unbind(q.txPort);
            if (q.split()) {
                channels.unbind(q.rxPort);
            }
        }
        queues.clear();
    }

    private void endAccess(int ref, String what) {
        if (!guest.endAccess(ref)) {
            violations.add("grant still mapped by the backend at disconnect: " + what + ", ref=" + ref);
        }
    }

    /** Suspend and resume: close, start again from Initialising, connect with fresh rings. */
    public void reconnect(Duration timeout) throws IOException {
        disconnect(timeout);
        guestStore.write(frontendPath + "/state", "1");
        connect(timeout);
    }

    /** {@code xl network-detach}: the toolstack removes both directories (after a disconnect, if connected). */
    public void detach(Duration timeout) throws IOException {
        disconnect(timeout);
        toolstack.rm(backendPath);
        toolstack.rm(frontendPath);
    }

    /** Reads a backend node, for tests. */
    public Optional<String> readBackend(String key) throws IOException {
        return guestStore.readString(backendPath + "/" + key);
    }

    /** Writes a frontend node (as the guest), for tests of bad values. */
    public void writeFrontend(String key, String value) throws IOException {
        guestStore.write(frontendPath + "/" + key, value);
    }

    public List<String> violations() {
        return List.copyOf(violations);
    }

    /** Fails when the backend broke any of netfront's hardening rules. */
    public void assertNoViolations() {
        if (!violations.isEmpty()) {
            throw new AssertionError("netfront saw backend violations: " + violations);
        }
    }

    /**
     * Releases the frontend: a connected device is closed first if the backend still answers (otherwise its grants are
     * ended without waiting), then the handles. Does not remove the xenstore directories (see {@link #detach}).
     */
    @Override
    public void close() throws IOException {
        try {
            if (connected) {
                connected = false;
                releaseQueues();
            }
        } finally {
            closeHandles();
        }
    }

    private void closeHandles() {
        try {
            if (channels != null) {
                channels.close();
            }
        } catch (IOException e) {
            violations.add("closing the guest's event channels failed: " + e);
        }
        closeStores();
    }

    private void closeStores() {
        try {
            guestStore.close();
            toolstack.close();
        } catch (IOException e) {
            violations.add("closing xenstore failed: " + e);
        }
    }

    private static void sleepMs(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
    }
}
