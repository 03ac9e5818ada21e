package io.jtap.formats.tool;

import java.io.PrintStream;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Progress of a long operation, in bytes. {@link Mode#BAR} ({@code -p}) redraws a bar on stderr five times a second;
 * {@link Mode#JSONL} ({@code --progress=jsonl}) prints one JSON object per line on stdout,
 * {@code {"done":...,"total":...,"percent":...}}, whenever the whole percentage changes and once at the end;
 * {@link #report()} prints one line in the current mode (SIGUSR1, as qemu-img does). Thread-safe.
 */
public final class Progress implements AutoCloseable {
    /** How progress is shown. */
    public enum Mode { NONE, BAR, JSONL }

    /** The bar's redraw interval: often enough to look live, rarely enough to cost nothing. */
    private static final long REDRAW_MS = 200;
    private static final int BAR_WIDTH = 40;

    private static volatile Progress current;

    private final Mode mode;
    private final PrintStream out;
    private final PrintStream err;
    private final AtomicLong done = new AtomicLong();
    private volatile long total;
    private final AtomicLong lastPercent = new AtomicLong(-1);
    private final Thread drawer;
    private volatile boolean closed;

    private Progress(Mode mode, long total, PrintStream out, PrintStream err) {
        this.mode = mode;
        this.total = total;
        this.out = out;
        this.err = err;
        if (mode == Mode.BAR) {
            drawer = new Thread(this::drawLoop, "jtap-img-progress");
            drawer.setDaemon(true);
            drawer.start();
        } else {
            drawer = null;
        }
        current = this;
    }

    public static Progress start(Mode mode, long total, PrintStream out, PrintStream err) {
        Progress p = new Progress(mode, total, out, err);
        if (mode == Mode.JSONL) {
            p.lastPercent.set(0);
            p.emitJson();
        }
        return p;
    }

    /** The most recently started progress, for the SIGUSR1 handler; null before any. */
    static Progress current() {
        return current;
    }

    public void setTotal(long value) {
        total = value;
    }

    /** Counts {@code bytes} more as done. */
    public void advance(long bytes) {
        long d = done.addAndGet(bytes);
        if (mode == Mode.JSONL) {
            long pct = percentTimes100(d) / 100;
            long last = lastPercent.get();
            if (pct > last && lastPercent.compareAndSet(last, pct)) {
                emitJson();
            }
        }
    }

    public long done() {
        return done.get();
    }

    private long percentTimes100(long d) {
        long t = total;
        return t <= 0 ? 10000 : Math.min(10000, (long) (d * 10000.0 / t));
    }

    /** Prints one progress line now (SIGUSR1): JSON in JSONL mode, else qemu-img's "(45.00/100%)" on stderr. */
    public void report() {
        if (mode == Mode.JSONL) {
            emitJson();
        } else {
            long p = percentTimes100(done.get());
            err.printf("    (%d.%02d/100%%)%n", p / 100, p % 100);
            err.flush();
        }
    }

    /** Reads {@code done} under the output lock, so that lines from racing workers come out in order. */
    private void emitJson() {
        synchronized (out) {
            long d = done.get();
            long p = percentTimes100(d);
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("done", d);
            m.put("total", total);
            m.put("percent", p / 100.0);
            out.println(Json.compact(m));
            out.flush();
        }
    }

    private void drawLoop() {
        while (!closed) {
            draw(false);
            try {
                Thread.sleep(REDRAW_MS);
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    private synchronized void draw(boolean last) {
        long p = percentTimes100(done.get());
        int filled = (int) (p * BAR_WIDTH / 10000);
        err.printf("\r[%s%s] %3d.%02d%%  %s / %s%s", "#".repeat(filled), " ".repeat(BAR_WIDTH - filled), p / 100,
                p % 100, ByteSizes.format(Math.min(done.get(), total)), ByteSizes.format(total), last ? "\n" : "");
        err.flush();
    }

    /** Marks the end: the final bar or JSON line shows everything done that was counted. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (drawer != null) {
            drawer.interrupt();
            try {
                drawer.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            draw(true);
        }
        if (mode == Mode.JSONL && lastPercent.get() < 100) {
            emitJson();
        }
        if (current == this) {
            current = null;
        }
    }
}
