package io.jtap.blkback;

import io.jtap.aio.BlockIoEngine;
import io.jtap.aio.IoVector;
import io.jtap.formats.Extent;
import io.jtap.formats.Image;
import io.jtap.formats.WriteMapping;
import io.jtap.formats.internal.Zeros;
import io.jtap.formats.raw.RawImage;
import io.jtap.ring.BackRing;
import io.jtap.ring.RingOverflowException;
import io.jtap.ring.blkif.Blkif;
import io.jtap.ring.blkif.BlkifAbi;
import io.jtap.ring.blkif.BlkifResponseDescriptor;
import io.jtap.ring.blkif.BlkifSegmentDescriptor;
import io.jtap.xen.EventChannels;
import io.jtap.xen.GrantCopyBatch;
import io.jtap.xen.GrantMapping;
import io.jtap.xen.GrantStatus;
import io.jtap.xen.GrantTable;
import io.jtap.xen.GrantTableException;
import io.jtap.xen.linux.LibC;
import io.jtap.xen.linux.Syscalls;
import io.jtap.xen.linux.WakeupFd;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;

/**
 * The data path of one blkif ring (one queue of a device): its own thread runs a duty cycle ({@link #doWork()})
 * that copies requests off the ring once, validates the copy, reaches the guest's pages (persistent grant, batch
 * map, or grant copy; see {@link GrantMode}), and starts the IO: a read whose extents are all plain data (or zeros)
 * goes straight from the image's host file into the guest's pages through the queue's {@link BlockIoEngine}
 * (io_uring), submitted and reaped by this thread. A write is split in three: a worker reserves its extents
 * ({@code mapForWrite} may block), this thread submits the data IO to the engine, a worker completes the mapping
 * (metadata); for a raw image, whose mapping only computes, this thread does all three. A flush or barrier without data
 * and a plain discard of a raw image go to the engine too ({@code fdatasync}, {@code fallocate}). Everything else
 * (transformed and backing extents, other formats' flushes and discards, and whatever finds the engine full) runs on
 * the bounded worker pool, with the mapped pages still the IO buffers. Completions become responses pushed in batches
 * with {@code RING_PUSH_RESPONSES_AND_CHECK_NOTIFY}. Linux: {@code blkback.c}'s {@code xen_blkif_schedule} /
 * {@code __do_block_io_op} / {@code make_response}.
 *
 * <p>Ordering: reads and writes run concurrently, many in flight. A flush, barrier or discard is a fence: it is
 * dispatched only when everything consumed before it has completed, and holds back everything after it until it
 * completes, so a flush's response is sent only once every earlier completed write is durable.
 *
 * <p>The guest is untrusted: nothing it writes makes this loop throw. A bad request gets an error response; a bogus
 * producer index halts this ring only (no further requests are read) and tells the owner, which moves the device to
 * Closing. Guest-triggered log lines are rate-limited and name the domain and device.
 *
 * <p>Ownership: the queue owns its ring mapping, grant table, event-channel handle and persistent grants, and
 * releases them in {@link #close()}, after its thread has stopped and every request in flight has completed.
 */
final class BlkifQueue implements AutoCloseable {
    /** What the queue needs from its device. Called from the ring thread and workers. */
    interface Owner {
        Image image();

        /** The disk's size in 512-byte sectors, as advertised. */
        long sectors();

        boolean readOnly();

        boolean discardEnabled();

        /** This ring stopped reading requests because the frontend broke it; the device should close. */
        void ringHalted(BlkifQueue queue, String reason);
    }

    /** How long the ring thread sleeps in poll when idle before it looks at the clock again. */
    private static final int IDLE_POLL_MS = 100;
    /**
     * Data IO prepared in one pass above which the ring thread submits and answers before it dispatches more: four
     * 64 KiB requests go in one system call, a 1 MiB request alone.
     */
    private static final long SUBMIT_BYTES = 256 << 10;
    /**
     * Requests dispatched in one pass after which the ring thread submits and answers before it dispatches more: the
     * frontend, woken by the first answers, refills the ring while this thread serves the rest, instead of both
     * sides taking turns with a whole ring's worth (4 KiB reads at queue depth 32: 0.33 to 0.48 of pread in
     * {@code bench/README.md}).
     */
    private static final int SUBMIT_REQUESTS = 8;
    /**
     * How often the persistent grants are purged (Linux: {@code xen_blkif_lru_interval}, 100 ms): it bounds how many
     * pages a working set larger than the cache makes this ring unmap and remap per second.
     */
    private static final long PURGE_INTERVAL_NS = 100_000_000L;

    private final Owner owner;
    private final String name;
    private final int domid;
    private final int index;
    private final BlkifAbi abi;
    private final BackRing ring;
    private final GrantMapping ringMapping;
    private final GrantTable grants;
    private final EventChannels evtchn;
    private final int port;
    private final GrantMode mode;
    private final PersistentGrantCache persistent;
    private final GrantCopyBatch copyBatch;
    /** Persistent mode: copies the indirect pages that have no persistent grant (one ioctl, nothing mapped). */
    private final GrantCopyBatch indirectBatch;
    /** Persistent mode: the grants of the request being dispatched that have no persistent mapping. */
    private final int[] newRefs;
    /** Copy mode's private buffers: 8 MiB kept per ring at most. */
    private final BouncePool bounces = new BouncePool(8L << 20);
    private final int maxIndirectSegments;
    private final Executor workers;
    private final RateLimitedLog log;
    private final WakeupFd wakeup;
    /** Reads of DATA extents, or null when all IO goes to the worker pool. Owned. */
    private final BlockIoEngine engine;
    /** Every request object this queue made, indexed by {@link BlkifRequest#tag}: the engine's user data. */
    private final ArrayList<BlkifRequest> byTag = new ArrayList<>();
    /** Request objects not in use: reused, so that the data path allocates none per request. */
    private final ArrayDeque<BlkifRequest> freeRequests = new ArrayDeque<>();
    /** Engine operations submitted and not yet reaped. */
    private int engineOps;
    /** Operations prepared in the engine since the last {@link BlockIoEngine#submit()}: one submit per pass. */
    private boolean engineDirty;
    private final ConcurrentLinkedQueue<BlkifRequest> completed = new ConcurrentLinkedQueue<>();
    private final ArrayDeque<BlkifRequest> waiting = new ArrayDeque<>();
    private final ByteBuffer slot;
    /** The private copy of a request's indirect pages; direct, as a grant copy's destination must be. */
    private final ByteBuffer indirectCopy;
    private final int[] ports = new int[8];
    private final int[] pollFds;
    /** Whether the engine's completion fd may be readable although nothing is left to reap: reset before sleeping. */
    private boolean engineFdStale;
    private final CountDownLatch stopped = new CountDownLatch(1);
    private final Thread thread;

    private int inFlight;
    private boolean fenceInFlight;
    private boolean halted;
    /** Set once the last pass over the ring after a stop request was made. */
    private boolean drained;
    private boolean responsesWritten;
    /** Bytes of data IO prepared in the engine since its last submit. */
    private long unsubmittedBytes;
    /** Requests dispatched since the engine's last submit. */
    private int unsubmittedRequests;
    private long nextPurgeNs;
    /** When this pass of the ring thread began: the time persistent grants are stamped with as they are used. */
    private long passNanos;
    private volatile boolean stopping;
    private volatile long requestsServed;
    private volatile int persistentGrants;
    private volatile long engineReads;
    private volatile long engineWrites;
    private volatile long engineIos;
    /** Reads whose mapping needed metadata not in memory (or a busy lock) and went to a worker. */
    private volatile long mapsDeferred;
    /** Writes mapped on the ring thread ({@link Image#mapForWriteNow}), without a worker. */
    private volatile long writesMappedOnRing;
    /** Times this ring published responses (moved rsp_prod). */
    private volatile long responsePushes;
    private volatile long engineFences;
    private boolean closed;

    /**
     * Takes ownership of {@code ringMapping}, {@code grants} and {@code evtchn} (with {@code port} bound).
     *
     * @param mode   PERSISTENT only when both ends agreed on persistent grants
     * @param persistentBudget pages the persistent grants of this and other rings may take (borrowed)
     * @param engine the queue's block IO engine (owned from now on), or null for the worker pool only
     */
    BlkifQueue(Owner owner, String name, int domid, int index, BlkifAbi abi, int ringPageOrder,
               GrantMapping ringMapping, GrantTable grants, EventChannels evtchn, int port, GrantMode mode,
               BlkbackConfig config, PersistentGrantBudget persistentBudget, int maxIndirectSegments,
               Executor workers, RateLimitedLog log, BlockIoEngine engine) throws IOException {
        this.engine = engine;
        this.owner = owner;
        this.name = name;
        this.domid = domid;
        this.index = index;
        this.abi = abi;
        this.ringMapping = ringMapping;
        this.grants = grants;
        this.evtchn = evtchn;
        this.port = port;
        this.mode = mode;
        this.maxIndirectSegments = maxIndirectSegments;
        this.workers = workers;
        this.log = log;
        this.ring = BackRing.attach(ringMapping.buffer(), ringPageOrder, abi.entryLength());
        this.persistent = mode == GrantMode.PERSISTENT
                ? new PersistentGrantCache(grants, domid, config.maxPersistentGrants(),
                        config.persistentIdle().toNanos(), persistentBudget)
                : null;
        int maxSegments = Math.max(Blkif.BLKIF_MAX_SEGMENTS_PER_REQUEST, maxIndirectSegments);
        this.copyBatch = mode == GrantMode.COPY ? new GrantCopyBatch(maxSegments) : null;
        this.indirectBatch = mode == GrantMode.PERSISTENT
                ? new GrantCopyBatch(Blkif.BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST) : null;
        this.newRefs = mode == GrantMode.PERSISTENT
                ? new int[maxSegments + Blkif.BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST] : null;
        this.slot = ByteBuffer.allocate(abi.entryLength());
        this.indirectCopy = ByteBuffer.allocateDirect(maxSegments * BlkifSegmentDescriptor.LENGTH);
        this.wakeup = new WakeupFd();
        this.pollFds = engine == null ? new int[] {evtchn.fd(), wakeup.fd()}
                : new int[] {evtchn.fd(), wakeup.fd(), engine.completionFd()};
        this.thread = new Thread(this::run, "jtap-blkif-" + name + "-q" + index);
        this.thread.setDaemon(true);
    }

    void start() {
        thread.start();
    }

    int index() {
        return index;
    }

    /** Responses sent so far (for tests and statistics). */
    long requestsServed() {
        return requestsServed;
    }

    /** Reads served through the block IO engine (for tests and statistics). */
    long engineReads() {
        return engineReads;
    }

    /** Writes whose data went through the block IO engine. */
    long engineWrites() {
        return engineWrites;
    }

    /** Flushes and discards sent to the engine (raw images). */
    long engineFences() {
        return engineFences;
    }

    /** Vectored IOs (readv and writev) submitted to the engine: one per contiguous host extent of a request. */
    long engineIos() {
        return engineIos;
    }

    long responsePushes() {
        return responsePushes;
    }

    long mapsDeferred() {
        return mapsDeferred;
    }

    long writesMappedOnRing() {
        return writesMappedOnRing;
    }

    /** Pages mapped persistently now (0 unless in persistent mode). */
    int persistentGrants() {
        return persistentGrants;
    }

    /** Stops reading requests; requests already read are finished and answered. Thread-safe, idempotent. */
    void requestStop() {
        stopping = true;
        wakeup.signal();
    }

    /** Waits for the ring thread to finish after {@link #requestStop()}; true at once for a queue never started. */
    boolean awaitStopped(long timeout, TimeUnit unit) throws InterruptedException {
        return thread.getState() == Thread.State.NEW || stopped.await(timeout, unit);
    }

    private void run() {
        try {
            while (true) {
                int work;
                try {
                    work = doWork();
                } catch (Throwable t) {
                    // A bug, not the guest: stop reading this ring but keep finishing what is in flight.
                    halt("internal error: " + t);
                    work = 1;
                }
                if (stopping && inFlight == 0 && waiting.isEmpty() && completed.isEmpty()) {
                    break;
                }
                if (work == 0) {
                    idle();
                }
            }
        } catch (Throwable t) {
            log.warn("ring thread died: queue=" + index + ", error=" + t);
        } finally {
            stopped.countDown();
        }
    }

    /**
     * One pass: reap completions, read new requests, dispatch what may go, push responses.
     *
     * @return how much was done; 0 when idle
     */
    int doWork() throws IOException {
        passNanos = System.nanoTime();
        int work = reapCompletions();
        work += reapEngine();
        // What is done is published before new IO starts: a page-cache read completes inside the submit below.
        pushResponses();
        if (!halted && !drained) {
            // On stop, one last pass: what the frontend published before the stop is answered, not dropped.
            if (stopping) {
                drained = true;
            }
            work += consumeRequests();
        }
        work += dispatchWaiting();
        submitEngine();
        work += reapEngine();
        pushResponses();
        if (persistent != null) {
            long now = passNanos;
            if (now - nextPurgeNs > 0) {
                nextPurgeNs = now + PURGE_INTERVAL_NS;
                try {
                    persistent.purge(now);
                } catch (IOException e) {
                    log.warn("queue=" + index + ": unmapping persistent grants failed: " + e.getMessage());
                }
                persistentGrants = persistent.size();
            }
        }
        return work;
    }

    /** Publishes the responses written since the last push and kicks the frontend if it asked for it. */
    private void pushResponses() throws IOException {
        if (responsesWritten) {
            responsesWritten = false;
            responsePushes++;
            if (ring.pushResponsesAndCheckNotify()) {
                evtchn.notify(port);
            }
        }
    }

    /**
     * Reaps the engine's completions when there are any, without a system call: the check reads the completion queue,
     * and the completion fd's readiness is reset only before the thread sleeps ({@link #idle}).
     */
    private int reapEngine() throws IOException {
        if (engine == null || engineOps == 0 || !engine.completionsReady()) {
            return 0;
        }
        int n = engine.reapReady(engineCompleted);
        engineFdStale |= n > 0;
        return n;
    }

    /** Starts what this pass prepared in the engine, in one system call. */
    private void submitEngine() {
        if (!engineDirty) {
            return;
        }
        try {
            engine.submit();
            engineDirty = false;
            unsubmittedBytes = 0;
            unsubmittedRequests = 0;
        } catch (IOException | RuntimeException e) {
            // The prepared operations stay queued in the engine; the next pass tries again.
            log.warn("queue=" + index + ": engine submit failed, retrying: " + e.getMessage());
        }
    }

    private BlkifRequest newRequest() {
        BlkifRequest r = freeRequests.poll();
        if (r == null) {
            r = new BlkifRequest(maxIndirectSegments, byTag.size());
            byTag.add(r);
        }
        return r;
    }

    private void idle() throws IOException {
        if (!halted && !stopping && ring.finalCheckForRequests()) {
            return;
        }
        if (!completed.isEmpty() || (stopping && inFlight == 0)) {
            return;
        }
        if (engineFdStale) {
            // Completions were reaped (or the fd woke us) since its last reset: reset it, or poll returns at once.
            // One posted since the last reap no longer makes it readable, so look at the queue once more.
            engineFdStale = false;
            engine.resetCompletionFd();
            if (engine.completionsReady()) {
                return;
            }
        }
        long ready = Syscalls.pollIn(pollFds, IDLE_POLL_MS);
        if ((ready & 1) != 0) {
            // An event delivered: read which ports fired (each stays masked until unmasked).
            int n = evtchn.pending(ports);
            for (int i = 0; i < n; i++) {
                evtchn.unmask(ports[i]);
            }
        }
        if ((ready & 2) != 0) {
            wakeup.drain();
        }
        if ((ready & 4) != 0) {
            engineFdStale = true;
        }
    }

    private int consumeRequests() {
        int n;
        try {
            n = ring.pollRequests();
        } catch (RingOverflowException e) {
            halt("bogus request producer, ring halted: " + e.getMessage());
            return 1;
        }
        for (int i = 0; i < n; i++) {
            ring.copyRequest(slot, 0);
            BlkifRequest r = newRequest();
            r.decode(slot, abi, maxIndirectSegments);
            if (r.status == Blkif.BLKIF_RSP_OKAY && r.indirect) {
                readIndirectSegments(r);
            }
            validate(r);
            if (r.status != Blkif.BLKIF_RSP_OKAY) {
                log.warn("queue=" + index + ": " + r.error + ": " + r);
                respond(r);
            } else {
                waiting.add(r);
            }
        }
        return n;
    }

    private void readIndirectSegments(BlkifRequest r) {
        if (persistent != null) {
            if (readIndirectSegmentsPersistent(r)) {
                r.decodeIndirectSegments(indirectCopy);
            }
            return;
        }
        int[] refs = Arrays.copyOf(r.indirectGrefs, r.nrIndirectPages);
        try (GrantMapping pages = grants.map(domid, refs, false)) {
            // Copy once: the guest may change its indirect pages while we look.
            indirectCopy.put(0, pages.buffer(), 0, r.nrSegments * BlkifSegmentDescriptor.LENGTH);
        } catch (IOException | RuntimeException e) {
            r.fail(Blkif.BLKIF_RSP_ERROR, "cannot map indirect pages: grefs=" + Arrays.toString(refs) + ", error="
                    + e.getMessage());
            return;
        }
        r.decodeIndirectSegments(indirectCopy);
    }

    /**
     * Copies the indirect pages (once: the guest may change them while we look) through their persistent grants,
     * and those without one with a grant copy: one ioctl for all of them, with no map, {@code munmap} or TLB
     * shoot-down. Linux blkback maps them instead, in a map call of their own, since the data pages' grants are only
     * known once the indirect pages are read; here a copied page becomes persistent later, in the request's one map
     * call with its data pages ({@link #mapNewGrants}), when there is room. blkfront takes indirect and data pages
     * from one pool of grants, so such a page may come back as either.
     *
     * @return false, with the request failed, when a copy was refused
     */
    private boolean readIndirectSegmentsPersistent(BlkifRequest r) {
        long now = passNanos;
        int left = r.nrSegments * BlkifSegmentDescriptor.LENGTH;
        indirectBatch.clear();
        for (int i = 0; i < r.nrIndirectPages; i++) {
            int len = Math.min(left, GrantTable.PAGE_SIZE);
            left -= len;
            PersistentGrantCache.Entry e = persistent.acquire(r.indirectGrefs[i], now);
            if (e != null) {
                indirectCopy.put(i * GrantTable.PAGE_SIZE, e.page, 0, len);
                persistent.release(e);
            } else {
                indirectBatch.copyFromForeign(domid, r.indirectGrefs[i], 0, indirectCopy, i * GrantTable.PAGE_SIZE,
                        len);
            }
        }
        if (indirectBatch.size() == 0) {
            return true;
        }
        try {
            grants.copy(indirectBatch);
            checkCopy(indirectBatch);
        } catch (IOException | RuntimeException e) {
            r.fail(Blkif.BLKIF_RSP_ERROR, "cannot copy indirect pages: grefs="
                    + Arrays.toString(Arrays.copyOf(r.indirectGrefs, r.nrIndirectPages)) + ", error="
                    + e.getMessage());
            return false;
        }
        return true;
    }

    private void validate(BlkifRequest r) {
        if (r.status != Blkif.BLKIF_RSP_OKAY) {
            return;
        }
        if (r.isWrite() && owner.readOnly()) {
            r.fail(Blkif.BLKIF_RSP_ERROR, "write to a read-only device");
            return;
        }
        long sectors;
        if (r.ioOp == Blkif.BLKIF_OP_DISCARD) {
            if (!owner.discardEnabled()) {
                r.fail(Blkif.BLKIF_RSP_EOPNOTSUPP, "discard not offered");
                return;
            }
            sectors = r.discardSectors;
        } else {
            sectors = r.byteLength() >>> Blkif.SECTOR_SHIFT;
        }
        if (sectors == 0) {
            return;
        }
        long end = r.sector + sectors;
        long capacity = owner.sectors();
        if (r.sector < 0 || sectors < 0 || end < r.sector || end > capacity) {
            r.fail(Blkif.BLKIF_RSP_ERROR, "sectors beyond the disk: sector=" + Long.toUnsignedString(r.sector)
                    + ", sectors=" + Long.toUnsignedString(sectors) + ", capacity=" + capacity);
        }
    }

    private int dispatchWaiting() {
        int n = 0;
        while (!waiting.isEmpty() && !fenceInFlight) {
            BlkifRequest r = waiting.peek();
            if (r.isFence() && inFlight > 0) {
                break;
            }
            waiting.poll();
            dispatch(r);
            n++;
            if (unsubmittedBytes >= SUBMIT_BYTES || ++unsubmittedRequests >= SUBMIT_REQUESTS) {
                // Start these requests' IO and answer what is done before taking more, so that the frontend refills
                // the ring while this thread serves the rest (a page-cache read completes inside the submit).
                submitEngine();
                try {
                    reapEngine();
                    pushResponses();
                } catch (IOException e) {
                    // The pass's own reap and push come next and retry.
                    log.warn("queue=" + index + ": reaping the engine failed: " + e.getMessage());
                }
            }
        }
        return n;
    }

    private void dispatch(BlkifRequest r) {
        try {
            reachGuestPages(r);
        } catch (IOException | RuntimeException e) {
            r.fail(Blkif.BLKIF_RSP_ERROR, "cannot reach the guest's pages: " + e.getMessage());
            log.warn("queue=" + index + ": " + r.error + ": " + r);
            releaseGuestPages(r);
            respond(r);
            return;
        }
        inFlight++;
        if (r.isFence()) {
            fenceInFlight = true;
        }
        if (engine != null && r.ioOp == Blkif.BLKIF_OP_READ && r.nrSegments > 0 && readThroughEngine(r)) {
            return;
        }
        if (engine != null && r.isFence() && r.nrSegments == 0 && fenceThroughEngine(r)) {
            return;
        }
        if (engine != null && r.ioOp == Blkif.BLKIF_OP_WRITE && r.nrSegments > 0 && writeNowThroughEngine(r)) {
            return;
        }
        try {
            workers.execute(() -> performIo(r));
        } catch (RejectedExecutionException e) {
            r.failure = e;
            completed.add(r);
        }
    }

    /**
     * Sends a flush or barrier without data, or a plain discard, of a raw image to the engine: {@code fdatasync}
     * (what {@link RawImage#flush()} does) or {@code fallocate(PUNCH_HOLE)} ({@link RawImage#discard}), without a trip
     * through the worker pool. Every earlier request has completed (this is a fence), so the flush covers every
     * write reaped before it, as the engine requires. Other formats keep their own flush (metadata first) on a
     * worker; secure discards (zeroing, with fallbacks) too.
     *
     * @return false, having done nothing, when the request must go to the worker pool instead
     */
    private boolean fenceThroughEngine(BlkifRequest r) {
        if (!(owner.image() instanceof RawImage raw) || engine.available() == 0) {
            return false;
        }
        boolean discard = r.ioOp == Blkif.BLKIF_OP_DISCARD;
        if (discard && (r.discardSecure || r.discardSectors == 0)) {
            return false;
        }
        try {
            int fd = raw.file().fd();
            if (discard) {
                engine.fallocate(fd, BlockIoEngine.FALLOCATE_PUNCH_HOLE, r.sector << Blkif.SECTOR_SHIFT,
                        r.discardSectors << Blkif.SECTOR_SHIFT, r.tag);
            } else {
                engine.fsync(fd, true, r.tag);
            }
        } catch (IOException | RuntimeException e) {
            return false;
        }
        r.phase = BlkifRequest.PHASE_ENGINE_FENCE;
        r.pendingOps = 1;
        engineOps++;
        engineDirty = true;
        engineFences++;
        return true;
    }

    /**
     * A write the image can map without waiting ({@link Image#mapForWriteNow}: any raw write, a qcow2 write into
     * clusters it already owns) skips both worker trips: the ring thread maps, submits the data IO and, on
     * completion, completes the mapping (which does not wait either) and answers, as for a read. A write that needs
     * an allocation, copy-on-write or metadata from disk goes to a worker for its mapping.
     *
     * @return false, having done nothing, when the write must take the general path
     */
    private boolean writeNowThroughEngine(BlkifRequest r) {
        WriteMapping m;
        try {
            m = owner.image().mapForWriteNow(r.sector << Blkif.SECTOR_SHIFT, ImageIo.total(r.pieces));
        } catch (IOException | RuntimeException e) {
            // The worker maps again and answers with the error.
            return false;
        }
        if (m == null) {
            return false;
        }
        r.writeMapping = m;
        r.phase = BlkifRequest.PHASE_MAPPED;
        r.completeOnRing = true;
        writesMappedOnRing++;
        writeThroughEngine(r);
        return true;
    }

    /** Sets {@link BlkifRequest#pieces}: the buffers the IO reads into or writes from. */
    private void reachGuestPages(BlkifRequest r) throws IOException {
        int n = r.nrSegments;
        r.pieces = r.piecesArray(n);
        if (n == 0) {
            return;
        }
        boolean toGuest = r.ioOp == Blkif.BLKIF_OP_READ;
        switch (mode) {
            case COPY -> {
                int length = (int) r.byteLength();
                r.bounceOwner = bounces.acquire(length);
                r.bounce = r.bounceOwner.slice(0, length);
                r.pieces = r.piecesArray(1);
                r.pieces[0] = r.bounce;
                r.pieceAddresses[0] = IoVector.addressOf(r.bounce);
                if (!toGuest) {
                    copyBatch.clear();
                    int at = 0;
                    for (int i = 0; i < n; i++) {
                        int len = (r.lastSect[i] - r.firstSect[i] + 1) << Blkif.SECTOR_SHIFT;
                        copyBatch.copyFromForeign(domid, r.grefs[i], r.firstSect[i] << Blkif.SECTOR_SHIFT, r.bounce,
                                at, len);
                        at += len;
                    }
                    grants.copy(copyBatch);
                    checkCopy(copyBatch);
                }
            }
            case PERSISTENT -> {
                r.persistent = r.persistentSlots;
                long now = passNanos;
                int missing = 0;
                for (int i = 0; i < n; i++) {
                    r.persistent[i] = persistent.acquire(r.grefs[i], now);
                    if (r.persistent[i] == null) {
                        newRefs[missing++] = r.grefs[i];
                    }
                }
                ByteBuffer batch = missing == 0 && !r.indirect ? null : mapNewGrants(r, missing, toGuest, now);
                persistentGrants = persistent.size();
                long batchAddress = batch == null ? 0 : IoVector.addressOf(batch);
                // Pages without a persistent grant are the batch's, in segment order.
                for (int i = 0, k = 0; i < n; i++) {
                    if (r.persistent[i] != null) {
                        setSegment(r, i, r.persistent[i].page, r.persistent[i].address, 0);
                    } else {
                        setSegment(r, i, batch, batchAddress, k++ * GrantTable.PAGE_SIZE);
                    }
                }
            }
            case MAP -> {
                r.batchMapping = grants.map(domid, Arrays.copyOf(r.grefs, n), toGuest);
                ByteBuffer pages = r.batchMapping.buffer();
                long base = IoVector.addressOf(pages);
                for (int i = 0; i < n; i++) {
                    setSegment(r, i, pages, base, i * GrantTable.PAGE_SIZE);
                }
            }
            default -> throw new IllegalStateException("grant mode: " + mode);
        }
    }

    /**
     * Maps a request's grants that have no persistent mapping ({@code newRefs[0, missing)}, in segment order) in one
     * {@link GrantTable#map} call (Linux: {@code xen_blkbk_map}). While the cache has room they become persistent
     * together with the request's indirect pages that are not yet (see {@link #readIndirectSegmentsPersistent}), and
     * the segments get their entries; otherwise they are mapped for this request only, writable only for a read,
     * and the purge of the next pass makes room. Nothing is unmapped here.
     *
     * @return the per-request mapping's buffer (page k = {@code newRefs[k]}), or null when all became persistent (or
     *         there were only indirect pages to add)
     */
    private ByteBuffer mapNewGrants(BlkifRequest r, int missing, boolean toGuest, long now) throws IOException {
        int count = missing;
        for (int i = 0; r.indirect && i < r.nrIndirectPages; i++) {
            if (!persistent.contains(r.indirectGrefs[i])) {
                newRefs[count++] = r.indirectGrefs[i];
            }
        }
        if (count == 0) {
            return null;
        }
        boolean kept;
        try {
            kept = persistent.mapNew(Arrays.copyOf(newRefs, count), now);
        } catch (GrantTableException e) {
            // A page the frontend granted read-only (a persistent mapping is writable): this request's own mapping
            // may still work.
            kept = false;
        }
        if (kept) {
            for (int i = 0; i < r.nrSegments; i++) {
                if (r.persistent[i] == null) {
                    r.persistent[i] = persistent.acquire(r.grefs[i], now);
                }
            }
            return null;
        }
        if (missing == 0) {
            return null;
        }
        r.batchMapping = grants.map(domid, Arrays.copyOf(newRefs, missing), toGuest);
        return r.batchMapping.buffer();
    }

    /**
     * Sets segment {@code i}'s piece to its sectors of the page at {@code pageBase} in {@code pages} (whose native
     * address is {@code pagesAddress}), and the piece's address.
     */
    private static void setSegment(BlkifRequest r, int i, ByteBuffer pages, long pagesAddress, int pageBase) {
        r.pieces[i] = segmentSlice(pages, pageBase, r, i);
        r.pieceAddresses[i] = pagesAddress + pageBase + (r.firstSect[i] << Blkif.SECTOR_SHIFT);
    }

    private static ByteBuffer segmentSlice(ByteBuffer pages, int pageBase, BlkifRequest r, int i) {
        int first = r.firstSect[i] << Blkif.SECTOR_SHIFT;
        int len = (r.lastSect[i] - r.firstSect[i] + 1) << Blkif.SECTOR_SHIFT;
        if (pageBase == 0 && first == 0 && len == pages.capacity()) {
            // A whole single-page mapping (a persistent grant): the buffer itself, which the IO never moves.
            return pages;
        }
        return pages.slice(pageBase + first, len);
    }

    private static void checkCopy(GrantCopyBatch batch) throws IOException {
        int bad = batch.firstFailure();
        if (bad >= 0) {
            throw new IOException("grant copy failed: gref=" + Integer.toUnsignedString(batch.ref(bad))
                    + ", status=" + GrantStatus.name(batch.status(bad)));
        }
    }

    /** Runs on a worker thread. */
    private void performIo(BlkifRequest r) {
        try {
            Image image = owner.image();
            long offset = r.sector << Blkif.SECTOR_SHIFT;
            switch (r.ioOp) {
                case Blkif.BLKIF_OP_READ -> ImageIo.read(image, offset, r.pieces);
                case Blkif.BLKIF_OP_WRITE -> {
                    if (engine != null && r.phase == BlkifRequest.PHASE_IO) {
                        // Phase one here (it may block); the ring thread submits the data IO if it can.
                        WriteMapping m = image.mapForWrite(offset, ImageIo.total(r.pieces));
                        if (m.extents().stream().allMatch(e -> e.kind() == Extent.Kind.DATA)) {
                            r.writeMapping = m;
                            r.phase = BlkifRequest.PHASE_MAPPED;
                        } else {
                            ImageIo.writeMapped(image, m, r.pieces);
                        }
                    } else if (r.phase == BlkifRequest.PHASE_MAPPED) {
                        // The engine had no room: the data IO and completion here.
                        r.phase = BlkifRequest.PHASE_IO;
                        WriteMapping m = r.writeMapping;
                        r.writeMapping = null;
                        ImageIo.writeMapped(image, m, r.pieces);
                    } else if (r.phase == BlkifRequest.PHASE_WRITING) {
                        // The engine wrote the data: make it visible, or release the reservation.
                        r.phase = BlkifRequest.PHASE_IO;
                        WriteMapping m = r.writeMapping;
                        r.writeMapping = null;
                        if (r.failure == null) {
                            m.complete();
                        } else {
                            m.abort();
                        }
                    } else {
                        ImageIo.write(image, offset, r.pieces);
                    }
                }
                case Blkif.BLKIF_OP_WRITE_BARRIER, Blkif.BLKIF_OP_FLUSH_DISKCACHE -> {
                    // Everything before is complete (fence); make it durable, then the request's own data if it has
                    // any (Linux blkfront sends FUA writes as a barrier or flush with segments).
                    image.flush();
                    if (r.nrSegments > 0) {
                        ImageIo.write(image, offset, r.pieces);
                        image.flush();
                    }
                }
                case Blkif.BLKIF_OP_DISCARD -> {
                    long length = r.discardSectors << Blkif.SECTOR_SHIFT;
                    if (length > 0) {
                        if (r.discardSecure) {
                            image.writeZeroes(offset, length);
                        } else {
                            image.discard(offset, length);
                        }
                    }
                }
                default -> throw new IllegalStateException("operation: " + r.ioOp);
            }
        } catch (Throwable t) {
            if (r.failure == null) {
                r.failure = t;
            }
            if (r.writeMapping != null) {
                try {
                    r.writeMapping.abort();
                } catch (IOException | RuntimeException e) {
                    t.addSuppressed(e);
                }
                r.writeMapping = null;
                r.phase = BlkifRequest.PHASE_IO;
            }
        }
        completed.add(r);
        wakeup.signal();
    }

    private int reapCompletions() {
        int n = 0;
        BlkifRequest r;
        while ((r = completed.poll()) != null) {
            n++;
            if (r.phase == BlkifRequest.PHASE_MAPPED) {
                writeThroughEngine(r);
            } else {
                finish(r);
            }
        }
        return n;
    }

    /**
     * Submits the data IO of a write whose extents a worker reserved (all DATA): one vectored write per extent,
     * straight from the request's buffers. Without room in the engine the write goes back to a worker.
     */
    private void writeThroughEngine(BlkifRequest r) {
        List<Extent> extents = r.writeMapping.extents();
        if (extents.size() > engine.available() || r.pieces.length > engine.maxSegments()) {
            toWorker(r);
            return;
        }
        r.phase = BlkifRequest.PHASE_WRITING;
        int piece = 0;
        int pieceAt = 0;
        try {
            for (Extent e : extents) {
                IoVector v = engine.vector();
                long left = e.length();
                while (left > 0) {
                    ByteBuffer p = r.pieces[piece];
                    int n = (int) Math.min(left, p.remaining() - pieceAt);
                    v.add(r.pieceAddresses[piece] + p.position() + pieceAt, n);
                    left -= n;
                    pieceAt += n;
                    if (pieceAt == p.remaining()) {
                        piece++;
                        pieceAt = 0;
                    }
                }
                engine.writev(e.file().fd(), e.hostOffset(), v, r.tag);
                engineIos++;
                engineOps++;
                engineDirty = true;
                unsubmittedBytes += e.length();
                r.pendingOps++;
            }
            engineWrites++;
        } catch (IOException | RuntimeException ex) {
            r.failure = ex;
        }
        if (r.pendingOps == 0) {
            toWorker(r);
        }
    }

    /** Hands a request (back) to the worker pool; its phase says what the worker does. */
    private void toWorker(BlkifRequest r) {
        try {
            workers.execute(() -> performIo(r));
        } catch (RejectedExecutionException e) {
            // Only while the daemon shuts down: release the reservation and answer with an error.
            r.failure = e;
            if (r.writeMapping != null) {
                try {
                    r.writeMapping.abort();
                } catch (IOException | RuntimeException suppressed) {
                    e.addSuppressed(suppressed);
                }
                r.writeMapping = null;
            }
            r.phase = BlkifRequest.PHASE_IO;
            completed.add(r);
        }
    }

    /** A request's IO is over (worker or engine): copy out if needed, release the pages, respond. */
    private void finish(BlkifRequest r) {
        inFlight--;
        if (r.isFence()) {
            fenceInFlight = false;
        }
        if (r.failure != null) {
            r.fail(Blkif.BLKIF_RSP_ERROR, "IO failed: " + r.failure);
            log.warn("queue=" + index + ": " + r.error + ": " + r);
        } else if (mode == GrantMode.COPY && r.ioOp == Blkif.BLKIF_OP_READ && r.nrSegments > 0) {
            copyToGuest(r);
        }
        releaseGuestPages(r);
        respond(r);
    }

    /**
     * Starts a read through the engine when every extent of its range, with the parts that read from the backing
     * chain resolved in the backing images, is DATA or ZERO, and the engine has room: ZERO parts are filled here,
     * each DATA extent (of whichever image of the chain holds it) becomes one vectored read straight into the
     * request's buffers.
     *
     * @return false, having done nothing, when the read must go to the worker pool instead
     */
    private boolean readThroughEngine(BlkifRequest r) {
        try {
            return startEngineReads(r);
        } finally {
            resolvedExtents.clear();
        }
    }

    private boolean startEngineReads(BlkifRequest r) {
        long offset = r.sector << Blkif.SECTOR_SHIFT;
        List<Extent> extents = resolvedExtents;
        try {
            // Metadata already in memory only: a qcow2 L2 table to read, or an allocation holding the image's
            // metadata lock, sends the request to a worker instead of stalling every request of this ring.
            if (!resolveForRead(owner.image(), offset, ImageIo.total(r.pieces), 0)) {
                return false;
            }
        } catch (IOException | RuntimeException e) {
            return false;
        }
        int ops = 0;
        for (Extent e : extents) {
            if (e.kind() == Extent.Kind.DATA) {
                ops++;
            }
        }
        if (ops > engine.available() || r.pieces.length > engine.maxSegments()) {
            return false;
        }
        int piece = 0;
        int pieceAt = 0;
        try {
            for (Extent e : extents) {
                IoVector v = e.kind() == Extent.Kind.DATA ? engine.vector() : null;
                long left = e.length();
                while (left > 0) {
                    ByteBuffer p = r.pieces[piece];
                    int n = (int) Math.min(left, p.remaining() - pieceAt);
                    if (v != null) {
                        v.add(r.pieceAddresses[piece] + p.position() + pieceAt, n);
                    } else {
                        Zeros.fill(p.slice(p.position() + pieceAt, n));
                    }
                    left -= n;
                    pieceAt += n;
                    if (pieceAt == p.remaining()) {
                        piece++;
                        pieceAt = 0;
                    }
                }
                if (v != null) {
                    engine.readv(e.file().fd(), e.hostOffset(), v, r.tag);
                    engineIos++;
                    engineOps++;
                    engineDirty = true;
                    unsubmittedBytes += e.length();
                    r.pendingOps++;
                }
            }
            engineReads++;
        } catch (IOException | RuntimeException ex) {
            r.failure = ex;
        }
        if (r.pendingOps == 0) {
            finish(r);
        }
        return true;
    }

    /** The longest backing chain the ring thread resolves; a longer one is read by a worker. */
    private static final int MAX_CHAIN_ON_RING = 16;
    /** {@link #readThroughEngine}'s extents, reused: DATA and ZERO only, in guest order. */
    private final ArrayList<Extent> resolvedExtents = new ArrayList<>();

    /**
     * Appends the extents of {@code [offset, offset+length)} of {@code image} to {@link #resolvedExtents}, reading
     * BACKING parts from the backing image (recursively, a chain of any formats).
     *
     * @return false when a part cannot be read through the engine (TRANSFORMED: compressed or encrypted) or its
     *         mapping would wait (metadata not in memory), or the chain is longer than {@link #MAX_CHAIN_ON_RING}
     */
    private boolean resolveForRead(Image image, long offset, long length, int depth) throws IOException {
        List<Extent> extents = image.mapForReadNow(offset, length);
        if (extents == null) {
            mapsDeferred++;
            return false;
        }
        for (Extent e : extents) {
            switch (e.kind()) {
                case DATA, ZERO -> resolvedExtents.add(e);
                case BACKING -> {
                    Image backing = image.backingImage().orElse(null);
                    if (backing == null || depth >= MAX_CHAIN_ON_RING
                            || !resolveForRead(backing, e.offset(), e.length(), depth + 1)) {
                        return false;
                    }
                }
                default -> {
                    return false;
                }
            }
        }
        return true;
    }

    private final io.jtap.aio.CompletionHandler engineCompleted = this::engineCompleted;

    /** The engine's completion handler, on the ring thread. */
    private void engineCompleted(long tag, long result) {
        engineOps--;
        BlkifRequest r = tag >= 0 && tag < byTag.size() ? byTag.get((int) tag) : null;
        if (r == null || r.pendingOps == 0) {
            return;
        }
        if (r.phase == BlkifRequest.PHASE_ENGINE_FENCE) {
            r.phase = BlkifRequest.PHASE_IO;
            r.pendingOps = 0;
            // As RawImage.discard: a file system that cannot punch holes makes a discard a no-op, not an error.
            boolean unsupportedDiscard = r.ioOp == Blkif.BLKIF_OP_DISCARD && result == -LibC.EOPNOTSUPP;
            if (result < 0 && !unsupportedDiscard) {
                r.failure = new IOException((r.ioOp == Blkif.BLKIF_OP_DISCARD ? "fallocate" : "fdatasync")
                        + " failed: result=" + result);
            }
            finish(r);
            return;
        }
        if (result < 0 && r.failure == null) {
            r.failure = new IOException("read failed: result=" + result + (result == BlockIoEngine.SHORT_READ_AT_EOF
                    ? " (end of file)" : ""));
        }
        if (--r.pendingOps == 0) {
            if (r.phase == BlkifRequest.PHASE_WRITING && r.completeOnRing) {
                completeOnRing(r);
            } else if (r.phase == BlkifRequest.PHASE_WRITING) {
                toWorker(r);
            } else {
                finish(r);
            }
        }
    }

    /** Phase two of a raw write, which cannot block: complete (or abort) the mapping here and answer. */
    private void completeOnRing(BlkifRequest r) {
        WriteMapping m = r.writeMapping;
        r.writeMapping = null;
        r.phase = BlkifRequest.PHASE_IO;
        try {
            if (r.failure == null) {
                m.complete();
            } else {
                m.abort();
            }
        } catch (IOException | RuntimeException e) {
            if (r.failure == null) {
                r.failure = e;
            }
        }
        finish(r);
    }

    private void copyToGuest(BlkifRequest r) {
        try {
            copyBatch.clear();
            int at = 0;
            for (int i = 0; i < r.nrSegments; i++) {
                int len = (r.lastSect[i] - r.firstSect[i] + 1) << Blkif.SECTOR_SHIFT;
                copyBatch.copyToForeign(r.bounce, at, domid, r.grefs[i], r.firstSect[i] << Blkif.SECTOR_SHIFT, len);
                at += len;
            }
            grants.copy(copyBatch);
            checkCopy(copyBatch);
        } catch (IOException | RuntimeException e) {
            r.fail(Blkif.BLKIF_RSP_ERROR, "cannot copy to the guest's pages: " + e.getMessage());
            log.warn("queue=" + index + ": " + r.error + ": " + r);
        }
    }

    private void releaseGuestPages(BlkifRequest r) {
        if (r.persistent != null) {
            for (int i = 0; i < r.nrSegments; i++) {
                PersistentGrantCache.Entry e = r.persistent[i];
                if (e != null) {
                    persistent.release(e);
                    r.persistent[i] = null;
                }
            }
            r.persistent = null;
        }
        if (r.batchMapping != null) {
            try {
                r.batchMapping.close();
            } catch (IOException e) {
                log.warn("queue=" + index + ": unmap failed: " + e.getMessage());
            }
            r.batchMapping = null;
        }
        r.pieces = null;
        if (r.bounceOwner != null) {
            bounces.release(r.bounceOwner);
            r.bounceOwner = null;
        }
        r.bounce = null;
    }

    private void respond(BlkifRequest r) {
        int at = ring.nextResponseSlot();
        BlkifResponseDescriptor.put(ring.buffer(), at, r.id, r.ioOp, r.status);
        responsesWritten = true;
        requestsServed++;
        freeRequests.push(r);
    }

    private void halt(String reason) {
        if (halted) {
            return;
        }
        halted = true;
        log.warn("queue=" + index + ": " + reason);
        owner.ringHalted(this, reason);
    }

    /**
     * Stops the thread (draining what is in flight) and releases the ring, the channel and every mapping.
     * Idempotent.
     */
    @Override
    public void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        requestStop();
        if (thread.isAlive() || thread.getState() != Thread.State.NEW) {
            try {
                stopped.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted while draining ring: queue=" + index, e);
            }
        }
        IOException first = null;
        try (WakeupFd w = wakeup; GrantTable g = grants; EventChannels e = evtchn; GrantMapping m = ringMapping) {
            if (engine != null) {
                // Waits for reads still in the kernel before their pages are unmapped below.
                engine.close();
            }
            if (persistent != null) {
                persistent.close();
            }
            if (copyBatch != null) {
                copyBatch.close();
            }
            if (indirectBatch != null) {
                indirectBatch.close();
            }
            e.unbind(port);
        } catch (IOException ex) {
            first = ex;
        }
        if (first != null) {
            throw first;
        }
    }
}
