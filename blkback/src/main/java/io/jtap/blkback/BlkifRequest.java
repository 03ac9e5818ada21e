package io.jtap.blkback;

import io.jtap.ring.blkif.Blkif;
import io.jtap.ring.blkif.BlkifAbi;
import io.jtap.ring.blkif.BlkifDiscardRequestDescriptor;
import io.jtap.ring.blkif.BlkifIndirectRequestDescriptor;
import io.jtap.ring.blkif.BlkifRequestDescriptor;
import io.jtap.ring.blkif.BlkifSegmentDescriptor;
import io.jtap.xen.GrantMapping;

import java.nio.ByteBuffer;

/**
 * One guest request, decoded from the backend's private copy of its ring slot (never from shared memory), and the
 * resources the data path attaches to it while it is in flight. Linux: {@code struct pending_req}.
 *
 * <p>Decoding checks what can be checked without the disk: the operation, the segment count against the direct
 * limit ({@value Blkif#BLKIF_MAX_SEGMENTS_PER_REQUEST}) or the negotiated indirect limit, and each segment's
 * {@code first_sect <= last_sect <= 7}. A request that fails gets {@link #status} set and an {@link #error} text.
 *
 * <p>Confined to the ring thread, except that one worker thread runs its IO between dispatch and completion.
 */
final class BlkifRequest {
    /** The operation byte as the guest wrote it (echoed for unknown operations). */
    int operation;
    /** The operation to perform: {@code indirect_op} for an indirect request, else {@link #operation}. */
    int ioOp;
    long id;
    /** First 512-byte sector; unsigned in blkif, so a negative value is out of range. */
    long sector;
    int nrSegments;
    boolean indirect;
    int nrIndirectPages;
    final int[] indirectGrefs = new int[Blkif.BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
    final int[] grefs;
    final byte[] firstSect;
    final byte[] lastSect;
    long discardSectors;
    boolean discardSecure;

    /** {@code BLKIF_RSP_*} once decided; OKAY while the request is fine. */
    int status;
    String error;

    // --- data path state --------------------------------------------------------------------------------------
    /** The request's data in guest order, one buffer per segment (or one bounce buffer in copy mode). */
    ByteBuffer[] pieces;
    /**
     * The native address of index 0 of each of {@link #pieces}, for iovecs: found once per mapping, not per segment
     * (asking a direct buffer for its address is a JNI call and an allocation).
     */
    final long[] pieceAddresses;
    /** Per-request batch mapping of all segments (map mode, or persistent-cache overflow). */
    GrantMapping batchMapping;
    /** For each segment, the persistent grant it uses, or null. */
    PersistentGrantCache.Entry[] persistent;
    /** Copy mode: the private buffer the IO uses. */
    ByteBuffer bounce;
    /** The pooled buffer {@link #bounce} is a slice of. */
    ByteBuffer bounceOwner;
    /** Set by the worker or the engine's completion: the IO failure, or null. */
    Throwable failure;
    /** Engine operations of this request not yet reaped (reads and writes through io_uring). */
    int pendingOps;
    /** Where a write through the engine stands: {@link #PHASE_IO} unless between the phases below. */
    int phase;
    /** A worker reserved the write's extents; the ring thread submits the data IO. */
    static final int PHASE_MAPPED = 1;
    /** The ring thread's data IO is in the engine. */
    static final int PHASE_WRITING = 2;
    /** A flush or discard of a raw image is in the engine (one operation). */
    static final int PHASE_ENGINE_FENCE = 3;
    /** The plain phase: the request's IO runs, or ran, in one piece. */
    static final int PHASE_IO = 0;
    /** The write's mapping cannot block (a raw image): the ring thread completes it, no worker is involved. */
    boolean completeOnRing;
    /** The write's reservation, between {@link #PHASE_MAPPED} and its completion. */
    io.jtap.formats.WriteMapping writeMapping;

    /** This object's index in its queue, the engine's user data for its operations. */
    final int tag;
    /** Storage for {@link #persistent}, reused by every request this object carries. */
    final PersistentGrantCache.Entry[] persistentSlots;
    /** The last {@link #pieces} array handed out by {@link #piecesArray}, reused when the size repeats. */
    private ByteBuffer[] piecesCache = new ByteBuffer[0];

    /**
     * An object that carries one request at a time (the ring thread reuses it: {@link #decode} resets it).
     *
     * @param tag its index in its queue
     */
    BlkifRequest(int maxSegments, int tag) {
        int n = Math.max(maxSegments, Blkif.BLKIF_MAX_SEGMENTS_PER_REQUEST);
        this.tag = tag;
        grefs = new int[n];
        firstSect = new byte[n];
        lastSect = new byte[n];
        persistentSlots = new PersistentGrantCache.Entry[n];
        pieceAddresses = new long[n];
    }

    BlkifRequest(int maxSegments) {
        this(maxSegments, -1);
    }

    /** An array of {@code n} buffer slots for {@link #pieces}, reused while requests have the same segment count. */
    ByteBuffer[] piecesArray(int n) {
        if (piecesCache.length != n) {
            piecesCache = new ByteBuffer[n];
        }
        return piecesCache;
    }

    /** The data length in bytes: the sum of the segments' sectors times 512. */
    long byteLength() {
        long sectors = 0;
        for (int i = 0; i < nrSegments; i++) {
            sectors += lastSect[i] - firstSect[i] + 1;
        }
        return sectors << Blkif.SECTOR_SHIFT;
    }

    boolean isWrite() {
        return ioOp == Blkif.BLKIF_OP_WRITE || ioOp == Blkif.BLKIF_OP_WRITE_BARRIER
                || ioOp == Blkif.BLKIF_OP_FLUSH_DISKCACHE || ioOp == Blkif.BLKIF_OP_DISCARD;
    }

    /** Whether the request must wait for every earlier request to finish and hold back later ones. */
    boolean isFence() {
        return ioOp == Blkif.BLKIF_OP_WRITE_BARRIER || ioOp == Blkif.BLKIF_OP_FLUSH_DISKCACHE
                || ioOp == Blkif.BLKIF_OP_DISCARD;
    }

    void fail(int rspStatus, String why) {
        if (status == Blkif.BLKIF_RSP_OKAY) {
            status = rspStatus;
            error = why;
        }
    }

    /**
     * Decodes the private copy of a ring slot. For an indirect request only the header is decoded here; the caller
     * maps {@link #indirectGrefs} and calls {@link #decodeIndirectSegments}.
     *
     * @param maxIndirectSegments the negotiated limit, 0 when indirect requests were not offered
     */
    void decode(ByteBuffer slot, BlkifAbi abi, int maxIndirectSegments) {
        status = Blkif.BLKIF_RSP_OKAY;
        error = null;
        failure = null;
        pendingOps = 0;
        phase = PHASE_IO;
        writeMapping = null;
        completeOnRing = false;
        pieces = null;
        batchMapping = null;
        persistent = null;
        bounce = null;
        bounceOwner = null;
        indirect = false;
        nrSegments = 0;
        nrIndirectPages = 0;
        discardSectors = 0;
        discardSecure = false;
        BlkifRequestDescriptor rd = abi.request();
        operation = rd.operation(slot, 0);
        ioOp = operation;
        // id sits at the same offset in every request type of an ABI.
        id = rd.id(slot, 0);
        switch (operation) {
            case Blkif.BLKIF_OP_READ, Blkif.BLKIF_OP_WRITE, Blkif.BLKIF_OP_WRITE_BARRIER,
                 Blkif.BLKIF_OP_FLUSH_DISKCACHE -> decodeDirect(slot, rd);
            case Blkif.BLKIF_OP_DISCARD -> {
                BlkifDiscardRequestDescriptor dd = abi.discardRequest();
                sector = dd.sectorNumber(slot, 0);
                discardSectors = dd.nrSectors(slot, 0);
                discardSecure = (dd.flag(slot, 0) & Blkif.BLKIF_DISCARD_SECURE) != 0;
            }
            case Blkif.BLKIF_OP_INDIRECT -> decodeIndirectHeader(slot, abi.indirectRequest(), maxIndirectSegments);
            default -> fail(Blkif.BLKIF_RSP_EOPNOTSUPP, "unknown operation: operation=" + operation);
        }
    }

    private void decodeDirect(ByteBuffer slot, BlkifRequestDescriptor rd) {
        sector = rd.sectorNumber(slot, 0);
        int n = rd.nrSegments(slot, 0);
        boolean mayBeEmpty = operation == Blkif.BLKIF_OP_FLUSH_DISKCACHE || operation == Blkif.BLKIF_OP_WRITE_BARRIER;
        if (n > Blkif.BLKIF_MAX_SEGMENTS_PER_REQUEST || (n == 0 && !mayBeEmpty)) {
            fail(Blkif.BLKIF_RSP_ERROR, "bad segment count: operation=" + operation + ", nr_segments=" + n);
            return;
        }
        nrSegments = n;
        for (int i = 0; i < n; i++) {
            decodeSegment(slot, rd.segmentOffset(0, i), i);
        }
    }

    private void decodeIndirectHeader(ByteBuffer slot, BlkifIndirectRequestDescriptor id, int maxIndirectSegments) {
        indirect = true;
        ioOp = id.indirectOp(slot, 0);
        sector = id.sectorNumber(slot, 0);
        if (ioOp != Blkif.BLKIF_OP_READ && ioOp != Blkif.BLKIF_OP_WRITE) {
            fail(Blkif.BLKIF_RSP_ERROR, "bad indirect operation: indirect_op=" + ioOp);
            return;
        }
        int n = id.nrSegments(slot, 0);
        if (maxIndirectSegments == 0) {
            fail(Blkif.BLKIF_RSP_EOPNOTSUPP, "indirect request, not negotiated");
            return;
        }
        if (n == 0 || n > maxIndirectSegments) {
            fail(Blkif.BLKIF_RSP_ERROR, "bad indirect segment count: nr_segments=" + n + ", max="
                    + maxIndirectSegments);
            return;
        }
        nrSegments = n;
        nrIndirectPages = (n + Blkif.BLKIF_SEGMENTS_PER_INDIRECT_PAGE - 1) / Blkif.BLKIF_SEGMENTS_PER_INDIRECT_PAGE;
        for (int i = 0; i < nrIndirectPages; i++) {
            indirectGrefs[i] = id.indirectGref(slot, 0, i);
        }
    }

    /**
     * Decodes the segments of an indirect request from a private copy of its indirect pages (segment i at byte
     * {@code 8 * i}).
     */
    void decodeIndirectSegments(ByteBuffer privateCopy) {
        for (int i = 0; i < nrSegments && status == Blkif.BLKIF_RSP_OKAY; i++) {
            decodeSegment(privateCopy, i * BlkifSegmentDescriptor.LENGTH, i);
        }
    }

    private void decodeSegment(ByteBuffer buf, int offset, int i) {
        int first = BlkifSegmentDescriptor.firstSect(buf, offset);
        int last = BlkifSegmentDescriptor.lastSect(buf, offset);
        if (first > last || last >= Blkif.SECTORS_PER_PAGE) {
            fail(Blkif.BLKIF_RSP_ERROR, "bad segment: index=" + i + ", first_sect=" + first + ", last_sect=" + last);
            return;
        }
        grefs[i] = BlkifSegmentDescriptor.gref(buf, offset);
        firstSect[i] = (byte) first;
        lastSect[i] = (byte) last;
    }

    @Override
    public String toString() {
        return "request[id=" + Long.toUnsignedString(id) + ", operation=" + operation + ", io_op=" + ioOp
                + ", sector=" + Long.toUnsignedString(sector) + ", nr_segments=" + nrSegments + "]";
    }
}
