package io.jtap.xen.sim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.xen.EventChannels;
import io.jtap.xen.EventChannelsContract;
import io.jtap.xen.linux.Syscalls;
import java.io.IOException;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/** The event-channel contract on the simulation (backend in dom0, frontend in a guest), plus simulation details. */
@ExtendWith(SimulatedXenExtension.class)
class SimulatedEventChannelsTest extends EventChannelsContract {
    private SimulatedXen xen;
    private SimulatedDomain guest;

    @BeforeEach
    void createGuest(SimulatedXen xen) {
        this.xen = xen;
        this.guest = xen.createDomain("guest");
    }

    @Override
    protected EventChannels openBackend() throws IOException {
        return xen.dom0().openEventChannels();
    }

    @Override
    protected EventChannels openFrontend() throws IOException {
        return guest.openEventChannels();
    }

    @Override
    protected int backendDomid() {
        return SimulatedXen.DOM0;
    }

    @Override
    protected int frontendDomid() {
        return guest.domid();
    }

    @Override
    protected int nonexistentDomid() {
        return 30000;
    }

    @Test
    void bindInterdomainSetsTheNewPortPendingAsXenDoes() throws IOException {
        try (EventChannels frontend = openFrontend(); EventChannels backend = openBackend()) {
            int port = backend.bindInterdomain(guest.domid(), frontend.bindUnboundPort(0));
            assertTrue(Syscalls.pollIn(new int[] {backend.fd()}, 10_000) != 0,
                    "the pending port makes the fd readable");
            int[] ports = new int[4];
            assertEquals(1, backend.pending(ports));
            assertEquals(port, ports[0]);
            assertEquals(0, frontend.pending(ports));
        }
    }

    @Test
    void portsAreAllocatedLowestFirstPerDomain() throws IOException {
        try (EventChannels frontend = openFrontend(); EventChannels other = openFrontend()) {
            assertEquals(1, frontend.bindUnboundPort(0));
            assertEquals(2, other.bindUnboundPort(0));
            frontend.unbind(1);
            assertEquals(1, other.bindUnboundPort(0), "a freed port is reused");
        }
    }

    @Test
    void resetDiscardsPendingPortsAndLeavesThemMasked() throws IOException {
        try (EventChannels frontend = openFrontend(); EventChannels backend = openBackend()) {
            int frontendPort = frontend.bindUnboundPort(0);
            int backendPort = backend.bindInterdomain(guest.domid(), frontendPort);
            backend.notify(backendPort);
            frontend.reset();
            int[] ports = new int[4];
            assertEquals(0, frontend.pending(ports));
            backend.notify(backendPort);
            assertEquals(0, frontend.pending(ports), "still masked after reset");
            frontend.unmask(frontendPort);
            assertEquals(1, frontend.pending(ports));
        }
    }

    @Test
    void leaksNameOpenHandlesAndTheirPorts() throws IOException {
        EventChannels frontend = openFrontend();
        int port = frontend.bindUnboundPort(0);
        String leak = String.join("\n", xen.leaks());
        assertTrue(leak.contains("event channel handle: SimulatedEventChannels[dom1"), leak);
        assertTrue(leak.contains(port + ":unbound(for dom0)"), leak);
        frontend.close();
        assertEquals(0, xen.leaks().size());
    }
}
