package io.jtap.netback;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Linux's credit semantics (tx_credit_exceeded, tx_add_credit) on an explicit clock. */
class CreditLimiterTest {
    private static final long MS = 1_000_000;

    @Test
    void creditIsSpentAndRefilledPerWindow() {
        CreditLimiter c = new CreditLimiter(3000, 10_000, 0); // 3000 bytes per 10 ms
        for (int i = 0; i < 3; i++) {
            assertFalse(c.exceeded(1000, 0));
            c.consume(1000);
        }
        assertTrue(c.exceeded(1000, 0));
        assertEquals(10 * MS, c.retryAtNs());
        assertTrue(c.exceeded(1000, 9 * MS), "still waiting for the timer");
        assertFalse(c.exceeded(1000, 10 * MS));
        assertEquals(3000, c.remainingCredit(), "refilled to creditBytes, not beyond");
    }

    @Test
    void unusedCreditDoesNotAccumulateBeyondTheBurst() {
        CreditLimiter c = new CreditLimiter(3000, 10_000, 0);
        c.consume(2000);
        // Long idle: one refill at most, capped at max(next packet, creditBytes).
        assertFalse(c.exceeded(1500, 100 * MS));
        c.consume(1500);
        assertFalse(c.exceeded(1500, 100 * MS));
        c.consume(1500);
        assertTrue(c.exceeded(100, 100 * MS), "1000 + 3000 capped to 3000, now spent");
    }

    /** A packet bigger than creditBytes: the burst allowance grows to its size over two windows (Linux max_burst). */
    @Test
    void packetLargerThanTheCreditWaitsForTheBurstAllowance() {
        CreditLimiter c = new CreditLimiter(3000, 10_000, 0);
        c.consume(3000);
        assertTrue(c.exceeded(5000, 0));
        assertTrue(c.exceeded(5000, 10 * MS), "min(0 + 3000 + ..., 5000) = 3000 after one window");
        assertFalse(c.exceeded(5000, 20 * MS), "3000 + 3000 capped at the packet's 5000");
        c.consume(5000);
        assertEquals(0, c.remainingCredit());
    }

    @Test
    void burstIsCappedAt128KiB() {
        CreditLimiter c = new CreditLimiter(1000, 1000, 0);
        c.consume(1000);
        long t = 0;
        int windows = 0;
        while (c.exceeded(200_000, t)) {
            t += MS;
            windows++;
            if (windows > 1000) {
                break;
            }
        }
        assertTrue(windows > 1000, "a packet above 128 KiB never fits a 1000-byte credit");
        assertTrue(c.remainingCredit() <= CreditLimiter.MAX_BURST_BYTES);
    }

    @Test
    void unlimitedNeverWaits() {
        CreditLimiter c = CreditLimiter.unlimited();
        c.consume(65535);
        assertFalse(c.exceeded(65535, 0));
    }
}
