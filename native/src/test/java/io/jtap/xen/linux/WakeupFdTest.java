package io.jtap.xen.linux;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The eventfd wake-up that blkback's ring threads and netback's queue threads poll. */
class WakeupFdTest {
    @BeforeEach
    void requireLibC() {
        assumeTrue(LibC.loadFailure() == null, () -> "libc unavailable: " + LibC.loadFailure());
    }

    private static boolean readable(WakeupFd w) throws Exception {
        return Syscalls.pollIn(new int[] {w.fd()}, 0) != 0;
    }

    @Test
    void aSignalMakesTheFdReadableUntilDrained() throws Exception {
        try (WakeupFd w = new WakeupFd()) {
            assertEquals(false, readable(w), "fresh");
            w.signal();
            assertEquals(true, readable(w), "after signal");
            w.drain();
            assertEquals(false, readable(w), "after drain");
        }
    }

    @Test
    void signalsCoalesceAndADrainWithoutSignalIsANoOp() throws Exception {
        try (WakeupFd w = new WakeupFd()) {
            w.drain();
            for (int i = 0; i < 5; i++) {
                w.signal();
            }
            w.drain();
            assertEquals(false, readable(w), "one drain clears any number of signals");
            w.drain();
            assertEquals(false, readable(w));
        }
    }

    @Test
    void concurrentSignalsNeverLeaveTheFdReadableWithNothingToDrain() throws Exception {
        try (WakeupFd w = new WakeupFd()) {
            int threads = 4;
            CountDownLatch start = new CountDownLatch(1);
            List<Thread> signallers = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                Thread thread = new Thread(() -> {
                    try {
                        start.await();
                    } catch (InterruptedException e) {
                        return;
                    }
                    for (int i = 0; i < 2_000; i++) {
                        w.signal();
                    }
                });
                thread.start();
                signallers.add(thread);
            }
            start.countDown();
            while (signallers.stream().anyMatch(Thread::isAlive)) {
                w.drain();
            }
            for (Thread thread : signallers) {
                thread.join();
            }
            w.drain();
            assertEquals(false, readable(w), "after the last drain");
        }
    }

    @Test
    void aSignalAfterCloseDoesNothingAndCloseIsIdempotent() throws Exception {
        WakeupFd w = new WakeupFd();
        w.close();
        w.signal();
        w.close();
    }
}
