package io.jtap.xen.sim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.xen.XenStore;
import io.jtap.xen.XenStoreContract;
import io.jtap.xen.XenStorePath;
import java.io.IOException;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** The contract against the simulation, plus what only the simulation can show (other domains, leak reports). */
class SimulatedXenStoreTest extends XenStoreContract {
    private final SimulatedXenStore store = new SimulatedXenStore();

    @Override
    protected XenStore connectPrivileged() {
        return store.connect(0);
    }

    @Override
    protected Optional<XenStore> connectAs(int domid) {
        return Optional.of(store.connect(domid));
    }

    @Override
    protected void assertNoLeaks() {
        store.assertNoLeaks();
    }

    @Override
    protected void afterCase() {
        store.close();
    }

    @Test
    void aFreshStoreLooksLikeAFreshXenstored() throws IOException {
        try (XenStore c = store.connect(0)) {
            assertEquals(List.of("tool", "jtap-test"), c.directory("/"));
            assertEquals(List.of("xenstored"), c.directory("/tool"));
            assertEquals("n0", c.getPermissions("/").get(0).toString());
        }
    }

    @Test
    void leaksNameOpenWatchesAndTransactions() throws Exception {
        XenStore c = store.connect(7);
        XenStore.Watch w = c.watch("data", "leaky", (p, t) -> { });
        String leaks = store.leaks();
        assertTrue(leaks.contains("open watch: domid=7"), leaks);
        assertTrue(leaks.contains("path=data, token=leaky"), leaks);
        assertThrows(AssertionError.class, store::assertNoLeaks);
        w.close();
        assertEquals("", store.leaks());
        c.transaction(tx -> {
            assertTrue(store.leaks().contains("open transactions: domid=7, connection="), store.leaks());
            return null;
        });
        assertEquals("", store.leaks());
        c.watch("data", "dropped-by-close", (p, t) -> { });
        c.close();
        assertEquals("", store.leaks());
    }

    @Test
    void specialWatchesFireOnIntroduceAndRelease() throws Exception {
        try (XenStore c = store.connect(0)) {
            Recorder r = new Recorder();
            try (XenStore.Watch w = c.watch(XenStorePath.INTRODUCE_DOMAIN, "in", r)) {
                r.await("@introduceDomain in");
                store.introduceDomain(3);
                assertEquals(List.of("@introduceDomain in", "@introduceDomain in"), r.await("@introduceDomain in"));
            }
        }
    }

    @Test
    void watchEventsGoOnlyToDomainsThatMayReadTheNode() throws Exception {
        xs.mkdir(base + "/shared");
        xs.setPermissions(base + "/shared", io.jtap.xen.XenStorePermission.parseList("n0 r5"));
        XenStore dom5 = store.connect(5);
        XenStore dom6 = store.connect(6);
        try (dom5; dom6) {
            Recorder r5 = new Recorder();
            Recorder r6 = new Recorder();
            try (XenStore.Watch w5 = dom5.watch(base, "w5", r5); XenStore.Watch w6 = dom6.watch(base, "w6", r6)) {
                r5.await(base + " w5");
                r6.await(base + " w6");
                xs.write(base + "/shared/x", "1");
                xs.write(base + "/shared/marker-for-6", "1");
                xs.setPermissions(base + "/shared/marker-for-6", io.jtap.xen.XenStorePermission.parseList("n0 r6"));
                r5.await(base + "/shared/x w5");
                List<String> seen6 = r6.await(base + "/shared/marker-for-6 w6");
                assertEquals(List.of(base + " w6", base + "/shared/marker-for-6 w6"), seen6);
            }
        }
    }
}
