package io.jtap.blkback;

import java.lang.System.Logger;
import java.lang.System.Logger.Level;

/**
 * Log lines a guest can trigger, limited to {@link #BURST} per {@link #INTERVAL_NS} per instance (one per device),
 * so that a misbehaving frontend cannot flood the daemon's log. Each line is prefixed with the domain and device;
 * suppressed lines are counted and reported with the next line that gets through. Thread-safe.
 */
final class RateLimitedLog {
    /** Lines allowed per interval: enough to see what a guest did, few enough to stay readable. */
    static final int BURST = 10;
    static final long INTERVAL_NS = 5_000_000_000L;
    private static final Logger LOG = System.getLogger("io.jtap.blkback");

    private final String prefix;
    private long windowStartNs = System.nanoTime();
    private int inWindow;
    private long suppressed;

    RateLimitedLog(int domid, String device) {
        this.prefix = "domid=" + domid + ", device=" + device + ": ";
    }

    synchronized void warn(String message) {
        long now = System.nanoTime();
        if (now - windowStartNs > INTERVAL_NS) {
            windowStartNs = now;
            inWindow = 0;
        }
        if (inWindow >= BURST) {
            suppressed++;
            return;
        }
        inWindow++;
        String extra = suppressed > 0 ? " (" + suppressed + " similar lines suppressed)" : "";
        suppressed = 0;
        LOG.log(Level.WARNING, prefix + message + extra);
    }

    synchronized long suppressed() {
        return suppressed;
    }
}
