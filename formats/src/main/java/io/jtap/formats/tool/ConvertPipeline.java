package io.jtap.formats.tool;

import io.jtap.formats.BlockStatus;
import io.jtap.formats.CompressedWrites;
import io.jtap.formats.Image;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The data path of {@code convert}: copies a source chain into a target image with parallel reads and zero detection
 * and ordered (or, with {@code -W}, out-of-order) writes, as {@code qemu-img convert} does.
 *
 * <p>{@code parallel} workers each loop: claim the next piece of the source, read it, wait for its turn (unless writes
 * may go out of order), write it, hand the turn on. Claiming walks the source by block status under one short lock:
 * ranges that read as zeros are skipped when the target already reads as zeros (a new sparse image), else become a
 * piece that is zeroed with {@link Image#writeZeroes}; ranges that are unallocated in the top layer are skipped with
 * {@code -B} (the target's backing file supplies them); data ranges become {@link #CHUNK_BYTES} pieces at absolute
 * chunk boundaries. A data range that ends inside a chunk is read up to the chunk's end, as qemu-img does: a source
 * fragmented by small holes then costs whole chunks, not one small piece per data extent, and the holes come out
 * sparse through zero detection all the same. A worker reads its chunk into its own direct buffer, splits it into
 * data and zero granules ({@code -S}, rounded up to the target's allocation unit so that a zero qcow2 cluster stays
 * unallocated), writes the data granules and skips or zeroes the zero granules. Each worker holds at most one piece,
 * so memory is bounded by {@code parallel * CHUNK_BYTES}, and there is no hand-off between threads besides the turn.
 *
 * <p>The first failure stops claiming, wakes waiting workers and is rethrown by {@link #run()}.
 */
final class ConvertPipeline {
    /** The IO size: large enough to amortise per-request costs, as qemu-img's 2 MiB buffer. */
    static final int CHUNK_BYTES = 2 << 20;
    private static final ByteBuffer ZEROS = ByteBuffer.allocateDirect(CHUNK_BYTES).asReadOnlyBuffer();

    /**
     * @param parallel      workers and chunks in flight ({@code -m})
     * @param outOfOrder    writes may complete in any order ({@code -W})
     * @param sparse        detect zeros ({@code -S} &gt; 0); when false, zero ranges are written as data
     * @param granularity   zero-detection unit in bytes, a power of two
     * @param targetIsZero  the target reads as zeros everywhere before the copy, so zeros need not be written
     * @param topLayerOnly  copy only what the source's top layer allocates ({@code -B})
     * @param compressor    the target, when its data units are to be compressed ({@code -c}): workers compress in
     *                      parallel, the ordered write stage only stores
     */
    record Settings(int parallel, boolean outOfOrder, boolean sparse, int granularity, boolean targetIsZero,
                    boolean topLayerOnly, Optional<CompressedWrites> compressor) {
        Settings {
            if (parallel < 1 || parallel > 64) {
                throw new ToolException(1, "Invalid number of coroutines: -m " + parallel
                        + " (allowed: 1 to 64)");
            }
            if (Integer.bitCount(granularity) != 1 || granularity > CHUNK_BYTES) {
                throw new IllegalArgumentException("granularity must be a power of two up to the chunk size: "
                        + "granularity=" + granularity);
            }
        }
    }

    private enum Kind { DATA, ZERO }

    /**
     * One claimed piece of the source: write sequence number, kind and range; for DATA, the block-status runs it is
     * made of, {kind (1 zero, 2 data), from, to}, in order and covering the range.
     */
    private record Piece(long seq, Kind kind, long from, long to, List<long[]> runs) {
    }

    private final ImageChain source;
    private final Image target;
    private final Settings settings;
    private final Progress progress;
    private final long size;
    private final AtomicReference<Throwable> failure = new AtomicReference<>();
    /**
     * The ordered write stage: {@link #turn} is the sequence number allowed to write; a worker waiting for sequence
     * {@code s} waits on {@code turnSlots[s % parallel]}, and ending a turn wakes only the next one's slot (each
     * worker holds at most one piece, so waiting sequences have distinct slots): a turn handed over is one wake-up,
     * not one per waiting worker.
     */
    private final Object[] turnSlots;
    private volatile long turn;

    /** Guards the claim state below. */
    private final Object claimLock = new Object();
    /** Where the next claim starts. */
    private long cursor;
    /** The next piece's sequence number. */
    private long nextSeq;
    /** The block-status run that {@link #cursor} lies in: {kind (0 skip, 1 zero, 2 data), end}; end -1 when none. */
    private final long[] run = {0, -1};

    ConvertPipeline(ImageChain source, Image target, Settings settings, Progress progress) {
        this.source = source;
        this.target = target;
        this.settings = settings;
        this.progress = progress;
        this.size = source.top().image().size();
        this.turnSlots = new Object[settings.parallel()];
        for (int i = 0; i < turnSlots.length; i++) {
            turnSlots[i] = new Object();
        }
    }

    /** Copies everything; on return all writes have completed (not yet flushed). */
    void run() throws IOException {
        int parallel = settings.parallel();
        Thread[] workers = new Thread[parallel];
        for (int i = 0; i < parallel; i++) {
            workers[i] = new Thread(this::workLoop, "jtap-img-convert-" + i);
            workers[i].setDaemon(true);
            workers[i].start();
        }
        try {
            for (Thread w : workers) {
                w.join();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            fail(new InterruptedIOException("convert interrupted"));
            for (Thread w : workers) {
                w.interrupt();
            }
        }
        Throwable t = failure.get();
        if (t instanceof IOException io) {
            throw io;
        } else if (t instanceof RuntimeException re) {
            throw re;
        } else if (t instanceof Error er) {
            throw er;
        } else if (t != null) {
            throw new IOException(t);
        }
    }

    /** A worker: claims and copies pieces until the source is done or something failed. */
    private void workLoop() {
        ByteBuffer buf = null;
        try {
            for (Piece p = claim(); p != null && failure.get() == null; p = claim()) {
                if (p.kind() == Kind.DATA && buf == null) {
                    buf = ByteBuffer.allocateDirect(CHUNK_BYTES);
                }
                work(p, buf);
            }
        } catch (InterruptedException e) {
            fail(new InterruptedIOException("convert interrupted"));
        } catch (Throwable t) {
            fail(t);
        }
    }

    /**
     * The next piece to copy, skipping what needs no writing; null when the source is done. Under
     * {@link #claimLock}, so that pieces get sequence numbers in source order.
     */
    private Piece claim() throws IOException {
        synchronized (claimLock) {
            while (cursor < size && failure.get() == null) {
                long off = cursor;
                if (run[1] <= off) {
                    nextRun(off);
                }
                long kind = run[0];
                long end = run[1];
                if (kind == 0 || kind == 1 && settings.targetIsZero() && settings.sparse()) {
                    progress.advance(end - off);
                    cursor = end;
                    continue;
                }
                if (kind == 1 && settings.sparse()) {
                    cursor = end;
                    return new Piece(nextSeq++, Kind.ZERO, off, end, List.of());
                }
                long chunkEnd = Math.min(size, (off / CHUNK_BYTES + 1) * CHUNK_BYTES);
                long to = Math.min(end, chunkEnd);
                List<long[]> runs = new ArrayList<>();
                runs.add(new long[] {2, off, to});
                // A short data extent: the piece goes on to the chunk's end through the runs that follow, zeros
                // (which stay zeros whatever -S says, as holes do in qemu-img) and data. Not with -B, whose
                // unallocated runs must not be read through, nor with -c, whose runs are aligned to its units.
                while (to < chunkEnd && !settings.topLayerOnly() && settings.compressor().isEmpty()) {
                    if (run[1] <= to) {
                        nextRun(to);
                    }
                    long k = run[0] == 1 && settings.sparse() ? 1 : 2;
                    long e = Math.min(run[1], chunkEnd);
                    long[] last = runs.get(runs.size() - 1);
                    if (last[0] == k) {
                        last[2] = e;
                    } else {
                        runs.add(new long[] {k, to, e});
                    }
                    to = e;
                }
                cursor = to;
                return new Piece(nextSeq++, Kind.DATA, off, to, runs);
            }
            return null;
        }
    }

    /** Under the claim lock: sets {@link #run} to the block-status run at {@code off}. */
    private void nextRun(long off) throws IOException {
        long[] r = nextRun(source.top().image(), off, size);
        long len = r[1];
        if (settings.compressor().isPresent()) {
            // Compressed units are whole: a run ending inside one ends at the unit's end (as data; the worker's zero
            // detection still skips zero units), or a zero run gives back its last part.
            long unit = settings.compressor().get().compressionUnit();
            long end = off + len;
            long down = end / unit * unit;
            if (end < size && end != down) {
                if (r[0] == 2 || down <= off) {
                    r[0] = 2;
                    end = Math.min(size, down + unit);
                } else {
                    end = down;
                }
                len = end - off;
            }
        }
        run[0] = r[0];
        run[1] = off + len;
    }

    /** {kind (0 skip, 1 zero, 2 data), length} of the run at {@code off}. */
    private long[] nextRun(Image top, long off, long size) throws IOException {
        if (settings.topLayerOnly()) {
            BlockStatus bs = top.blockStatus(off, size - off);
            return new long[] {switch (bs.kind()) {
                case UNALLOCATED -> 0;
                case ZERO -> 1;
                case DATA -> 2;
            }, bs.length()};
        }
        ImageChain.Status st = source.status(off, size - off);
        return new long[] {st.data() ? 2 : 1, st.length()};
    }

    private void fail(Throwable t) {
        if (failure.compareAndSet(null, t)) {
            for (Object slot : turnSlots) {
                synchronized (slot) {
                    slot.notifyAll();
                }
            }
        }
    }

    private void work(Piece piece, ByteBuffer buf) throws IOException, InterruptedException {
        long seq = piece.seq();
        long from = piece.from();
        long to = piece.to();
        if (piece.kind() == Kind.ZERO) {
            awaitTurn(seq);
            try {
                if (failure.get() == null) {
                    target.writeZeroes(from, to - from);
                }
            } finally {
                endTurn(seq);
            }
            progress.advance(to - from);
            return;
        }
        int len = (int) (to - from);
        buf.clear().limit(len);
        source.top().image().read(from, buf);
        buf.flip();
        List<long[]> segments = segments(buf, from, piece.runs());
        List<Optional<ByteBuffer>> compressed = compress(buf, from, segments);
        awaitTurn(seq);
        try {
            if (failure.get() != null) {
                return;
            }
            int unitIndex = 0;
            for (long[] s : segments) {
                int at = (int) (s[1] - from);
                int n = (int) (s[2] - s[1]);
                if (s[0] == 2 && settings.compressor().isPresent()) {
                    CompressedWrites cw = settings.compressor().get();
                    int unit = cw.compressionUnit();
                    for (int u = at; u < at + n; u += unit) {
                        Optional<ByteBuffer> c = compressed.get(unitIndex++);
                        if (c.isPresent()) {
                            cw.writeCompressedData(from + u, c.get());
                        } else {
                            target.write(from + u, buf.slice(u, Math.min(unit, at + n - u)));
                        }
                    }
                } else if (s[0] == 2) {
                    target.write(s[1], buf.slice(at, n));
                } else if (!settings.targetIsZero()) {
                    target.writeZeroes(s[1], n);
                }
            }
        } finally {
            endTurn(seq);
        }
        progress.advance(len);
    }

    /**
     * With {@code -c}: each data unit compressed (empty when compression does not shrink it), in segment order. Runs
     * in the worker, before its turn, so that units compress on all workers at once.
     */
    private List<Optional<ByteBuffer>> compress(ByteBuffer buf, long from, List<long[]> segments) throws IOException {
        if (settings.compressor().isEmpty()) {
            return List.of();
        }
        CompressedWrites cw = settings.compressor().get();
        int unit = cw.compressionUnit();
        List<Optional<ByteBuffer>> out = new ArrayList<>();
        for (long[] s : segments) {
            if (s[0] != 2) {
                continue;
            }
            int at = (int) (s[1] - from);
            int n = (int) (s[2] - s[1]);
            if (s[1] % unit != 0) {
                throw new IllegalStateException("compressed data segment not unit-aligned: offset=" + s[1]
                        + ", unit=" + unit);
            }
            for (int u = at; u < at + n; u += unit) {
                out.add(cw.compress(buf.slice(u, Math.min(unit, at + n - u))));
            }
        }
        return out;
    }

    /**
     * Splits the chunk into segments of data (kind 2) and zeros (kind 1): {kind, from, to}. Zero runs stay zero;
     * data runs are split into data and zero granules (granule boundaries are absolute, clipped to the run).
     */
    private List<long[]> segments(ByteBuffer buf, long from, List<long[]> runs) {
        List<long[]> out = new ArrayList<>();
        for (long[] r : runs) {
            if (r[0] == 1) {
                add(out, 1, r[1], r[2]);
                continue;
            }
            if (!settings.sparse()) {
                add(out, 2, r[1], r[2]);
                continue;
            }
            long g = settings.granularity();
            for (long a = r[1]; a < r[2]; ) {
                long b = Math.min(r[2], (a / g + 1) * g);
                int at = (int) (a - from);
                int n = (int) (b - a);
                add(out, buf.slice(at, n).mismatch(ZEROS.slice(0, n)) < 0 ? 1 : 2, a, b);
                a = b;
            }
        }
        return out;
    }

    private static void add(List<long[]> segments, long kind, long from, long to) {
        long[] last = segments.isEmpty() ? null : segments.get(segments.size() - 1);
        if (last != null && last[0] == kind) {
            last[2] = to;
        } else {
            segments.add(new long[] {kind, from, to});
        }
    }

    private void awaitTurn(long seq) throws InterruptedException {
        if (settings.outOfOrder()) {
            return;
        }
        if (turn == seq) {
            return;
        }
        Object slot = turnSlots[(int) (seq % turnSlots.length)];
        synchronized (slot) {
            while (turn != seq && failure.get() == null) {
                slot.wait();
            }
        }
    }

    private void endTurn(long seq) {
        if (settings.outOfOrder()) {
            return;
        }
        if (turn == seq) {
            turn = seq + 1;
        }
        Object next = turnSlots[(int) ((seq + 1) % turnSlots.length)];
        synchronized (next) {
            next.notifyAll();
        }
    }
}
