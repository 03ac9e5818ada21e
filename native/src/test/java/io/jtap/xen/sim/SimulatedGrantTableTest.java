package io.jtap.xen.sim;

import static io.jtap.xen.GrantTable.PAGE_SIZE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.xen.GrantMapping;
import io.jtap.xen.GrantStatus;
import io.jtap.xen.GrantTable;
import io.jtap.xen.GrantTableContract;
import io.jtap.xen.GrantTableException;
import io.jtap.xen.GrantingFrontend;
import io.jtap.xen.linux.Syscalls.ErrnoException;
import java.io.IOException;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/** The grant-table contract on the simulation, plus what only the simulation can show (Xen's exact statuses). */
@ExtendWith(SimulatedXenExtension.class)
class SimulatedGrantTableTest extends GrantTableContract {
    private SimulatedXen xen;
    private SimulatedDomain guest;

    @BeforeEach
    void createGuest(SimulatedXen xen) {
        this.xen = xen;
        this.guest = xen.createDomain("guest");
    }

    @Override
    protected GrantTable openGrantTable() {
        return xen.dom0().openGrantTable();
    }

    @Override
    protected GrantingFrontend frontend() {
        return new SimulatedGrantingFrontend(guest, SimulatedXen.DOM0);
    }

    private short refusal(int domid, int ref, boolean writable) throws IOException {
        try (GrantTable table = openGrantTable()) {
            return assertThrows(GrantTableException.class, () -> table.map(domid, new int[] {ref}, writable))
                    .status();
        }
    }

    @Test
    void refusalsCarryXensStatus() throws IOException {
        GuestPages pages = guest.allocatePages(3);
        int readOnly = guest.grantAccess(0, pages.frame(0), true);
        int ended = guest.grantAccess(0, pages.frame(1), false);
        assertTrue(guest.endAccess(ended));
        int elsewhere = guest.grantAccess(7, pages.frame(2), false);
        assertEquals("GNTST_general_error", GrantStatus.name(refusal(guest.domid(), readOnly, true)));
        assertEquals("GNTST_general_error", GrantStatus.name(refusal(guest.domid(), ended, false)));
        assertEquals("GNTST_general_error", GrantStatus.name(refusal(guest.domid(), elsewhere, false)));
        assertEquals("GNTST_general_error", GrantStatus.name(refusal(guest.domid(), 3, false)), "reserved ref");
        assertEquals("GNTST_bad_gntref", GrantStatus.name(refusal(guest.domid(), 512, false)), "beyond the table");
        assertEquals("GNTST_bad_gntref", GrantStatus.name(refusal(guest.domid(), -1, false)), "ref 0xffffffff");
        assertEquals("GNTST_bad_domain", GrantStatus.name(refusal(4242, readOnly, false)));
    }

    @Test
    void refsStartAfterTheReservedEntriesAndTheTableGrows() throws IOException {
        GuestPages pages = guest.allocatePages(1);
        assertEquals(SimulatedDomain.GNTTAB_NR_RESERVED_ENTRIES, guest.grantAccess(0, pages.frame(0), false));
        for (int i = 0; i < 600; i++) {
            guest.grantAccess(0, pages.frame(0), true);
        }
        assertEquals(601, guest.grantedRefs().length);
        try (GrantTable table = openGrantTable(); GrantMapping m = table.map(guest.domid(), new int[] {600}, false)) {
            assertEquals(1, m.pages(), "a ref of the second grant frame maps");
        }
    }

    @Test
    void endAccessFailsWhileTheBackendHoldsTheGrant() throws IOException {
        GuestPages pages = guest.allocatePages(1);
        int[] refs = pages.grantAll(0, false);
        try (GrantTable table = openGrantTable()) {
            GrantMapping mapping = table.map(guest.domid(), refs, true);
            assertEquals(1, guest.mapCount(refs[0]));
            assertFalse(guest.endAccess(refs[0]), "netfront/blkfront see the backend still holding the grant");
            mapping.close();
            assertEquals(0, guest.mapCount(refs[0]));
            assertTrue(guest.endAccess(refs[0]));
        }
        assertThrows(IllegalArgumentException.class, () -> guest.endAccess(refs[0]), "ending twice");
    }

    @Test
    void aRevokedGrantRefusesNewUseButLiveMappingsKeepAliasing() throws IOException {
        GuestPages pages = guest.allocatePages(1);
        int[] refs = pages.grantAll(0, false);
        try (GrantTable table = openGrantTable()) {
            GrantMapping mapping = table.map(guest.domid(), refs, true);
            guest.revoke(refs[0]);
            assertThrows(GrantTableException.class, () -> table.map(guest.domid(), refs, true));
            mapping.buffer().putInt(0, 77);
            assertEquals(77, pages.buffer().getInt(0));
            int next = guest.grantAccess(0, pages.frame(0), false);
            assertNotEquals(refs[0], next, "a revoked ref is not reused while mapped");
            mapping.close();
            assertEquals(0, guest.mapCount(refs[0]));
        }
    }

    @Test
    void unmapNotifySendsAnEventToTheFrontend() throws IOException {
        GuestPages pages = guest.allocatePages(1);
        int[] refs = pages.grantAll(0, false);
        try (SimulatedEventChannels frontend = guest.openEventChannels();
                SimulatedEventChannels backend = xen.dom0().openEventChannels();
                GrantTable table = openGrantTable()) {
            int frontendPort = frontend.bindUnboundPort(0);
            int backendPort = backend.bindInterdomain(guest.domid(), frontendPort);
            GrantMapping mapping = table.map(guest.domid(), refs, true);
            mapping.setUnmapNotify(GrantTable.UNMAP_NOTIFY_CLEAR_BYTE | GrantTable.UNMAP_NOTIFY_SEND_EVENT, 5,
                    backendPort);
            pages.buffer().put(5, (byte) 0x5a);
            assertEquals(0, frontend.pending(new int[4]));
            mapping.close();
            int[] ports = new int[4];
            assertEquals(1, frontend.pending(ports));
            assertEquals(frontendPort, ports[0]);
            assertEquals(0, pages.buffer().get(5));
        }
    }

    @Test
    void setUnmapNotifyIsCheckedAsGntdevChecksIt() throws IOException {
        GuestPages pages = guest.allocatePages(1);
        int[] writable = pages.grantAll(0, false);
        try (GrantTable table = openGrantTable();
                GrantMapping rw = table.map(guest.domid(), writable, true);
                GrantMapping ro = table.map(guest.domid(), writable, false)) {
            assertEquals(22, assertThrows(ErrnoException.class,
                    () -> ro.setUnmapNotify(GrantTable.UNMAP_NOTIFY_CLEAR_BYTE, 0, 0)).errno(), "r/o clear byte");
            assertEquals(2, assertThrows(ErrnoException.class,
                    () -> rw.setUnmapNotify(GrantTable.UNMAP_NOTIFY_CLEAR_BYTE, PAGE_SIZE, 0)).errno(), "outside");
            assertEquals(22, assertThrows(ErrnoException.class,
                    () -> rw.setUnmapNotify(GrantTable.UNMAP_NOTIFY_SEND_EVENT, 0, 9)).errno(), "unbound port");
            ro.setUnmapNotify(0, 0, 0);
        }
    }

    @Test
    void leaksNameLiveMappingsEvenAfterTheirTableClosed() throws IOException {
        GuestPages pages = guest.allocatePages(2);
        int[] refs = pages.grantAll(0, false);
        GrantTable table = openGrantTable();
        GrantMapping mapping = table.map(guest.domid(), refs, true);
        assertEquals(List.of("grant mapping: mapper=dom0, domid=1, refs=" + java.util.Arrays.toString(refs)
                + ", writable=true", "grant table handle: SimulatedGrantTable[dom0, activeMappings=1]"), xen.leaks());
        table.close();
        assertEquals(1, xen.leaks().size());
        AssertionError error = assertThrows(AssertionError.class, xen::assertNoLeaks);
        assertTrue(error.getMessage().contains("grant mapping"), error.getMessage());
        mapping.close();
        assertEquals(List.of(), xen.leaks());
    }

    @Test
    void otherFacilitiesReportTheirLeaksThroughTheWorld() {
        List<String> open = new java.util.ArrayList<>(List.of("watch /local/domain/1"));
        xen.addLeakSource("example-facility", () -> open);
        assertEquals(List.of("example-facility: watch /local/domain/1"), xen.leaks());
        open.clear();
        assertEquals(List.of(), xen.leaks());
    }

    @Test
    void closingTheWorldUnmapsWhatWasLeft() throws IOException {
        try (SimulatedXen world = new SimulatedXen()) {
            SimulatedDomain g = world.createDomain("g");
            GuestPages pages = g.allocatePages(1);
            GrantMapping leaked = world.dom0().openGrantTable().map(g.domid(), pages.grantAll(0, false), true);
            assertEquals(2, world.leaks().size());
            world.close();
            assertEquals(List.of(), world.leaks());
            assertThrows(IllegalStateException.class, leaked::buffer);
        }
    }

    @Test
    void domainsHaveIncreasingDomidsAndDom0Exists() {
        assertEquals(0, xen.dom0().domid());
        SimulatedDomain second = xen.createDomain("second");
        assertEquals(guest.domid() + 1, second.domid());
        assertEquals(second, xen.domain(second.domid()));
        assertArrayEquals(new int[0], second.grantedRefs());
    }
}
