package io.jtap.xen;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.xen.linux.Syscalls;
import io.jtap.xen.linux.Syscalls.ErrnoException;
import java.io.IOException;
import java.util.Arrays;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * What every {@link EventChannels} must do, run against the Linux device and the simulation alike. Subclasses open
 * handles in two domains, the backend's and the frontend's (on real Xen both may be dom0: a domain can bind to its own
 * unbound port).
 */
public abstract class EventChannelsContract {
    private static final long WAIT_NS = TimeUnit.SECONDS.toNanos(10);
    /** How long "nothing arrives" is watched for; an event that should not come would come within this. */
    private static final long QUIET_NS = TimeUnit.MILLISECONDS.toNanos(50);
    private static final int EINVAL = 22;
    private static final int ESRCH = 3;
    private static final int ENOTCONN = 107;

    protected abstract EventChannels openBackend() throws IOException;

    protected abstract EventChannels openFrontend() throws IOException;

    protected abstract int backendDomid();

    protected abstract int frontendDomid();

    /** A domid for which no domain exists. */
    protected abstract int nonexistentDomid();

    /**
     * The two ends of one channel: {@code [frontend port, backend port]}, the backend's spurious bind event drained.
     */
    private int[] connect(EventChannels frontend, EventChannels backend) throws IOException {
        int frontendPort = frontend.bindUnboundPort(backendDomid());
        int backendPort = backend.bindInterdomain(frontendDomid(), frontendPort);
        assertTrue(frontendPort > 0 && backendPort > 0, "ports start at 1");
        drain(backend);
        drain(frontend);
        return new int[] {frontendPort, backendPort};
    }

    /** Takes and unmasks whatever is pending (e.g. the event Xen sets on a newly bound interdomain port). */
    private static void drain(EventChannels channels) throws IOException {
        int[] ports = new int[64];
        int n;
        while ((n = channels.awaitPending(ports, QUIET_NS)) > 0) {
            for (int i = 0; i < n; i++) {
                channels.unmask(ports[i]);
            }
        }
    }

    private static int[] awaitPorts(EventChannels channels) throws IOException {
        int[] ports = new int[64];
        int n = channels.awaitPending(ports, WAIT_NS);
        assertNotEquals(0, n, "no event within " + TimeUnit.NANOSECONDS.toSeconds(WAIT_NS) + "s");
        return Arrays.copyOf(ports, n);
    }

    private static boolean readable(EventChannels channels, int timeoutMs) throws IOException {
        return Syscalls.pollIn(new int[] {channels.fd()}, timeoutMs) != 0;
    }

    @Test
    void bindsAnUnboundPortAndAnInterdomainPortToIt() throws IOException {
        try (EventChannels frontend = openFrontend(); EventChannels backend = openBackend()) {
            int frontendPort = frontend.bindUnboundPort(backendDomid());
            assertEquals(1, frontend.boundPorts());
            int backendPort = backend.bindInterdomain(frontendDomid(), frontendPort);
            assertEquals(1, backend.boundPorts());
            assertTrue(frontendPort > 0 && backendPort > 0);
            backend.unbind(backendPort);
            frontend.unbind(frontendPort);
            assertEquals(0, backend.boundPorts());
            assertEquals(0, frontend.boundPorts());
        }
    }

    @Test
    void notifyMakesThePeersFdReadableAndReportsThePort() throws IOException {
        try (EventChannels frontend = openFrontend(); EventChannels backend = openBackend()) {
            int[] ports = connect(frontend, backend);
            assertEquals(0, frontend.pending(new int[4]), "nothing pending when idle");
            assertTrue(!readable(frontend, 0), "the fd is not readable when idle");

            backend.notify(ports[1]);
            assertTrue(readable(frontend, 10_000), "the frontend's fd polls readable after notify");
            assertArrayEquals(new int[] {ports[0]}, awaitPorts(frontend));
            assertTrue(!readable(frontend, 0), "not readable once the pending port was read");
            frontend.unmask(ports[0]);

            frontend.notify(ports[0]);
            assertTrue(readable(backend, 10_000), "the backend's fd polls readable after notify");
            assertArrayEquals(new int[] {ports[1]}, awaitPorts(backend));
            backend.unmask(ports[1]);
            backend.unbind(ports[1]);
            frontend.unbind(ports[0]);
        }
    }

    @Test
    void aFiredPortIsMaskedUntilUnmaskedAndEventsMeanwhileAreLatched() throws IOException {
        try (EventChannels frontend = openFrontend(); EventChannels backend = openBackend()) {
            int[] ports = connect(frontend, backend);
            backend.notify(ports[1]);
            backend.notify(ports[1]);
            assertArrayEquals(new int[] {ports[0]}, awaitPorts(frontend), "two notifies, one report");
            backend.notify(ports[1]);
            assertEquals(0, frontend.awaitPending(new int[4], QUIET_NS), "masked: no report before unmask");
            frontend.unmask(ports[0]);
            assertTrue(readable(frontend, 10_000), "a latched event makes the fd readable on unmask");
            assertArrayEquals(new int[] {ports[0]}, awaitPorts(frontend), "the latched event fires on unmask");
            frontend.unmask(ports[0]);
            assertEquals(0, frontend.awaitPending(new int[4], QUIET_NS), "nothing left after unmask");
        }
    }

    @Test
    void pendingReportsSeveralPortsOfOneHandle() throws IOException {
        try (EventChannels frontend = openFrontend(); EventChannels backend = openBackend()) {
            int[] a = connect(frontend, backend);
            int[] b = connect(frontend, backend);
            backend.notify(a[1]);
            backend.notify(b[1]);
            int[] seen = new int[2];
            int count = 0;
            while (count < 2) {
                for (int port : awaitPorts(frontend)) {
                    seen[count++] = port;
                }
            }
            Arrays.sort(seen);
            int[] expected = {a[0], b[0]};
            Arrays.sort(expected);
            assertArrayEquals(expected, seen);
            assertEquals(2, frontend.boundPorts());
        }
    }

    @Test
    void unbindingTheBackendLeavesTheFrontendPortUnboundForANewBackend() throws IOException {
        try (EventChannels frontend = openFrontend(); EventChannels backend = openBackend()) {
            int[] ports = connect(frontend, backend);
            backend.unbind(ports[1]);
            ErrnoException e = assertThrows(ErrnoException.class, () -> backend.notify(ports[1]));
            assertEquals(ENOTCONN, e.errno(), e.getMessage());
            frontend.notify(ports[0]);
            try (EventChannels again = openBackend()) {
                int port = again.bindInterdomain(frontendDomid(), ports[0]);
                drain(again);
                again.notify(port);
                assertArrayEquals(new int[] {ports[0]}, awaitPorts(frontend));
            }
        }
    }

    @Test
    void refusesBindingsXenRefuses() throws IOException {
        try (EventChannels frontend = openFrontend(); EventChannels backend = openBackend()) {
            int[] ports = connect(frontend, backend);
            ErrnoException twice = assertThrows(ErrnoException.class,
                    () -> backend.bindInterdomain(frontendDomid(), ports[0]));
            assertEquals(EINVAL, twice.errno(), "a port is bound at most once: " + twice.getMessage());
            ErrnoException unknownPort = assertThrows(ErrnoException.class,
                    () -> backend.bindInterdomain(frontendDomid(), 4000));
            assertEquals(EINVAL, unknownPort.errno(), unknownPort.getMessage());
            ErrnoException noDomain = assertThrows(ErrnoException.class,
                    () -> backend.bindInterdomain(nonexistentDomid(), 1));
            assertEquals(ESRCH, noDomain.errno(), noDomain.getMessage());
            ErrnoException unboundForNoDomain = assertThrows(ErrnoException.class,
                    () -> frontend.bindUnboundPort(nonexistentDomid()));
            assertEquals(ESRCH, unboundForNoDomain.errno(), unboundForNoDomain.getMessage());
            assertEquals(1, backend.boundPorts());
            assertEquals(1, frontend.boundPorts());
        }
    }

    @Test
    void aPortOfAnotherHandleCannotBeNotifiedOrUnbound() throws IOException {
        try (EventChannels frontend = openFrontend(); EventChannels backend = openBackend();
                EventChannels other = openBackend()) {
            int[] ports = connect(frontend, backend);
            assertEquals(ENOTCONN, assertThrows(ErrnoException.class, () -> other.notify(ports[1])).errno());
            assertEquals(ENOTCONN, assertThrows(ErrnoException.class, () -> other.unbind(ports[1])).errno());
            assertEquals(1, backend.boundPorts());
        }
    }

    @Test
    void closingAHandleUnbindsItsPorts() throws IOException {
        try (EventChannels frontend = openFrontend()) {
            int frontendPort;
            try (EventChannels backend = openBackend()) {
                int[] ports = connect(frontend, backend);
                frontendPort = ports[0];
            }
            try (EventChannels backend = openBackend()) {
                int port = backend.bindInterdomain(frontendDomid(), frontendPort);
                assertTrue(port > 0, "the frontend port was unbound again when the old backend closed");
            }
        }
    }

    @Test
    void noWakeUpIsLostBetweenTwoThreads() throws Exception {
        int iterations = 5000;
        ExecutorService executor = Executors.newSingleThreadExecutor();
        try (EventChannels frontend = openFrontend(); EventChannels backend = openBackend()) {
            int[] ports = connect(frontend, backend);
            // A message passes back and forth: odd values are the backend's turn to have sent, even the frontend's.
            // Each side publishes the value, then notifies; the other waits until it sees the value.
            AtomicInteger ball = new AtomicInteger();
            Future<?> peer = executor.submit(() -> {
                for (int i = 1; i <= iterations; i++) {
                    awaitValue(frontend, ball, 2 * i - 1);
                    ball.set(2 * i);
                    frontend.notify(ports[0]);
                }
                return null;
            });
            for (int i = 1; i <= iterations; i++) {
                ball.set(2 * i - 1);
                backend.notify(ports[1]);
                awaitValue(backend, ball, 2 * i);
            }
            peer.get(60, TimeUnit.SECONDS);
        } finally {
            executor.shutdownNow();
        }
    }

    private static void awaitValue(EventChannels channels, AtomicInteger ball, int value) throws IOException {
        int[] ports = new int[8];
        while (ball.get() != value) {
            int n = channels.awaitPending(ports, WAIT_NS);
            if (n == 0 && ball.get() != value) {
                throw new AssertionError("lost wake-up: waited for value=" + value + ", saw=" + ball.get());
            }
            for (int i = 0; i < n; i++) {
                channels.unmask(ports[i]);
            }
        }
    }
}
