package io.jtap.ring;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.LongStream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * FrontRing and BackRing against a model of the protocol, in one JVM: seeded random schedules of the steps each side
 * can take (including going to sleep after a final check, which only a kick or a spurious wake ends), with indices
 * starting anywhere, in particular just below 2^32. The model is the oracle for every count the rings report; a push
 * that should wake a sleeping peer but says "no notify" is a lost wake-up and fails the schedule.
 *
 * <p>Reproduce a failure with {@code -Dring.seed=<seed printed in the failure>}.
 */
class RingInterleavingTest {
    private static final long RESPONSE_MAGIC = 0x5253_5000_0000_0000L;

    static LongStream seeds() {
        final String fixed = System.getProperty("ring.seed");
        if (fixed != null) {
            return LongStream.of(Long.parseLong(fixed));
        }
        // Fixed seeds for a reproducible suite, plus one fresh seed per run for coverage over time.
        return LongStream.concat(LongStream.rangeClosed(1, 200), LongStream.of(System.nanoTime()));
    }

    @ParameterizedTest
    @MethodSource("seeds")
    void randomScheduleMatchesModel(final long seed) {
        try {
            new Schedule(seed).run();
        } catch (final AssertionError | RuntimeException e) {
            throw new AssertionError("schedule failed, rerun with -Dring.seed=" + seed + ": " + e.getMessage(), e);
        }
    }

    /** One random schedule: a front end, a back end and the model of what each has done. */
    private static final class Schedule {
        private final long seed;
        private final Random random;
        private final int order;
        private final int entryLength;
        private final int start;
        private final int total;
        private final FrontRing front;
        private final BackRing back;
        private final ByteBuffer shared;
        private final ByteBuffer copy;
        private final boolean[] answered;
        private final List<Long> pending = new ArrayList<>();
        // Counts since the start, of requests and responses (the indices are start + count, mod 2^32).
        private long produced;
        private long pushedRequests;
        private long consumedRequests;
        private long responded;
        private long pushedResponses;
        private long consumedResponses;
        private boolean frontSleeping;
        private boolean backSleeping;
        private long kicksToBack;
        private long kicksToFront;
        private long backFinalChecks;
        private long frontFinalChecks;

        Schedule(final long seed) {
            this.seed = seed;
            this.random = new Random(seed);
            this.order = random.nextInt(SharedRingDescriptor.XEN_MAX_RING_PAGE_ORDER + 1);
            this.entryLength = new int[] {8, 12, 16, 64, 112, 2016, 4032}[random.nextInt(7)];
            this.start = switch (random.nextInt(4)) {
                case 0 -> 0;
                case 1 -> -1 - random.nextInt(300);
                case 2 -> Integer.MAX_VALUE - random.nextInt(300);
                default -> random.nextInt();
            };
            this.shared = SharedRingDescriptor.allocate(order);
            this.front = FrontRing.initAt(shared, order, entryLength, start);
            this.back = BackRing.attach(shared, order, entryLength);
            this.total = 500 + random.nextInt(3 * front.size() + 2000);
            this.copy = ByteBuffer.allocateDirect(entryLength);
            this.answered = new boolean[total];
        }

        void run() {
            assertEquals(start, back.requestConsumer(), "BACK_RING_ATTACH starts at rsp_prod");
            assertEquals(front.size(), back.size());
            long steps = 0;
            while (consumedResponses < total) {
                if (++steps > 200L * total + 10_000) {
                    fail("no progress: " + this);
                }
                if (frontSleeping && backSleeping) {
                    fail("both ends asleep with work outstanding (lost wake-up): " + this);
                }
                switch (random.nextInt(9)) {
                    case 0, 1 -> frontProduce();
                    case 2 -> frontPush();
                    case 3 -> frontConsume();
                    case 4 -> frontSleep();
                    case 5 -> backConsume();
                    case 6 -> backRespond();
                    case 7 -> backPush();
                    default -> backSleepOrSpuriousWake();
                }
            }
            // A kick needs the event index to be inside the pushed range, and only a final check moves it: so at
            // most one kick per final check (plus the one armed by ring initialisation).
            assertTrue(kicksToBack <= backFinalChecks + 1, "kicks to back suppressed: " + this);
            assertTrue(kicksToFront <= frontFinalChecks + 1, "kicks to front suppressed: " + this);
        }

        private void frontProduce() {
            assertEquals(front.size() - (produced - consumedResponses), front.freeRequests(), "RING_FREE_REQUESTS");
            if (frontSleeping || produced == total || front.full()) {
                return;
            }
            final int slot = front.nextRequestSlot();
            LittleEndian.putInt64(shared, slot, produced);
            if (entryLength >= 12) {
                LittleEndian.putInt32(shared, slot + entryLength - 4, ~(int) produced);
            }
            produced++;
        }

        private void frontPush() {
            if (frontSleeping) {
                return;
            }
            final boolean fresh = produced > pushedRequests;
            final boolean notify = front.pushRequestsAndCheckNotify();
            pushedRequests = produced;
            assertFalse(notify && !fresh, "notify without new requests");
            if (backSleeping && fresh) {
                assertTrue(notify, "lost wake-up: back end sleeps, requests pushed, no notify: " + this);
            }
            if (notify) {
                kicksToBack++;
                backSleeping = false;
            }
        }

        private void frontConsume() {
            if (frontSleeping) {
                return;
            }
            final int available = front.unconsumedResponses();
            assertEquals(pushedResponses - consumedResponses, available, "RING_HAS_UNCONSUMED_RESPONSES");
            for (int n = available == 0 ? 0 : 1 + random.nextInt(available); n > 0; n--) {
                final int slot = front.nextResponseSlot();
                final long seq = LittleEndian.getInt64(shared, slot) ^ RESPONSE_MAGIC;
                assertTrue(seq >= 0 && seq < produced, "response for a request never made: seq=" + seq);
                assertFalse(answered[(int) seq], "duplicate response: seq=" + seq);
                answered[(int) seq] = true;
                consumedResponses++;
            }
        }

        private void frontSleep() {
            if (frontSleeping || produced > pushedRequests || consumedResponses == produced) {
                return; // only sleep with requests in flight, as a real front end waits for them
            }
            frontFinalChecks++;
            final boolean more = front.finalCheckForResponses();
            assertEquals(pushedResponses > consumedResponses, more, "RING_FINAL_CHECK_FOR_RESPONSES");
            frontSleeping = !more;
        }

        private void backConsume() {
            if (backSleeping) {
                return;
            }
            final int available;
            try {
                available = back.pollRequests();
            } catch (final RingOverflowException e) {
                throw new AssertionError("honest front end reported as bogus", e);
            }
            final long room = back.size() - (consumedRequests - responded);
            assertEquals(Math.min(pushedRequests - consumedRequests, room), available,
                "RING_HAS_UNCONSUMED_REQUESTS");
            for (int n = available == 0 ? 0 : 1 + random.nextInt(available); n > 0; n--) {
                back.copyRequest(copy, 0);
                assertEquals(consumedRequests, LittleEndian.getInt64(copy, 0), "request order");
                if (entryLength >= 12) {
                    assertEquals(~(int) consumedRequests, LittleEndian.getInt32(copy, entryLength - 4), "request tail");
                }
                pending.add(consumedRequests++);
            }
        }

        private void backRespond() {
            if (backSleeping || pending.isEmpty()) {
                return;
            }
            final long seq = pending.remove(random.nextInt(pending.size())); // completions come in any order
            LittleEndian.putInt64(shared, back.nextResponseSlot(), seq ^ RESPONSE_MAGIC);
            responded++;
        }

        private void backPush() {
            if (backSleeping) {
                return;
            }
            final boolean fresh = responded > pushedResponses;
            final boolean notify = back.pushResponsesAndCheckNotify();
            pushedResponses = responded;
            assertFalse(notify && !fresh, "notify without new responses");
            if (frontSleeping && fresh) {
                assertTrue(notify, "lost wake-up: front end sleeps, responses pushed, no notify: " + this);
            }
            if (notify) {
                kicksToFront++;
                frontSleeping = false;
            }
        }

        private void backSleepOrSpuriousWake() {
            if (random.nextInt(50) == 0) {
                frontSleeping = false; // event channels may wake a side for nothing; it must cope
                backSleeping = false;
                return;
            }
            if (backSleeping || !pending.isEmpty() || responded > pushedResponses) {
                return;
            }
            backFinalChecks++;
            final boolean more = back.finalCheckForRequests();
            assertEquals(pushedRequests > consumedRequests, more, "RING_FINAL_CHECK_FOR_REQUESTS");
            backSleeping = !more;
        }

        @Override
        public String toString() {
            return "seed=" + seed + ", order=" + order + ", entryLength=" + entryLength + ", size=" + front.size()
                + ", start=" + Integer.toUnsignedString(start) + ", total=" + total + ", produced=" + produced
                + ", pushedRequests=" + pushedRequests + ", consumedRequests=" + consumedRequests + ", responded="
                + responded + ", pushedResponses=" + pushedResponses + ", consumedResponses=" + consumedResponses
                + ", frontSleeping=" + frontSleeping + ", backSleeping=" + backSleeping;
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {0, -1, -3, Integer.MAX_VALUE, Integer.MIN_VALUE})
    void bogusRequestProducerIsDetected(final int start) throws RingOverflowException {
        final ByteBuffer shared = SharedRingDescriptor.allocate(0);
        final FrontRing front = FrontRing.initAt(shared, 0, 112, start);
        final BackRing back = BackRing.attach(shared, 0, 112);
        final int size = back.size();
        for (int i = 0; i < 3; i++) {
            front.nextRequestSlot();
        }
        front.pushRequests();
        final ByteBuffer copy = ByteBuffer.allocate(112);
        assertEquals(3, back.pollRequests());
        back.copyRequest(copy, 0);
        back.copyRequest(copy, 0);
        back.nextResponseSlot(); // two requests consumed, one answered
        back.pushResponses();
        final int rspProdPvt = start + 1;

        // A full ring's worth beyond the last response is the most a front end can have outstanding.
        SharedRingDescriptor.INDEX.setRelease(shared, SharedRingDescriptor.REQ_PROD_OFFSET, rspProdPvt + size);
        assertFalse(back.requestProdOverflow(rspProdPvt + size));
        assertEquals(size - 1, back.pollRequests());

        // One more is a lie: RING_REQUEST_PROD_OVERFLOW.
        SharedRingDescriptor.INDEX.setRelease(shared, SharedRingDescriptor.REQ_PROD_OFFSET, rspProdPvt + size + 1);
        assertTrue(back.requestProdOverflow(rspProdPvt + size + 1));
        final RingOverflowException overflow = assertThrows(RingOverflowException.class, back::pollRequests);
        assertEquals(rspProdPvt + size + 1, overflow.producer());
        assertEquals(rspProdPvt, overflow.consumer());
        assertTrue(overflow.getMessage().contains("req_prod=" + Integer.toUnsignedString(rspProdPvt + size + 1)),
            overflow.getMessage());
        assertThrows(IllegalStateException.class, () -> back.copyRequest(copy, 0), "nothing to copy once broken");

        // So is a jump by half the index space, and a producer moved back behind requests already consumed.
        SharedRingDescriptor.INDEX.setRelease(shared, SharedRingDescriptor.REQ_PROD_OFFSET, start + (1 << 31));
        assertThrows(RingOverflowException.class, back::pollRequests);
        SharedRingDescriptor.INDEX.setRelease(shared, SharedRingDescriptor.REQ_PROD_OFFSET, rspProdPvt);
        assertThrows(RingOverflowException.class, back::pollRequests);
        SharedRingDescriptor.INDEX.setRelease(shared, SharedRingDescriptor.REQ_PROD_OFFSET, rspProdPvt - 1);
        assertThrows(RingOverflowException.class, back::pollRequests);
        // Even unchecked, the count the C macro yields never exceeds the room for responses.
        assertTrue(back.unconsumedRequests() <= size);
    }

    @Test
    void twoThreadsWithSemaphoreEventChannelsLoseNoWakeUp() {
        final int order = 0;
        final int entryLength = 112;
        final long total = 300_000;
        final ByteBuffer shared = SharedRingDescriptor.allocate(order);
        final FrontRing front = FrontRing.initAt(shared, order, entryLength, -50);
        final BackRing back = BackRing.attach(shared, order, entryLength);
        final Semaphore kickBack = new Semaphore(0);
        final Semaphore kickFront = new Semaphore(0);
        final AtomicLong kicksToBack = new AtomicLong();
        final AtomicLong kicksToFront = new AtomicLong();
        final AtomicReference<Throwable> failure = new AtomicReference<>();

        final Thread frontThread = new Thread(() -> {
            final Random random = new Random(42);
            long sent = 0;
            long received = 0;
            while (received < total) {
                int burst = 1 + random.nextInt(front.size());
                while (burst-- > 0 && sent < total && !front.full()) {
                    LittleEndian.putInt64(shared, front.nextRequestSlot(), sent++);
                }
                if (front.pushRequestsAndCheckNotify()) {
                    kicksToBack.incrementAndGet();
                    kickBack.release();
                }
                boolean progressed = false;
                while (front.unconsumedResponses() > 0) {
                    final long seq = LittleEndian.getInt64(shared, front.nextResponseSlot()) ^ RESPONSE_MAGIC;
                    if (seq != received) {
                        throw new AssertionError("response out of order: seq=" + seq + ", expected=" + received);
                    }
                    received++;
                    progressed = true;
                }
                if (!progressed && (sent == total || front.full()) && !front.finalCheckForResponses()) {
                    kickFront.acquireUninterruptibly();
                }
            }
        }, "ring-front");
        final Thread backThread = new Thread(() -> {
            final ByteBuffer copy = ByteBuffer.allocateDirect(entryLength);
            long expected = 0;
            while (expected < total) {
                final int available;
                try {
                    available = back.pollRequests();
                } catch (final RingOverflowException e) {
                    throw new AssertionError(e);
                }
                for (int i = 0; i < available; i++) {
                    back.copyRequest(copy, 0);
                    final long seq = LittleEndian.getInt64(copy, 0);
                    if (seq != expected) {
                        throw new AssertionError("request out of order: seq=" + seq + ", expected=" + expected);
                    }
                    LittleEndian.putInt64(shared, back.nextResponseSlot(), seq ^ RESPONSE_MAGIC);
                    expected++;
                }
                if (back.pushResponsesAndCheckNotify()) {
                    kicksToFront.incrementAndGet();
                    kickFront.release();
                }
                if (available == 0 && !back.finalCheckForRequests()) {
                    kickBack.acquireUninterruptibly();
                }
            }
        }, "ring-back");
        for (final Thread thread : List.of(frontThread, backThread)) {
            thread.setDaemon(true); // a lost wake-up leaves them blocked; the timeout below reports it
            thread.setUncaughtExceptionHandler((t, e) -> failure.compareAndSet(null, e));
            thread.start();
        }
        assertTimeoutPreemptively(Duration.ofSeconds(120), () -> {
            frontThread.join();
            backThread.join();
        }, () -> "lost wake-up? kicksToBack=" + kicksToBack + ", kicksToFront=" + kicksToFront
            + ", req_cons=" + Integer.toUnsignedString(back.requestConsumer())
            + ", rsp_cons=" + Integer.toUnsignedString(front.responseConsumer()));
        assertNull(failure.get(), () -> "thread failed: " + failure.get());
        System.out.println("two threads: requests=" + total + ", kicksToBack=" + kicksToBack + ", kicksToFront="
            + kicksToFront);
        assertTrue(kicksToBack.get() < total && kicksToFront.get() < total, "notifications suppressed");
    }
}
