package io.jtap.netback;

/**
 * Linux xen-netback's credit-based tx rate limit, per queue: the toolstack's {@code rate} node "bytes,usec" gives
 * {@code creditBytes} of credit per {@code creditUsec} window. A packet larger than the remaining credit waits until
 * the next window (Linux: {@code tx_credit_exceeded} and its timer); each refill adds {@code creditBytes} but never
 * lifts the credit above the burst allowance, which is the next packet's size capped at 128 KiB and never less than
 * {@code creditBytes} (Linux: {@code tx_add_credit}). Time comes from the caller, so tests can drive it.
 *
 * <p>Thread confinement: one queue thread.
 */
final class CreditLimiter {
    /** Linux {@code tx_add_credit}: a single packet's burst allowance is capped at 128 KiB. */
    static final long MAX_BURST_BYTES = 131_072;

    private final long creditBytes;
    private final long creditNs;
    private long remainingCredit;
    private long windowStartNs;
    private boolean timerPending;
    private long timerDeadlineNs;

    CreditLimiter(long creditBytes, long creditUsec, long nowNs) {
        this.creditBytes = creditBytes;
        this.creditNs = creditUsec * 1000;
        this.remainingCredit = creditBytes;
        this.windowStartNs = nowNs;
    }

    static CreditLimiter unlimited() {
        return new CreditLimiter(Long.MAX_VALUE, 0, 0);
    }

    boolean isUnlimited() {
        return creditBytes == Long.MAX_VALUE;
    }

    long remainingCredit() {
        return remainingCredit;
    }

    /**
     * Whether a packet of {@code size} bytes must wait. Linux: {@code remaining_credit < size && tx_credit_exceeded()}.
     */
    boolean exceeded(int size, long nowNs) {
        if (isUnlimited() || remainingCredit >= size) {
            return false;
        }
        if (timerPending) {
            if (nowNs - timerDeadlineNs < 0) {
                return true;
            }
            // The timer fired (Linux: tx_credit_callback).
            timerPending = false;
            addCredit(size);
        }
        long nextCreditNs = windowStartNs + creditNs;
        if (nowNs - nextCreditNs >= 0) {
            windowStartNs = nowNs;
            addCredit(size);
        }
        if (size > remainingCredit) {
            timerPending = true;
            timerDeadlineNs = nextCreditNs;
            windowStartNs = nextCreditNs;
            return true;
        }
        return false;
    }

    /** When a waiting packet may be retried, or {@code Long.MIN_VALUE} when nothing waits. */
    long retryAtNs() {
        return timerPending ? timerDeadlineNs : Long.MIN_VALUE;
    }

    void consume(int size) {
        if (!isUnlimited()) {
            remainingCredit -= size;
        }
    }

    /** Linux {@code tx_add_credit}. */
    private void addCredit(int nextPacketSize) {
        long maxBurst = Math.max(Math.min(nextPacketSize, MAX_BURST_BYTES), creditBytes);
        long maxCredit = remainingCredit + creditBytes;
        if (maxCredit < remainingCredit) {
            maxCredit = Long.MAX_VALUE; // wrapped
        }
        remainingCredit = Math.min(maxCredit, maxBurst);
    }
}
