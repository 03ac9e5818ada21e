package io.jtap.xen;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.xen.sim.SimulatedXen;
import io.jtap.xen.sim.SimulatedXenExtension;
import java.io.IOException;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * A device writes only into the backend directory it claimed; a directory removed, or removed and written afresh at
 * the same path (a detach and an attach in one transaction), is never its again.
 */
@ExtendWith(SimulatedXenExtension.class)
class BackendClaimTest {
    private static final String ROOT = "/local/domain/0/backend/vif";
    private static final String DIR = ROOT + "/5/0";

    private static void writeDirectory(XenStoreAccess tx) throws IOException {
        tx.write(DIR + "/frontend", "/local/domain/5/device/vif/0");
        tx.write(DIR + "/state", "1");
    }

    @Test
    void aClaimedDirectoryTakesTheClaimsWrites(SimulatedXen xen) throws IOException {
        try (XenStore xs = xen.platform(SimulatedXen.DOM0).openXenStore()) {
            writeDirectory(xs);
            BackendClaim claim = new BackendClaim(DIR);
            assertTrue(claim.superseded(xs), "not claimed yet");
            assertTrue(claim.claim(xs));
            assertEquals(Optional.of(claim.instance()), xs.readString(DIR + "/" + BackendClaim.INSTANCE_NODE));
            assertTrue(claim.publish(xs, tx -> tx.write(DIR + "/state", "2")));
            assertEquals(Optional.of("2"), xs.readString(DIR + "/state"));
            assertTrue(claim.holds(xs));
            assertFalse(claim.superseded(xs));
            assertFalse(claim.lost());
        }
    }

    @Test
    void aDirectoryGoneBeforeTheClaimIsNeitherClaimedNorWrittenAgain(SimulatedXen xen) throws IOException {
        try (XenStore xs = xen.platform(SimulatedXen.DOM0).openXenStore()) {
            BackendClaim claim = new BackendClaim(DIR);
            assertFalse(claim.claim(xs));
            assertFalse(claim.publish(xs, tx -> tx.write(DIR + "/state", "2")));
            assertEquals(Optional.empty(), xs.read(DIR), "a write re-created the directory");
            assertTrue(claim.superseded(xs));
        }
    }

    /** Removed; removed and written afresh in one transaction; taken by another device (a second daemon). */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"removed", "written afresh", "claimed by another"})
    void aDirectoryNoLongerTheClaimsIsLeftAlone(String how, SimulatedXen xen) throws IOException {
        try (XenStore xs = xen.platform(SimulatedXen.DOM0).openXenStore()) {
            writeDirectory(xs);
            BackendClaim claim = new BackendClaim(DIR);
            assertTrue(claim.claim(xs));
            switch (how) {
                case "removed" -> xs.rm(DIR);
                case "written afresh" -> xs.transaction(tx -> {
                    tx.rm(DIR);
                    writeDirectory(tx);
                    return null;
                });
                default -> assertTrue(new BackendClaim(DIR).claim(xs));
            }
            assertTrue(claim.superseded(xs), "superseded before the device noticed");
            assertFalse(claim.lost(), "superseded() only reads");
            Optional<byte[]> before = xs.read(DIR + "/state");
            List<String> nodes = xs.directoryIfPresent(DIR);
            assertFalse(claim.publish(xs, tx -> tx.write(DIR + "/state", "2")));
            assertTrue(claim.lost());
            assertEquals(before.map(String::new), xs.read(DIR + "/state").map(String::new));
            assertEquals(nodes, xs.directoryIfPresent(DIR));
            assertFalse(claim.holds(xs));
            assertTrue(claim.superseded(xs));
        }
    }

    /** A check without a write ({@link BackendClaim#holds}) finds the loss as a write would, and marks it. */
    @Test
    void holdsFindsADirectoryWrittenAfresh(SimulatedXen xen) throws IOException {
        try (XenStore xs = xen.platform(SimulatedXen.DOM0).openXenStore()) {
            writeDirectory(xs);
            BackendClaim claim = new BackendClaim(DIR);
            assertTrue(claim.claim(xs));
            xs.transaction(tx -> {
                tx.rm(DIR);
                writeDirectory(tx);
                return null;
            });
            assertFalse(claim.holds(xs));
            assertTrue(claim.lost());
            assertFalse(claim.publish(xs, tx -> tx.write(DIR + "/state", "2")));
            assertEquals(Optional.of("1"), xs.readString(DIR + "/state"));
        }
    }

    /** Which event paths mark a device directory as perhaps written afresh, and which devices that covers. */
    @ParameterizedTest(name = "{0} covers {1}: {2}")
    @CsvSource({
        "/local/domain/0/backend/vif,         5/0, true",
        "/local/domain/0/backend/vif/5,       5/0, true",
        "/local/domain/0/backend/vif/5/0,     5/0, true",
        "/local/domain/0/backend/vif/5/1,     5/0, false",
        "/local/domain/0/backend/vif/51/0,    5/0, false",
        "/local/domain/0/backend/vif/5/0/state, 5/0, false",
        "/local/domain/0/backend/vbd/5/0,     5/0, false",
        "/local/domain/0/backend/vifx/5/0,    5/0, false"})
    void directoryEvents(String path, String key, boolean covered) {
        BackendDirectoryEvents events = new BackendDirectoryEvents(ROOT);
        events.note(path);
        Set<String> drained = events.drain();
        assertEquals(covered, BackendDirectoryEvents.covers(drained, key), drained::toString);
        assertEquals(Set.of(), events.drain(), "a drain takes the events");
    }
}
