package io.jtap.xen.sim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.xen.EventChannels;
import io.jtap.xen.GrantTable;
import io.jtap.xen.XenPlatform;
import io.jtap.xen.XenStore;
import java.io.IOException;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** The simulated world hands each domain its own view, and counts every handle the view opens until it is closed. */
class SimulatedXenPlatformTest {
    @Test
    void platformActsAsItsDomainAndItsHandlesAreLeaksUntilClosed() throws IOException {
        try (SimulatedXen xen = new SimulatedXen()) {
            SimulatedDomain guest = xen.createDomain("guest");
            XenPlatform backend = xen.platform(SimulatedXen.DOM0);
            XenPlatform front = xen.platform(guest.domid());
            assertEquals(0, backend.domid());
            assertEquals(guest.domid(), front.domid());

            XenStore store = front.openXenStore();
            GrantTable grants = backend.openGrantTable();
            EventChannels channels = backend.openEventChannels();
            // Relative paths resolve under the connection's own domain: the xenstore knows who is asking.
            store.write("data/x", "1");
            try (XenStore dom0 = backend.openXenStore()) {
                assertEquals(Optional.of("1"), dom0.readString("/local/domain/" + guest.domid() + "/data/x"));
            }
            List<String> leaks = xen.leaks();
            assertEquals(3, leaks.size(), leaks::toString);
            assertTrue(leaks.stream().anyMatch(l -> l.startsWith("xenstore: open connection: domid=" + guest.domid())),
                    leaks::toString);

            store.close();
            grants.close();
            channels.close();
            xen.assertNoLeaks();
        }
    }
}
