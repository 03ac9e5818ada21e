package io.jtap.blkback;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * A guest that triggers a thousand warnings gets {@value RateLimitedLog#BURST} lines per interval, the rest counted.
 */
class RateLimitedLogTest {
    @Test
    void burstThenSuppressed() {
        RateLimitedLog log = new RateLimitedLog(7, "vbd/7/51712");
        for (int i = 0; i < 1000; i++) {
            log.warn("bad request " + i);
        }
        assertEquals(1000 - RateLimitedLog.BURST, log.suppressed());
    }
}
