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
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The data path of {@code convert}: copies a source chain into a target image with parallel reads and zero detection
 * and ordered (or, with {@code -W}, out-of-order) writes, as {@code qemu-img convert} does.
 *
 * <p>The dispatcher (the calling thread) walks the source by block status: ranges that read as zeros are skipped when
 * the target already reads as zeros (a new sparse image), else zeroed with {@link Image#writeZeroes}; ranges that are
 * unallocated in the top layer are skipped with {@code -B} (the target's backing file supplies them); data ranges are
 * cut into {@link #CHUNK_BYTES} chunks at absolute chunk boundaries and handed to {@code parallel} workers. A worker
 * reads its chunk into a pooled direct buffer, splits it into data and zero granules ({@code -S}, rounded up to the
 * target's allocation unit so that a zero qcow2 cluster stays unallocated), waits for its turn unless writes may go
 * out of order, writes the data granules and skips or zeroes the zero granules. At most {@code parallel} chunks are
 * in flight, so memory is bounded by {@code parallel * CHUNK_BYTES}.
 *
 * <p>The first failure stops dispatching, wakes waiting workers and is rethrown by {@link #run()}.
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

    private final ImageChain source;
    private final Image target;
    private final Settings settings;
    private final Progress progress;
    private final AtomicReference<Throwable> failure = new AtomicReference<>();
    /**
     * The ordered write stage: {@link #turn} is the sequence number allowed to write; a worker waiting for sequence
     * {@code s} waits on {@code turnSlots[s % parallel]}, and ending a turn wakes only the next one's slot (at most
     * {@code parallel} chunks are in flight, so waiting sequences have distinct slots): a turn handed over is one
     * wake-up, not one per waiting worker.
     */
    private final Object[] turnSlots;
    private volatile long turn;

    ConvertPipeline(ImageChain source, Image target, Settings settings, Progress progress) {
        this.source = source;
        this.target = target;
        this.settings = settings;
        this.progress = progress;
        this.turnSlots = new Object[settings.parallel()];
        for (int i = 0; i < turnSlots.length; i++) {
            turnSlots[i] = new Object();
        }
    }

    /** Copies everything; on return all writes have completed (not yet flushed). */
    void run() throws IOException {
        Image top = source.top().image();
        long size = top.size();
        int parallel = settings.parallel();
        ExecutorService pool = Executors.newFixedThreadPool(parallel, r -> {
            Thread t = new Thread(r, "jtap-img-convert");
            t.setDaemon(true);
            return t;
        });
        Semaphore inFlight = new Semaphore(parallel);
        BlockingQueue<ByteBuffer> buffers = new ArrayBlockingQueue<>(parallel);
        for (int i = 0; i < parallel; i++) {
            buffers.add(ByteBuffer.allocateDirect(CHUNK_BYTES));
        }
        long seq = 0;
        try {
            for (long off = 0; off < size && failure.get() == null; ) {
                long[] run = nextRun(top, off, size);
                long len = run[1];
                if (settings.compressor().isPresent()) {
                    // Compressed units are whole: a run ending inside one ends at the unit's end (as data; the
                    // worker's zero detection still skips zero units), or a zero run gives back its last part.
                    long unit = settings.compressor().get().compressionUnit();
                    long end = off + len;
                    long down = end / unit * unit;
                    if (end < size && end != down) {
                        if (run[0] == 2 || down <= off) {
                            run[0] = 2;
                            end = Math.min(size, down + unit);
                        } else {
                            end = down;
                        }
                        len = end - off;
                    }
                }
                if (run[0] == 0) {
                    progress.advance(len);
                } else if (run[0] == 1 && settings.targetIsZero() && settings.sparse()) {
                    progress.advance(len);
                } else {
                    Kind kind = run[0] == 1 && settings.sparse() ? Kind.ZERO : Kind.DATA;
                    for (long a = off; a < off + len && failure.get() == null; ) {
                        long b = kind == Kind.ZERO ? off + len
                                : Math.min(off + len, (a / CHUNK_BYTES + 1) * CHUNK_BYTES);
                        long mySeq = seq++;
                        long from = a;
                        inFlight.acquire();
                        pool.execute(() -> {
                            try {
                                work(mySeq, kind, from, b, buffers);
                            } catch (Throwable t) {
                                fail(t);
                            } finally {
                                inFlight.release();
                            }
                        });
                        a = b;
                    }
                }
                off += len;
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            fail(new InterruptedIOException("convert interrupted"));
        } finally {
            pool.shutdown();
            try {
                while (!pool.awaitTermination(1, TimeUnit.SECONDS)) {
                    // workers finish their chunk or see the failure and stop
                }
            } catch (InterruptedException e) {
                pool.shutdownNow();
                Thread.currentThread().interrupt();
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

    private void work(long seq, Kind kind, long from, long to, BlockingQueue<ByteBuffer> buffers)
            throws IOException, InterruptedException {
        if (failure.get() != null) {
            return;
        }
        if (kind == Kind.ZERO) {
            awaitTurn(seq);
            try {
                target.writeZeroes(from, to - from);
            } finally {
                endTurn(seq);
            }
            progress.advance(to - from);
            return;
        }
        ByteBuffer buf = buffers.take();
        try {
            int len = (int) (to - from);
            buf.clear().limit(len);
            source.top().image().read(from, buf);
            buf.flip();
            List<long[]> segments = segments(buf, from);
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
        } finally {
            buffers.put(buf);
        }
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

    /** Splits the chunk into runs of data (kind 2) and zero (kind 1) granules: {kind, from, to}. */
    private List<long[]> segments(ByteBuffer buf, long from) {
        List<long[]> out = new ArrayList<>();
        long to = from + buf.remaining();
        if (!settings.sparse()) {
            out.add(new long[] {2, from, to});
            return out;
        }
        long g = settings.granularity();
        for (long a = from; a < to; ) {
            long b = Math.min(to, (a / g + 1) * g);
            int at = (int) (a - from);
            int n = (int) (b - a);
            long kind = buf.slice(at, n).mismatch(ZEROS.slice(0, n)) < 0 ? 1 : 2;
            long[] last = out.isEmpty() ? null : out.get(out.size() - 1);
            if (last != null && last[0] == kind) {
                last[2] = b;
            } else {
                out.add(new long[] {kind, a, b});
            }
            a = b;
        }
        return out;
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
