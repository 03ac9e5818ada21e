package io.jtap.testkit.blkfront;

import io.jtap.ring.FrontRing;
import io.jtap.ring.SharedRingDescriptor;
import io.jtap.ring.blkif.Blkif;
import io.jtap.ring.blkif.BlkifAbi;
import io.jtap.ring.blkif.BlkifResponseDescriptor;
import io.jtap.ring.blkif.BlkifSegmentDescriptor;
import io.jtap.xen.EventChannels;
import io.jtap.xen.GrantTable;
import io.jtap.xen.XenStore;
import io.jtap.xen.sim.GuestPages;
import io.jtap.xen.sim.SimulatedDomain;
import io.jtap.xen.sim.SimulatedXen;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeoutException;

/**
 * A block frontend in a simulated guest that behaves as Linux's xen-blkfront towards a backend: it follows the
 * {@code backend} link of its xenstore directory, waits for InitWait, negotiates the features the backend offers
 * (each of persistent grants, indirect segments, multi-page rings and multi-queue can be switched off with
 * {@link Features}), publishes its rings and event channels in one transaction, goes Initialised, and waits for
 * Connected. It grants data pages, submits read, write, barrier, flush and discard requests (indirect when they
 * carry more than {@value Blkif#BLKIF_MAX_SEGMENTS_PER_REQUEST} segments) and collects responses.
 *
 * <p>Grants as blkfront makes them: with persistent grants, a fixed pool of pages granted read-write once and
 * reused; without, each request's pages are granted (read-only for writes) and the grants ended when the response
 * arrives. An end that fails because the backend still maps the page is counted in {@link #grantsStillMapped()}
 * (newer Linux frontends disable such a device).
 *
 * <p>Also gives tests raw access to the ring ({@link #rawSlot}, {@link #pushRaw}, {@link #setRequestProducer}) to
 * behave as a hostile guest. Not thread-safe: one test thread drives it.
 */
public final class SimulatedBlkfront implements AutoCloseable {
    private static final Duration TIMEOUT = Duration.ofSeconds(20);

    /**
     * What this frontend is willing to use; each is reduced to what the backend offers.
     *
     * @param persistent          use persistent grants if offered
     * @param maxIndirectSegments use indirect requests of up to this many segments if offered; 0 = never
     * @param ringPageOrder       ring page order to ask for (0 = single page, written as {@code ring-ref})
     * @param queues              queues to ask for (1 = no {@code multi-queue-num-queues} node)
     * @param abi                 the ring layout and {@code protocol} node
     */
    /**
     * What the frontend asks for.
     *
     * @param poolPages pages per queue for data and indirect descriptors (granted once with persistent grants):
     *                  {@link #DEFAULT_POOL_PAGES} holds three 1 MiB indirect requests in flight
     */
    public record Features(boolean persistent, int maxIndirectSegments, int ringPageOrder, int queues,
                           BlkifAbi abi, int poolPages) {
        /** 4 MiB per queue. */
        public static final int DEFAULT_POOL_PAGES = 1024;

        /** Persistent grants, up to 256 indirect segments, a single-page ring, one queue, x86_64, 4 MiB of pages. */
        public static Features defaults() {
            return new Features(true, 256, 0, 1, BlkifAbi.X86_64, DEFAULT_POOL_PAGES);
        }

        public Features withPersistent(boolean v) {
            return new Features(v, maxIndirectSegments, ringPageOrder, queues, abi, poolPages);
        }

        public Features withIndirect(int v) {
            return new Features(persistent, v, ringPageOrder, queues, abi, poolPages);
        }

        public Features withRingPageOrder(int v) {
            return new Features(persistent, maxIndirectSegments, v, queues, abi, poolPages);
        }

        public Features withQueues(int v) {
            return new Features(persistent, maxIndirectSegments, ringPageOrder, v, abi, poolPages);
        }

        public Features withAbi(BlkifAbi v) {
            return new Features(persistent, maxIndirectSegments, ringPageOrder, queues, v, poolPages);
        }

        public Features withPoolPages(int v) {
            return new Features(persistent, maxIndirectSegments, ringPageOrder, queues, abi, v);
        }
    }

    /** A submitted request; {@link #status()} is set when its response arrives. */
    public static final class Request {
        final long id;
        final int queue;
        final int operation;
        final int sectors;
        /** Pool pages the request holds (data, then indirect), as primitive ints: 1 MiB is 257 of them. */
        final IntList pages = new IntList();
        final IntList temporaryGrants = new IntList();
        final int firstSect;
        Integer status;
        byte[] data;
        /** The data stays in the pool pages: a read is not copied out (benchmarks). */
        boolean inPlace;

        Request(long id, int queue, int operation, int sectors, int firstSect) {
            this.id = id;
            this.queue = queue;
            this.operation = operation;
            this.sectors = sectors;
            this.firstSect = firstSect;
        }

        public boolean done() {
            return status != null;
        }

        /** {@code BLKIF_RSP_*}, or null while in flight. */
        public Integer status() {
            return status;
        }

        /** For a completed read: the data. */
        public byte[] data() {
            return data;
        }

        public long id() {
            return id;
        }
    }

    /** A growable list of ints without boxing, used as a list and as a stack. */
    static final class IntList {
        private int[] values = new int[16];
        private int size;

        void add(int v) {
            if (size == values.length) {
                values = java.util.Arrays.copyOf(values, size * 2);
            }
            values[size++] = v;
        }

        int pop() {
            return values[--size];
        }

        int get(int i) {
            return values[i];
        }

        int size() {
            return size;
        }
    }

    /** A response this frontend did not expect (unknown id), as a hostile-guest test sees it. */
    public record RawResponse(int queue, long id, int operation, int status) {
    }

    private final SimulatedXen xen;
    private final SimulatedDomain guest;
    private final int devid;
    private final Features wanted;
    private final XenStore xs;
    private final String frontendPath;
    private final List<Queue> queues = new ArrayList<>();
    private final List<RawResponse> unexpected = new ArrayList<>();
    private final int[] firedPorts = new int[64];
    private EventChannels evtchn;
    private String backendPath;
    private boolean persistent;
    private int indirectSegments;
    private int order;
    private long nextId = 1;
    /** Responses collected so far. */
    private long responses;
    private int grantsStillMapped;
    private long sectors;
    private boolean connected;

    private final class Queue {
        final GuestPages ringPages;
        final int[] ringRefs;
        final FrontRing ring;
        final int port;
        final GuestPages pool;
        final int[] poolRefs;
        final IntList freePages = new IntList();
        final Map<Long, Request> inFlight = new HashMap<>();

        Queue(GuestPages ringPages, int[] ringRefs, FrontRing ring, int port, GuestPages pool, int[] poolRefs) {
            this.ringPages = ringPages;
            this.ringRefs = ringRefs;
            this.ring = ring;
            this.port = port;
            this.pool = pool;
            this.poolRefs = poolRefs;
            for (int i = 0; i < pool.count(); i++) {
                freePages.add(i);
            }
        }
    }

    /**
     * A frontend for the device the toolstack set up in {@code /local/domain/<domid>/device/vbd/<devid>}; nothing
     * is negotiated until {@link #connect()}.
     */
    public SimulatedBlkfront(SimulatedXen xen, SimulatedDomain guest, int devid, Features wanted) throws IOException {
        this.xen = xen;
        this.guest = guest;
        this.devid = devid;
        this.wanted = wanted;
        this.xs = xen.platform(guest.domid()).openXenStore();
        this.frontendPath = SimulatedToolstack.frontendPath(guest.domid(), devid);
    }

    public String frontendPath() {
        return frontendPath;
    }

    public String backendPath() {
        return backendPath;
    }

    public boolean persistent() {
        return persistent;
    }

    public int indirectSegments() {
        return indirectSegments;
    }

    public int ringPageOrder() {
        return order;
    }

    public int queueCount() {
        return queues.size();
    }

    /** The disk's size in 512-byte sectors, read at connect. */
    public long sectors() {
        return sectors;
    }

    /** Grants the backend still mapped when this frontend ended them. */
    public int grantsStillMapped() {
        return grantsStillMapped;
    }

    /** Responses whose id matched no request. */
    public List<RawResponse> unexpectedResponses() {
        return unexpected;
    }

    /** A node of the backend's directory, e.g. "feature-persistent". */
    public Optional<String> backendNode(String key) throws IOException {
        return xs.readString(backendPath + "/" + key);
    }

    public XenbusStateView backendState() throws IOException {
        return new XenbusStateView(Integer.parseInt(backendNode("state").orElse("0")));
    }

    /** A backend or frontend state number, printable. */
    public record XenbusStateView(int value) {
    }

    /** Waits until the backend publishes one of {@code states}. */
    public int awaitBackendState(Duration timeout, int... states) throws IOException, TimeoutException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            String s = xs.readString(backendPath + "/state").orElse("0");
            for (int want : states) {
                if (s.equals(Integer.toString(want))) {
                    return want;
                }
            }
            if (System.nanoTime() > deadline) {
                throw new TimeoutException("backend state: path=" + backendPath + ", state=" + s + ", wanted="
                        + java.util.Arrays.toString(states));
            }
            sleep();
        }
    }

    private static void sleep() {
        try {
            Thread.sleep(1);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    /** Writes this frontend's state node. */
    public void switchState(int state) throws IOException {
        xs.write(frontendPath + "/state", Integer.toString(state));
    }

    /**
     * The whole handshake: InitWait → publish rings → Initialised → wait for Connected → Connected.
     *
     * @throws TimeoutException when the backend does not reach a state in time (its {@code error} node is named)
     */
    public void connect() throws IOException, TimeoutException {
        backendPath = xs.readString(frontendPath + "/backend")
                .orElseThrow(() -> new IOException("no backend node: path=" + frontendPath));
        awaitBackendState(TIMEOUT, 2);
        boolean bePersistent = backendNode("feature-persistent").orElse("0").equals("1");
        int beIndirect = Integer.parseInt(backendNode("feature-max-indirect-segments").orElse("0"));
        int beOrder = Integer.parseInt(backendNode("max-ring-page-order").orElse("0"));
        int beQueues = Integer.parseInt(backendNode("multi-queue-max-queues").orElse("1"));
        persistent = wanted.persistent() && bePersistent;
        indirectSegments = Math.min(wanted.maxIndirectSegments(), beIndirect);
        if (indirectSegments <= Blkif.BLKIF_MAX_SEGMENTS_PER_REQUEST) {
            indirectSegments = 0;
        }
        order = Math.min(wanted.ringPageOrder(), beOrder);
        int nq = Math.max(1, Math.min(wanted.queues(), beQueues));
        if (evtchn == null) {
            evtchn = guest.openEventChannels();
        }
        int entry = wanted.abi().entryLength();
        for (int q = 0; q < nq; q++) {
            GuestPages ringPages = guest.allocatePages(1 << order);
            FrontRing ring = FrontRing.init(ringPages.buffer(), order, entry);
            int[] ringRefs = ringPages.grantAll(0, false);
            int port = evtchn.bindUnboundPort(0);
            GuestPages pool = guest.allocatePages(wanted.poolPages());
            int[] poolRefs = persistent ? pool.grantAll(0, false) : null;
            queues.add(new Queue(ringPages, ringRefs, ring, port, pool, poolRefs));
        }
        xs.transaction(tx -> {
            for (int q = 0; q < nq; q++) {
                Queue queue = queues.get(q);
                String dir = nq == 1 ? frontendPath : frontendPath + "/queue-" + q;
                if (order == 0) {
                    tx.write(dir + "/ring-ref", Integer.toUnsignedString(queue.ringRefs[0]));
                } else {
                    for (int i = 0; i < queue.ringRefs.length; i++) {
                        tx.write(dir + "/ring-ref" + i, Integer.toUnsignedString(queue.ringRefs[i]));
                    }
                }
                tx.write(dir + "/event-channel", Integer.toString(queue.port));
            }
            if (order > 0) {
                tx.write(frontendPath + "/ring-page-order", Integer.toString(order));
            }
            if (nq > 1) {
                tx.write(frontendPath + "/multi-queue-num-queues", Integer.toString(nq));
            }
            tx.write(frontendPath + "/protocol", wanted.abi().protocol());
            tx.write(frontendPath + "/feature-persistent", persistent ? "1" : "0");
            return null;
        });
        switchState(3);
        awaitBackendState(TIMEOUT, 4);
        sectors = Long.parseLong(backendNode("sectors").orElse("0"));
        switchState(4);
        connected = true;
    }

    /**
     * Closes as blkfront does on detach: Closing, wait for the backend to close, Closed; then ends every grant
     * (counting any the backend still maps) and unbinds the channels. Requests in flight must have completed.
     */
    public void disconnect() throws IOException, TimeoutException {
        switchState(5);
        awaitBackendState(TIMEOUT, 5, 6);
        switchState(6);
        awaitBackendState(TIMEOUT, 6);
        releaseRings();
    }

    /**
     * Reconnects after {@link #disconnect()}, as after resume: Initialising, wait for InitWait, then the handshake
     * again.
     */
    public void reconnect() throws IOException, TimeoutException {
        switchState(1);
        connect();
    }

    /**
     * A guest that restarts without closing (a crash and reboot, kexec): the frontend goes straight back to
     * Initialising while Connected, waits for the backend to tear down and offer InitWait again, drops its old rings
     * (ending their grants, which the backend must have unmapped), and connects afresh. Requests in flight are lost.
     */
    public void restartWithoutClosing() throws IOException, TimeoutException {
        switchState(1);
        awaitBackendState(TIMEOUT, 2);
        releaseRings();
        connect();
    }

    private void releaseRings() throws IOException {
        for (Queue q : queues) {
            for (int ref : q.ringRefs) {
                endGrant(ref);
            }
            if (q.poolRefs != null) {
                for (int ref : q.poolRefs) {
                    endGrant(ref);
                }
            }
            for (Request r : q.inFlight.values()) {
                for (int i = 0; i < r.temporaryGrants.size(); i++) {
                    endGrant(r.temporaryGrants.get(i));
                }
            }
            evtchn.unbind(q.port);
        }
        queues.clear();
        connected = false;
    }

    private void endGrant(int ref) {
        if (!guest.endAccess(ref)) {
            grantsStillMapped++;
        }
    }

    // --- requests ---------------------------------------------------------------------------------------------

    /** Reads {@code count} sectors synchronously; fails unless the backend answers OKAY. */
    public byte[] read(int queue, long sector, int count) throws IOException, TimeoutException {
        Request r = submitRead(queue, sector, count, 0);
        expectOkay(r);
        return r.data;
    }

    /** Writes synchronously; fails unless the backend answers OKAY. */
    public void write(int queue, long sector, byte[] data) throws IOException, TimeoutException {
        expectOkay(submitWrite(queue, Blkif.BLKIF_OP_WRITE, sector, data, 0));
    }

    private void expectOkay(Request r) throws IOException, TimeoutException {
        int status = await(r);
        if (status != Blkif.BLKIF_RSP_OKAY) {
            throw new IOException("request failed: id=" + r.id + ", operation=" + r.operation + ", status=" + status);
        }
    }

    /**
     * Submits a read of {@code count} sectors at {@code sector}; the data lands in the pages from sector
     * {@code firstSect} (0..7) of the first page on, as a bio that starts mid-page.
     */
    public Request submitRead(int queue, long sector, int count, int firstSect) throws IOException, TimeoutException {
        return submitRw(queue, Blkif.BLKIF_OP_READ, sector, count, null, firstSect);
    }

    /**
     * Submits a write ({@code BLKIF_OP_WRITE}), or a barrier or flush carrying data ({@code BLKIF_OP_WRITE_BARRIER},
     * {@code BLKIF_OP_FLUSH_DISKCACHE}: how Linux blkfront sends FUA writes), of {@code data}.
     */
    public Request submitWrite(int queue, int operation, long sector, byte[] data, int firstSect)
            throws IOException, TimeoutException {
        if (data.length % Blkif.SECTOR_SIZE != 0) {
            throw new IllegalArgumentException("data must be whole sectors: length=" + data.length);
        }
        return submitRw(queue, operation, sector, data.length / Blkif.SECTOR_SIZE, data, firstSect);
    }

    /**
     * Submits a read whose data is left in this frontend's pages (not copied to {@link Request#data()}), as a guest
     * reading into its page cache: for benchmarks, where the copy out would be the frontend's cost, not the backend's.
     */
    public Request submitReadInPlace(int queue, long sector, int count) throws IOException, TimeoutException {
        Request r = submitRw(queue, Blkif.BLKIF_OP_READ, sector, count, null, 0);
        r.inPlace = true;
        return r;
    }

    /**
     * Submits a write of whatever this frontend's pages hold (no data is copied in), as a guest writing out its page
     * cache: for benchmarks.
     */
    public Request submitWriteInPlace(int queue, long sector, int count) throws IOException, TimeoutException {
        Request r = submitRw(queue, Blkif.BLKIF_OP_WRITE, sector, count, null, 0);
        r.inPlace = true;
        return r;
    }

    /** Requests submitted and not yet answered, across the queues. */
    public int inFlight() {
        int n = 0;
        for (Queue q : queues) {
            n += q.inFlight.size();
        }
        return n;
    }

    /** Requests submitted on {@code queue} and not yet answered. */
    public int inFlight(int queue) {
        return queues.get(queue).inFlight.size();
    }

    /**
     * Waits until at least one response arrives (on any queue) and collects every response there is.
     *
     * @return the responses collected
     * @throws TimeoutException when nothing arrives within the frontend's timeout
     */
    public int awaitResponses() throws IOException, TimeoutException {
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        long before = responses;
        while (responses == before) {
            waitForResponses(deadline);
        }
        return (int) (responses - before);
    }

    /** Submits {@code BLKIF_OP_FLUSH_DISKCACHE} without segments. */
    public Request submitFlush(int queue) throws IOException, TimeoutException {
        return submitRw(queue, Blkif.BLKIF_OP_FLUSH_DISKCACHE, 0, 0, null, 0);
    }

    /** Submits {@code BLKIF_OP_DISCARD}. */
    public Request submitDiscard(int queue, long sector, long count, boolean secure)
            throws IOException, TimeoutException {
        Queue q = queues.get(queue);
        awaitRingSpace(q);
        Request r = new Request(nextId++, queue, Blkif.BLKIF_OP_DISCARD, (int) Math.min(count, Integer.MAX_VALUE), 0);
        int slot = q.ring.nextRequestSlot();
        wanted.abi().discardRequest().put(q.ring.buffer(), slot, secure ? Blkif.BLKIF_DISCARD_SECURE : 0, devid,
                r.id, sector, count);
        q.inFlight.put(r.id, r);
        push(q);
        return r;
    }

    private Request submitRw(int queue, int operation, long sector, int count, byte[] data, int firstSect)
            throws IOException, TimeoutException {
        Queue q = queues.get(queue);
        int sectorsInPages = firstSect + count;
        int segments = (sectorsInPages + Blkif.SECTORS_PER_PAGE - 1) / Blkif.SECTORS_PER_PAGE;
        boolean indirect = segments > Blkif.BLKIF_MAX_SEGMENTS_PER_REQUEST;
        if (indirect && operation != Blkif.BLKIF_OP_READ && operation != Blkif.BLKIF_OP_WRITE) {
            throw new IllegalArgumentException("only reads and writes can be indirect: operation=" + operation
                    + ", segments=" + segments);
        }
        if (indirect && (indirectSegments == 0 || segments > indirectSegments)) {
            throw new IllegalArgumentException("too many segments: segments=" + segments + ", indirect="
                    + indirectSegments);
        }
        int indirectPages = indirect ? (segments + Blkif.BLKIF_SEGMENTS_PER_INDIRECT_PAGE - 1)
                / Blkif.BLKIF_SEGMENTS_PER_INDIRECT_PAGE : 0;
        awaitRingSpace(q);
        awaitPages(q, segments + indirectPages);
        Request r = new Request(nextId++, queue, operation, count, firstSect);
        boolean toGuest = operation == Blkif.BLKIF_OP_READ;
        int[] segRefs = new int[segments];
        int[] firsts = new int[segments];
        int[] lasts = new int[segments];
        int dataAt = 0;
        for (int s = 0; s < segments; s++) {
            int page = q.freePages.pop();
            r.pages.add(page);
            int first = s == 0 ? firstSect : 0;
            int last = Math.min(Blkif.SECTORS_PER_PAGE - 1, first + (count - dataAt / Blkif.SECTOR_SIZE) - 1);
            firsts[s] = first;
            lasts[s] = last;
            int len = (last - first + 1) * Blkif.SECTOR_SIZE;
            if (data != null) {
                q.pool.buffer().put(page * GrantTable.PAGE_SIZE + first * Blkif.SECTOR_SIZE, data, dataAt, len);
            }
            dataAt += len;
            segRefs[s] = grantPage(q, r, page, !toGuest);
        }
        ByteBuffer ring = q.ring.buffer();
        int slot = q.ring.nextRequestSlot();
        if (!indirect) {
            wanted.abi().request().put(ring, slot, operation, segments, devid, r.id, sector);
            for (int s = 0; s < segments; s++) {
                BlkifSegmentDescriptor.put(ring, wanted.abi().request().segmentOffset(slot, s), segRefs[s], firsts[s],
                        lasts[s]);
            }
        } else {
            wanted.abi().indirectRequest().put(ring, slot, operation, segments, r.id, sector, devid);
            for (int p = 0; p < indirectPages; p++) {
                int page = q.freePages.pop();
                r.pages.add(page);
                ByteBuffer buf = q.pool.buffer();
                int base = page * GrantTable.PAGE_SIZE;
                for (int k = 0; k < Blkif.BLKIF_SEGMENTS_PER_INDIRECT_PAGE; k++) {
                    int s = p * Blkif.BLKIF_SEGMENTS_PER_INDIRECT_PAGE + k;
                    if (s >= segments) {
                        break;
                    }
                    BlkifSegmentDescriptor.put(buf, base + k * BlkifSegmentDescriptor.LENGTH, segRefs[s], firsts[s],
                            lasts[s]);
                }
                wanted.abi().indirectRequest().putIndirectGref(ring, slot, p, grantPage(q, r, page, true));
            }
        }
        q.inFlight.put(r.id, r);
        push(q);
        return r;
    }

    private int grantPage(Queue q, Request r, int page, boolean readOnly) {
        if (q.poolRefs != null) {
            return q.poolRefs[page];
        }
        int ref = guest.grantAccess(0, q.pool.frame(page), readOnly);
        r.temporaryGrants.add(ref);
        return ref;
    }

    private void push(Queue q) throws IOException {
        if (deferPushes) {
            return;
        }
        if (q.ring.pushRequestsAndCheckNotify()) {
            evtchn.notify(q.port);
        }
    }

    private void awaitRingSpace(Queue q) throws IOException, TimeoutException {
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        while (q.ring.full()) {
            waitForResponses(deadline);
        }
    }

    private void awaitPages(Queue q, int pages) throws IOException, TimeoutException {
        if (pages > q.pool.count()) {
            throw new IllegalArgumentException("request needs more pages than the pool: pages=" + pages);
        }
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        while (q.freePages.size() < pages) {
            waitForResponses(deadline);
        }
    }

    /** Waits for {@code r}'s response and returns its status. */
    public int await(Request r) throws IOException, TimeoutException {
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        while (!r.done()) {
            waitForResponses(deadline);
        }
        return r.status;
    }

    /** Waits until every request in flight on every queue has its response. */
    public void awaitAll() throws IOException, TimeoutException {
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        while (queues.stream().anyMatch(q -> !q.inFlight.isEmpty())) {
            waitForResponses(deadline);
        }
    }

    /** Waits until at least {@code count} responses with unknown ids (raw requests) have arrived; returns them. */
    public List<RawResponse> awaitRawResponses(int count) throws IOException, TimeoutException {
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        while (unexpected.size() < count) {
            waitForResponses(deadline);
        }
        return unexpected;
    }

    /** Collects the responses that are there without waiting; returns how many. */
    public int pollResponses() throws IOException {
        int n = 0;
        for (int qi = 0; qi < queues.size(); qi++) {
            Queue q = queues.get(qi);
            do {
                while (q.ring.unconsumedResponses() > 0) {
                    int at = q.ring.nextResponseSlot();
                    complete(qi, q, BlkifResponseDescriptor.id(q.ring.buffer(), at),
                            BlkifResponseDescriptor.operation(q.ring.buffer(), at),
                            BlkifResponseDescriptor.status(q.ring.buffer(), at));
                    n++;
                }
            } while (q.ring.finalCheckForResponses());
        }
        return n;
    }

    private static final boolean STRICT_NOTIFY = Boolean.getBoolean("jtap.testkit.strictNotify");

    private void waitForResponses(long deadlineNs) throws IOException, TimeoutException {
        if (pollResponses() > 0) {
            return;
        }
        long left = deadlineNs - System.nanoTime();
        if (left <= 0) {
            throw new TimeoutException("no response from backend: path=" + backendPath);
        }
        // jtap.testkit.strictNotify: wait for the backend's notification only (no re-poll every 10 ms), so that a
        // response pushed without the notification RING_PUSH_RESPONSES_AND_CHECK_NOTIFY calls for hangs the test
        int n = evtchn.awaitPending(firedPorts, STRICT_NOTIFY ? left : Math.min(left, 10_000_000L));
        for (int i = 0; i < n; i++) {
            evtchn.unmask(firedPorts[i]);
        }
    }

    private void complete(int qi, Queue q, long id, int operation, int status) {
        responses++;
        Request r = q.inFlight.remove(id);
        if (r == null) {
            unexpected.add(new RawResponse(qi, id, operation, status));
            return;
        }
        if (r.operation == Blkif.BLKIF_OP_READ && status == Blkif.BLKIF_RSP_OKAY && !r.inPlace) {
            r.data = new byte[r.sectors * Blkif.SECTOR_SIZE];
            int at = 0;
            for (int s = 0; at < r.data.length; s++) {
                int first = s == 0 ? r.firstSect : 0;
                int len = Math.min((Blkif.SECTORS_PER_PAGE - first) * Blkif.SECTOR_SIZE, r.data.length - at);
                q.pool.buffer().get(r.pages.get(s) * GrantTable.PAGE_SIZE + first * Blkif.SECTOR_SIZE, r.data, at,
                        len);
                at += len;
            }
        }
        for (int i = 0; i < r.temporaryGrants.size(); i++) {
            endGrant(r.temporaryGrants.get(i));
        }
        for (int i = 0; i < r.pages.size(); i++) {
            q.freePages.add(r.pages.get(i));
        }
        r.status = status;
    }

    // --- raw access for hostile-guest tests -------------------------------------------------------------------

    /**
     * Claims the next request slot and returns its byte offset in {@link #ringBuffer(int)}; the caller writes any
     * bytes there and calls {@link #pushRaw}.
     */
    public int rawSlot(int queue) {
        return queues.get(queue).ring.nextRequestSlot();
    }

    public ByteBuffer ringBuffer(int queue) {
        return queues.get(queue).ring.buffer();
    }

    /** Publishes raw slots and kicks the backend. */
    public void pushRaw(int queue) throws IOException {
        Queue q = queues.get(queue);
        if (q.ring.pushRequestsAndCheckNotify()) {
            evtchn.notify(q.port);
        }
    }

    private boolean deferPushes;

    /**
     * While on, submitted requests are written to the ring but not published; {@link #pushRaw} publishes all of them
     * with one update of req_prod (a frontend that batches, as blk-mq does with a plug).
     */
    public void deferPushes(boolean on) {
        deferPushes = on;
    }

    /** Overwrites the shared {@code req_prod} (a bogus producer) and kicks the backend. */
    public void setRequestProducer(int queue, int reqProd) throws IOException {
        Queue q = queues.get(queue);
        q.ring.buffer().putInt(SharedRingDescriptor.REQ_PROD_OFFSET, reqProd);
        evtchn.notify(q.port);
    }

    /**
     * Grants a fresh page of this guest to the backend (read-write) and returns the ref and the page's buffer, for
     * hand-made requests and indirect pages. The grant lives until {@link #close()}.
     */
    public int grantScratchPage(ByteBuffer[] pageOut) throws IOException {
        GuestPages p = guest.allocatePages(1);
        pageOut[0] = p.page(0);
        int ref = guest.grantAccess(0, p.frame(0), false);
        scratchGrants.add(ref);
        return ref;
    }

    private final List<Integer> scratchGrants = new ArrayList<>();

    /**
     * Releases this frontend's handles (event channels, xenstore connection) and ends its grants, without the
     * closing handshake. Idempotent.
     */
    @Override
    public void close() throws IOException {
        if (connected) {
            releaseRings();
        }
        for (int ref : scratchGrants) {
            endGrant(ref);
        }
        scratchGrants.clear();
        if (evtchn != null) {
            evtchn.close();
            evtchn = null;
        }
        xs.close();
    }
}
