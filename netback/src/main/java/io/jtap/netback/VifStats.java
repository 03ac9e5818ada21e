package io.jtap.netback;

import java.util.concurrent.atomic.LongAdder;

/** Counters of one vif, summed over its queues; written by queue threads, read by anyone. */
public final class VifStats {
    /** Packets from the guest written to the TAP. */
    public final LongAdder txPackets = new LongAdder();
    public final LongAdder txBytes = new LongAdder();
    /** Tx requests answered with {@code NETIF_RSP_ERROR}. */
    public final LongAdder txErrors = new LongAdder();
    /** Tx packets answered OKAY but not delivered (the TAP refused them, or their headers made no sense). */
    public final LongAdder txDropped = new LongAdder();
    /** Frames from the TAP placed in the guest's rx buffers. */
    public final LongAdder rxPackets = new LongAdder();
    public final LongAdder rxBytes = new LongAdder();
    /** Frames from the TAP dropped (no sg for a big frame, queue full, drain timeout, multicast filter). */
    public final LongAdder rxDropped = new LongAdder();
    /** Times a queue thread found nothing to do and went to sleep: lets tests wait for quiescence without timing. */
    public final LongAdder idleLoops = new LongAdder();

    @Override
    public String toString() {
        return "VifStats{txPackets=" + txPackets + ", txBytes=" + txBytes + ", txErrors=" + txErrors + ", txDropped="
                + txDropped + ", rxPackets=" + rxPackets + ", rxBytes=" + rxBytes + ", rxDropped=" + rxDropped
                + ", idleLoops=" + idleLoops + "}";
    }
}
