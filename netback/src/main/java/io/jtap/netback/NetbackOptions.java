package io.jtap.netback;

import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

/**
 * Tunables of a {@link NetbackService}, with Linux xen-netback's defaults.
 *
 * @param maxQueues        advertised as {@code multi-queue-max-queues} (Linux: the number of CPUs)
 * @param clockNs          the time source for rate limiting and the rx drain timeout ({@code System::nanoTime};
 *                         tests inject their own)
 * @param rxQueueBytes     frames waiting for rx buffers, per queue, before netback stops reading the TAP (Linux:
 *                         {@code XENVIF_RX_QUEUE_BYTES}, half a ring of pages)
 * @param rxDrainTimeoutNs a frame that waited this long for rx buffers is dropped (Linux:
 *                         {@code rx_drain_timeout_msecs}, 10 s)
 * @param idlePollMs       longest sleep of an idle queue thread before it looks again (a safety net; events wake it)
 */
public record NetbackOptions(int maxQueues, LongSupplier clockNs, long rxQueueBytes, long rxDrainTimeoutNs,
        int idlePollMs) {

    public static NetbackOptions defaults() {
        return new NetbackOptions(Math.max(1, Math.min(8, Runtime.getRuntime().availableProcessors())),
                System::nanoTime, 128L * 4096, TimeUnit.SECONDS.toNanos(10), 100);
    }

    public NetbackOptions withMaxQueues(int n) {
        return new NetbackOptions(n, clockNs, rxQueueBytes, rxDrainTimeoutNs, idlePollMs);
    }

    public NetbackOptions withClock(LongSupplier clock) {
        return new NetbackOptions(maxQueues, clock, rxQueueBytes, rxDrainTimeoutNs, idlePollMs);
    }

    public NetbackOptions withIdlePollMs(int ms) {
        return new NetbackOptions(maxQueues, clockNs, rxQueueBytes, rxDrainTimeoutNs, ms);
    }
}
