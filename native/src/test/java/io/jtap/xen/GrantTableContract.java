package io.jtap.xen;

import static io.jtap.xen.GrantStatus.GNTST_bad_domain;
import static io.jtap.xen.GrantStatus.GNTST_bad_gntref;
import static io.jtap.xen.GrantStatus.GNTST_general_error;
import static io.jtap.xen.GrantStatus.GNTST_okay;
import static io.jtap.xen.GrantTable.PAGE_SIZE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.jna.Native;
import com.sun.jna.Pointer;
import io.jtap.xen.GrantingFrontend.GrantedPages;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * What every {@link GrantTable} must do, run against the Linux device and the simulation alike. Subclasses provide the
 * backend's table and a frontend that grants pages to it.
 */
public abstract class GrantTableContract {
    /** Opens a grant table in the backend's domain; the test closes it. */
    protected abstract GrantTable openGrantTable() throws IOException;

    /** The domain that grants pages to the backend. */
    protected abstract GrantingFrontend frontend() throws IOException;

    @Test
    void mapsOnePageThatAliasesTheGrantedMemoryBothWays() throws IOException {
        GrantingFrontend frontend = frontend();
        GrantedPages granted = frontend.grant(1, false);
        SelfDescribingData.fill(granted.memory(), 0, PAGE_SIZE, 1);
        try (GrantTable table = openGrantTable();
                GrantMapping mapping = table.map(frontend.domid(), granted.refs(), true)) {
            assertEquals(1, table.activeMappings());
            assertEquals(1, mapping.pages());
            assertEquals(frontend.domid(), mapping.domid());
            assertArrayEquals(granted.refs(), mapping.refs());
            assertTrue(mapping.writable());
            ByteBuffer buffer = mapping.buffer();
            assertTrue(buffer.isDirect());
            assertFalse(buffer.isReadOnly());
            assertEquals(PAGE_SIZE, buffer.capacity());
            SelfDescribingData.check(buffer, 0, PAGE_SIZE, 1);

            SelfDescribingData.fill(buffer, 1024, 512, 2);
            SelfDescribingData.check(granted.memory(), 1024, 512, 2);
            granted.memory().putLong(4088, 0x0123456789abcdefL);
            assertEquals(0x0123456789abcdefL, buffer.getLong(4088));
        }
        assertTrue(frontend.endAccess(granted.refs()[0]), "the grant is free again after unmapping");
    }

    @Test
    void mapsManyRefsContiguouslyInTheOrderGiven() throws IOException {
        GrantingFrontend frontend = frontend();
        int pages = 6;
        GrantedPages granted = frontend.grant(pages, false);
        for (int i = 0; i < pages; i++) {
            SelfDescribingData.fill(granted.memory(), i * PAGE_SIZE, PAGE_SIZE, 100 + i);
        }
        int[] order = {3, 0, 5, 1, 4, 2};
        int[] refs = new int[pages];
        for (int i = 0; i < pages; i++) {
            refs[i] = granted.refs()[order[i]];
        }
        try (GrantTable table = openGrantTable(); GrantMapping mapping = table.map(frontend.domid(), refs, true)) {
            ByteBuffer buffer = mapping.buffer();
            assertEquals(pages * PAGE_SIZE, buffer.capacity());
            for (int i = 0; i < pages; i++) {
                SelfDescribingData.check(buffer, i * PAGE_SIZE, PAGE_SIZE, 100 + order[i], order[i] * PAGE_SIZE);
            }
            for (int i = 0; i < pages; i++) {
                buffer.putLong(i * PAGE_SIZE + 8, 7000 + i);
            }
            for (int i = 0; i < pages; i++) {
                assertEquals(7000 + i, granted.memory().getLong(order[i] * PAGE_SIZE + 8), "mapping page " + i);
            }
        }
    }

    @Test
    void readOnlyMappingIsProtReadAndSeesTheGuestsWrites() throws IOException {
        GrantingFrontend frontend = frontend();
        GrantedPages granted = frontend.grant(2, true);
        SelfDescribingData.fill(granted.memory(), 0, 2 * PAGE_SIZE, 3);
        try (GrantTable table = openGrantTable();
                GrantMapping mapping = table.map(frontend.domid(), granted.refs(), false)) {
            ByteBuffer buffer = mapping.buffer();
            assertTrue(buffer.isReadOnly());
            assertFalse(mapping.writable());
            SelfDescribingData.check(buffer, 0, 2 * PAGE_SIZE, 3);
            for (int page = 0; page < 2; page++) {
                String perms = permissionsOf(address(buffer) + (long) page * PAGE_SIZE);
                assertEquals("r-", perms.substring(0, 2), "page " + page + " must be mapped PROT_READ: " + perms);
            }
            granted.memory().putLong(PAGE_SIZE + 16, 42);
            assertEquals(42, buffer.getLong(PAGE_SIZE + 16));
        }
    }

    @Test
    void writableMappingIsProtReadWrite() throws IOException {
        GrantingFrontend frontend = frontend();
        GrantedPages granted = frontend.grant(1, false);
        try (GrantTable table = openGrantTable();
                GrantMapping mapping = table.map(frontend.domid(), granted.refs(), true)) {
            assertEquals("rw", permissionsOf(address(mapping.buffer())).substring(0, 2));
        }
    }

    @Test
    void refusesAWritableMappingOfAReadOnlyGrant() throws IOException {
        GrantingFrontend frontend = frontend();
        GrantedPages granted = frontend.grant(1, true);
        try (GrantTable table = openGrantTable()) {
            assertRefused(table, frontend.domid(), granted.refs(), true);
            try (GrantMapping readOnly = table.map(frontend.domid(), granted.refs(), false)) {
                assertTrue(readOnly.buffer().isReadOnly(), "the read-only mapping of the same grant is allowed");
            }
        }
    }

    @Test
    void refusesARefThatIsNotGranted() throws IOException {
        GrantingFrontend frontend = frontend();
        try (GrantTable table = openGrantTable()) {
            assertRefused(table, frontend.domid(), new int[] {frontend.unusedRef()}, true);
        }
    }

    @Test
    void refusesARefGrantedToAnotherDomain() throws IOException {
        GrantingFrontend frontend = frontend();
        try (GrantTable table = openGrantTable()) {
            assertRefused(table, frontend.domid(), new int[] {frontend.refGrantedToAnotherDomain()}, false);
        }
    }

    @Test
    void refusesAnEndedGrant() throws IOException {
        GrantingFrontend frontend = frontend();
        GrantedPages granted = frontend.grant(1, false);
        assertTrue(frontend.endAccess(granted.refs()[0]));
        try (GrantTable table = openGrantTable()) {
            assertRefused(table, frontend.domid(), granted.refs(), false);
        }
    }

    @Test
    void refusesAnUnknownDomain() throws IOException {
        GrantingFrontend frontend = frontend();
        GrantedPages granted = frontend.grant(1, false);
        try (GrantTable table = openGrantTable()) {
            assertRefused(table, frontend.nonexistentDomid(), granted.refs(), false);
        }
    }

    @Test
    void aRefusedRefMapsNoneOfTheOthers() throws IOException {
        GrantingFrontend frontend = frontend();
        GrantedPages granted = frontend.grant(2, false);
        int[] refs = {granted.refs()[0], frontend.unusedRef(), granted.refs()[1]};
        try (GrantTable table = openGrantTable()) {
            assertRefused(table, frontend.domid(), refs, true);
        }
        assertTrue(frontend.endAccess(granted.refs()[0]), "the good ref before the bad one was released");
        assertTrue(frontend.endAccess(granted.refs()[1]), "the good ref after the bad one was released");
    }

    private static void assertRefused(GrantTable table, int domid, int[] refs, boolean writable) {
        GrantTableException e = assertThrows(GrantTableException.class, () -> table.map(domid, refs, writable));
        assertEquals(22, e.errno(), "the device refuses a map with EINVAL: " + e.getMessage());
        assertEquals(0, table.activeMappings());
    }

    @Test
    void unmapReleasesTheGrantAndIsIdempotent() throws IOException {
        GrantingFrontend frontend = frontend();
        GrantedPages granted = frontend.grant(3, false);
        try (GrantTable table = openGrantTable()) {
            GrantMapping mapping = table.map(frontend.domid(), granted.refs(), true);
            GrantMapping second = table.map(frontend.domid(), granted.refs(), true);
            assertEquals(2, table.activeMappings());
            mapping.close();
            assertEquals(1, table.activeMappings());
            mapping.close();
            assertEquals(1, table.activeMappings());
            assertThrows(IllegalStateException.class, mapping::buffer);
            second.buffer().putInt(0, 99);
            assertEquals(99, granted.memory().getInt(0), "the other mapping of the same refs still aliases");
            second.close();
            assertEquals(0, table.activeMappings());
        }
        for (int ref : granted.refs()) {
            assertTrue(frontend.endAccess(ref), "ref " + ref + " released");
        }
    }

    @Test
    void aMappingOutlivesItsTable() throws IOException {
        GrantingFrontend frontend = frontend();
        GrantedPages granted = frontend.grant(1, false);
        GrantTable table = openGrantTable();
        GrantMapping mapping = table.map(frontend.domid(), granted.refs(), true);
        table.close();
        mapping.buffer().putLong(0, 5);
        assertEquals(5, granted.memory().getLong(0));
        mapping.close();
        assertTrue(frontend.endAccess(granted.refs()[0]));
    }

    @Test
    void unmapNotifyClearsTheByte() throws IOException {
        GrantingFrontend frontend = frontend();
        GrantedPages granted = frontend.grant(2, false);
        granted.memory().put(PAGE_SIZE + 100, (byte) 1);
        try (GrantTable table = openGrantTable()) {
            GrantMapping mapping = table.map(frontend.domid(), granted.refs(), true);
            mapping.setUnmapNotify(GrantTable.UNMAP_NOTIFY_CLEAR_BYTE, PAGE_SIZE + 100, 0);
            assertEquals(1, granted.memory().get(PAGE_SIZE + 100));
            mapping.close();
        }
        assertEquals(0, granted.memory().get(PAGE_SIZE + 100), "the byte was cleared on unmap");
    }

    @Test
    void copiesFromAndToForeignPages() throws IOException {
        GrantingFrontend frontend = frontend();
        GrantedPages granted = frontend.grant(2, false);
        SelfDescribingData.fill(granted.memory(), 0, 2 * PAGE_SIZE, 9);
        ByteBuffer local = ByteBuffer.allocateDirect(3 * PAGE_SIZE);
        try (GrantTable table = openGrantTable(); GrantCopyBatch batch = new GrantCopyBatch(8)) {
            int[] refs = granted.refs();
            // foreign -> local: page 1 [512, 512+1024) to local [4000, 5024): the local side crosses a page.
            int in = batch.copyFromForeign(frontend.domid(), refs[1], 512, local, 4000, 1024);
            // local -> foreign: local [8192, 8192+4096) over all of page 0.
            SelfDescribingData.fill(local, 2 * PAGE_SIZE, PAGE_SIZE, 10);
            int out = batch.copyToForeign(local, 2 * PAGE_SIZE, frontend.domid(), refs[0], 0, PAGE_SIZE);
            table.copy(batch);
            assertEquals(GNTST_okay, batch.status(in), GrantStatus.name(batch.status(in)));
            assertEquals(GNTST_okay, batch.status(out), GrantStatus.name(batch.status(out)));
            assertEquals(-1, batch.firstFailure());
            SelfDescribingData.check(local, 4000, 1024, 9, PAGE_SIZE + 512);
            SelfDescribingData.check(granted.memory(), 0, PAGE_SIZE, 10, 2 * PAGE_SIZE);
            SelfDescribingData.check(granted.memory(), PAGE_SIZE, PAGE_SIZE, 9);
            assertEquals(0, table.activeMappings(), "copying maps nothing");
        }
        for (int ref : granted.refs()) {
            assertTrue(frontend.endAccess(ref));
        }
    }

    @Test
    void aBatchReportsEachSegmentAndIsReusable() throws IOException {
        GrantingFrontend frontend = frontend();
        GrantedPages writable = frontend.grant(1, false);
        GrantedPages readOnly = frontend.grant(1, true);
        SelfDescribingData.fill(readOnly.memory(), 0, PAGE_SIZE, 20);
        int domid = frontend.domid();
        int unused = frontend.unusedRef();
        int elsewhere = frontend.refGrantedToAnotherDomain();
        ByteBuffer local = ByteBuffer.allocateDirect(PAGE_SIZE);
        SelfDescribingData.fill(local, 0, PAGE_SIZE, 21);
        try (GrantTable table = openGrantTable(); GrantCopyBatch batch = new GrantCopyBatch(8)) {
            for (int round = 0; round < 3; round++) {
                batch.clear();
                int good = batch.copyToForeign(local, 0, domid, writable.refs()[0], 0, 256);
                int toReadOnly = batch.copyToForeign(local, 256, domid, readOnly.refs()[0], 256, 256);
                int fromReadOnly = batch.copyFromForeign(domid, readOnly.refs()[0], 1024, local, 2048, 256);
                int notGranted = batch.copyFromForeign(domid, unused, 0, local, 0, 8);
                int wrongDomain = batch.copyFromForeign(domid, elsewhere, 0, local, 0, 8);
                int beyondTable = batch.copyToForeign(local, 0, domid, 0x7fffffff, 0, 8);
                int noDomain = batch.copyToForeign(local, 0, frontend.nonexistentDomid(), writable.refs()[0], 0, 8);
                assertEquals(7, batch.size());
                table.copy(batch);
                List<Short> expected = List.of(GNTST_okay, GNTST_general_error, GNTST_okay, GNTST_general_error,
                        GNTST_general_error, GNTST_bad_gntref, GNTST_bad_domain);
                int[] segments = {good, toReadOnly, fromReadOnly, notGranted, wrongDomain, beyondTable, noDomain};
                for (int i = 0; i < segments.length; i++) {
                    assertEquals(GrantStatus.name(expected.get(i)), GrantStatus.name(batch.status(segments[i])),
                            "round " + round + ", segment " + i);
                }
                assertEquals(toReadOnly, batch.firstFailure());
                SelfDescribingData.check(writable.memory(), 0, 256, 21);
                SelfDescribingData.check(readOnly.memory(), 0, PAGE_SIZE, 20);
                SelfDescribingData.check(local, 2048, 256, 20, 1024);
                SelfDescribingData.fill(local, 2048, 256, 21);
            }
        }
    }

    @Test
    void aCopySegmentMustStayWithinItsForeignPage() {
        ByteBuffer local = ByteBuffer.allocateDirect(2 * PAGE_SIZE);
        try (GrantCopyBatch batch = new GrantCopyBatch(2)) {
            assertThrows(IllegalArgumentException.class, () -> batch.copyFromForeign(1, 8, 4000, local, 0, 200));
            assertThrows(IllegalArgumentException.class, () -> batch.copyToForeign(local, 0, 1, 8, 0, PAGE_SIZE + 1));
            assertThrows(IllegalArgumentException.class, () -> batch.copyToForeign(local, 0, 1, 8, 0, 0));
            assertThrows(IllegalArgumentException.class, () -> batch.copyToForeign(local, PAGE_SIZE + 1, 1, 8, 0,
                    PAGE_SIZE));
            assertThrows(IllegalArgumentException.class, () -> batch.copyFromForeign(1, 8, 0,
                    local.asReadOnlyBuffer(), 0, 8));
            assertThrows(IllegalArgumentException.class, () -> batch.copyFromForeign(1, 8, 0,
                    ByteBuffer.allocate(8), 0, 8));
            assertEquals(0, batch.size());
            batch.copyFromForeign(1, 8, 0, local, 0, 8);
            batch.copyFromForeign(1, 8, 0, local, 0, 8);
            assertThrows(IllegalStateException.class, () -> batch.copyFromForeign(1, 8, 0, local, 0, 8));
        }
    }

    protected static long address(ByteBuffer buffer) {
        return Pointer.nativeValue(Native.getDirectBufferPointer(buffer));
    }

    /** The permission column ("rw-s", "r--s") of the mapping containing {@code address}, from /proc/self/maps. */
    protected static String permissionsOf(long address) throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/maps"))) {
            String[] fields = line.split("\\s+");
            String[] range = fields[0].split("-");
            long start = Long.parseUnsignedLong(range[0], 16);
            long end = Long.parseUnsignedLong(range[1], 16);
            if (Long.compareUnsigned(address, start) >= 0 && Long.compareUnsigned(address, end) < 0) {
                return fields[1];
            }
        }
        throw new AssertionError("address not mapped: 0x" + Long.toHexString(address));
    }
}
