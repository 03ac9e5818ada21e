package io.jtap.xen;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The behaviour every {@link XenStore} must show, as C xenstored 4.17 shows it. {@code RealXenstoredTest} runs this
 * against xenstored itself, so a case here is a fact about xenstored, not about our reading of it.
 *
 * <p>Each case works below its own base path (under {@code /jtap-test}), removes it afterwards, and then checks that
 * nothing leaked.
 */
public abstract class XenStoreContract {
    private static final AtomicLong CASES = new AtomicLong();
    private static final long EVENT_TIMEOUT_MS = 10_000;

    private final List<XenStore> opened = new ArrayList<>();
    /** A privileged (dom0) connection, opened for each case. */
    protected XenStore xs;
    /** This case's absolute base path; exists at the start of each case, owned by dom0, "n0". */
    protected String base;

    /** A new privileged (dom0) connection; the contract closes it. */
    protected abstract XenStore connectPrivileged() throws IOException;

    /**
     * A new connection acting as unprivileged {@code domid}, or empty when the implementation under test cannot act as
     * another domain (then the permission cases are skipped). The contract closes it.
     */
    protected Optional<XenStore> connectAs(int domid) throws IOException {
        return Optional.empty();
    }

    /** Fails when watches or transactions are still open; called after each case, before connections close. */
    protected abstract void assertNoLeaks();

    /** Runs after each case, once the contract has closed its connections (JUnit runs a subclass's own
     * {@code @AfterEach} methods before the contract's). */
    protected void afterCase() {
    }

    protected final XenStore open() throws IOException {
        XenStore c = connectPrivileged();
        opened.add(c);
        return c;
    }

    protected final XenStore openAs(int domid) throws IOException {
        Optional<XenStore> c = connectAs(domid);
        Assumptions.assumeTrue(c.isPresent(), "this implementation cannot connect as an unprivileged domain");
        opened.add(c.get());
        return c.get();
    }

    @BeforeEach
    void openBase() throws IOException {
        xs = open();
        base = "/jtap-test/c" + CASES.incrementAndGet() + "-" + Long.toHexString(System.nanoTime());
        xs.mkdir(base);
    }

    @AfterEach
    void removeBase() throws IOException {
        try {
            xs.rm(base);
            assertNoLeaks();
        } finally {
            for (XenStore c : opened) {
                c.close();
            }
            opened.clear();
            afterCase();
        }
    }

    private static XenStoreException expectError(String error, Executable call) {
        XenStoreException e = assertThrows(XenStoreException.class, call::run);
        assertEquals(error, e.error(), () -> "error name; message: " + e.getMessage());
        assertTrue(e.getMessage().contains("error=" + error), e.getMessage());
        return e;
    }

    @FunctionalInterface
    private interface Executable {
        void run() throws Exception;
    }

    // -- nodes --------------------------------------------------------------------------------------------------------

    @Test
    void writeThenReadReturnsTheSameBytes() throws IOException {
        byte[] all = new byte[256];
        for (int i = 0; i < all.length; i++) {
            all[i] = (byte) i; // includes NUL: a value is raw bytes, not a C string
        }
        xs.write(base + "/bin", all);
        xs.write(base + "/empty", new byte[0]);
        xs.write(base + "/s", "hello");
        assertArrayEquals(all, xs.read(base + "/bin").orElseThrow());
        assertArrayEquals(new byte[0], xs.read(base + "/empty").orElseThrow());
        assertEquals(Optional.of("hello"), xs.readString(base + "/s"));
    }

    @Test
    void readOfAMissingNodeIsEmpty() throws IOException {
        assertEquals(Optional.empty(), xs.read(base + "/missing"));
        assertEquals(Optional.empty(), xs.read(base + "/missing/deeper"));
    }

    @Test
    void writeCreatesMissingParentsWithEmptyValues() throws IOException {
        xs.write(base + "/a/b/c", "v");
        assertEquals(List.of("b"), xs.directory(base + "/a"));
        assertEquals(Optional.of(""), xs.readString(base + "/a/b"));
        assertEquals(Optional.of("v"), xs.readString(base + "/a/b/c"));
    }

    @Test
    void directoryListsChildrenInCreationOrder() throws IOException {
        xs.mkdir(base + "/b");
        xs.mkdir(base + "/a");
        xs.write(base + "/c", "x");
        assertEquals(List.of("b", "a", "c"), xs.directory(base));
        assertEquals(List.of(), xs.directory(base + "/a"));
    }

    @Test
    void mkdirOfAnExistingNodeKeepsItsValue() throws IOException {
        xs.write(base + "/k", "kept");
        xs.mkdir(base + "/k");
        assertEquals(Optional.of("kept"), xs.readString(base + "/k"));
    }

    @Test
    void rmRemovesTheSubtree() throws IOException {
        xs.write(base + "/a/b/c", "v");
        xs.write(base + "/a/d", "v");
        xs.rm(base + "/a");
        assertEquals(Optional.empty(), xs.read(base + "/a/b/c"));
        assertEquals(Optional.empty(), xs.read(base + "/a"));
        assertEquals(List.of(), xs.directory(base));
    }

    @Test
    void rmOfAMissingChildOfAnExistingParentSucceeds() throws IOException {
        xs.rm(base + "/never");
        expectError(XenStoreException.ENOENT, () -> xs.rm(base + "/never/below"));
    }

    @Test
    void rmOfTheRootIsInvalid() {
        expectError(XenStoreException.EINVAL, () -> xs.rm("/"));
    }

    @Test
    void directoryAndPermissionsOfAMissingNodeAreEnoent() {
        XenStoreException e = expectError(XenStoreException.ENOENT, () -> xs.directory(base + "/missing"));
        assertEquals("xenstore directory failed: path=" + base + "/missing, error=ENOENT", e.getMessage());
        expectError(XenStoreException.ENOENT, () -> xs.getPermissions(base + "/missing"));
        expectError(XenStoreException.ENOENT,
                () -> xs.setPermissions(base + "/missing", List.of(XenStorePermission.parse("n0"))));
    }

    @Test
    void directoryIfPresentListsAMissingNodeAsEmpty() throws Exception {
        assertEquals(List.of(), xs.directoryIfPresent(base + "/missing"));
        xs.write(base + "/present/a", "1");
        xs.write(base + "/present/b", "2");
        assertEquals(List.of("a", "b"), xs.directoryIfPresent(base + "/present"));
    }

    @Test
    void relativePathsAreBelowTheConnectionsHome() throws IOException {
        String rel = "jtap-rel-" + base.substring(base.lastIndexOf('/') + 1);
        try {
            xs.write(rel + "/x", "r");
            assertEquals(Optional.of("r"), xs.readString("/local/domain/0/" + rel + "/x"));
            assertEquals(Optional.of("r"), xs.readString(rel + "/x"));
        } finally {
            xs.rm("/local/domain/0/" + rel);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "/a//b", "/a/", "/a.b", "/a b", "/a:b", "/\u00e9"})
    void malformedPathsAreEinval(String path) {
        expectError(XenStoreException.EINVAL, () -> xs.write(path, "x"));
        expectError(XenStoreException.EINVAL, () -> xs.read(path));
    }

    @Test
    void pathsUpTo2048CharactersAreAcceptedAndLongerOnesAreEinval() throws IOException {
        String longest = base + "/" + "p".repeat(XenStorePath.XENSTORE_REL_PATH_MAX - base.length() - 1);
        assertEquals(2048, longest.length());
        xs.write(longest, "ok");
        assertEquals(Optional.of("ok"), xs.readString(longest));
        expectError(XenStoreException.EINVAL, () -> xs.write(longest + "q", "x"));
        expectError(XenStoreException.EINVAL, () -> xs.write("/" + "q".repeat(3100), "x"));
    }

    @Test
    void valuesFillThePayloadAndNoMore() throws IOException {
        String path = base + "/big";
        byte[] fits = new byte[4096 - path.length() - 1];
        java.util.Arrays.fill(fits, (byte) 'v');
        xs.write(path, fits);
        assertArrayEquals(fits, xs.read(path).orElseThrow());
        expectError(XenStoreException.E2BIG, () -> xs.write(path, new byte[fits.length + 1]));
    }

    // -- permissions --------------------------------------------------------------------------------------------------

    @Test
    void newNodesInheritTheirParentsPermissions() throws IOException {
        List<XenStorePermission> perms = XenStorePermission.parseList("n0 r5 b7");
        xs.mkdir(base + "/p");
        xs.setPermissions(base + "/p", perms);
        assertEquals(perms, xs.getPermissions(base + "/p"));
        xs.write(base + "/p/q/r", "x");
        assertEquals(perms, xs.getPermissions(base + "/p/q"));
        assertEquals(perms, xs.getPermissions(base + "/p/q/r"));
        assertEquals("n0", xs.getPermissions(base).get(0).toString());
    }

    @Test
    void setPermissionsRejectsAnEmptyList() throws IOException {
        expectError(XenStoreException.EINVAL, () -> xs.setPermissions(base, List.of()));
    }

    @Test
    void anUnprivilegedDomainNeedsPermission() throws IOException {
        xs.write(base + "/secret", "s");
        xs.write(base + "/public", "p");
        xs.setPermissions(base + "/public", XenStorePermission.parseList("n0 r5"));
        XenStore domU = openAs(5);
        expectError(XenStoreException.EACCES, () -> domU.read(base + "/secret"));
        expectError(XenStoreException.EACCES, () -> domU.write(base + "/secret", "x"));
        expectError(XenStoreException.EACCES, () -> domU.read(base + "/secret/missing"));
        expectError(XenStoreException.EACCES, () -> domU.directory(base));
        assertEquals(Optional.of("p"), domU.readString(base + "/public"));
        assertEquals(Optional.empty(), domU.read(base + "/public/missing"));
        expectError(XenStoreException.EACCES, () -> domU.write(base + "/public", "x"));
        expectError(XenStoreException.EACCES, () -> domU.write(base + "/public/child", "x"));
        expectError(XenStoreException.EACCES,
                () -> domU.setPermissions(base + "/public", XenStorePermission.parseList("n5")));
    }

    @Test
    void anUnprivilegedDomainOwnsWhatItCreates() throws IOException {
        xs.mkdir(base + "/dom5");
        xs.setPermissions(base + "/dom5", XenStorePermission.parseList("n5 r0"));
        XenStore domU = openAs(5);
        domU.write(base + "/dom5/mine", "m");
        assertEquals(5, xs.getPermissions(base + "/dom5/mine").get(0).domid());
        domU.setPermissions(base + "/dom5/mine", XenStorePermission.parseList("n5 r6"));
        expectError(XenStoreException.EPERM,
                () -> domU.setPermissions(base + "/dom5/mine", XenStorePermission.parseList("n6")));
        XenStore other = openAs(6);
        assertEquals(Optional.of("m"), other.readString(base + "/dom5/mine"));
        expectError(XenStoreException.EACCES, () -> other.read(base + "/dom5"));
    }

    @Test
    void aDomainsOwnEntryOverridesTheDefaultAccess() throws IOException {
        xs.write(base + "/n", "v");
        xs.setPermissions(base + "/n", XenStorePermission.parseList("r0 n5 w6 b7"));
        XenStore dom5 = openAs(5);
        XenStore dom6 = openAs(6);
        XenStore dom8 = openAs(8);
        expectError(XenStoreException.EACCES, () -> dom5.read(base + "/n")); // listed "n": the default "r" is not his
        expectError(XenStoreException.EACCES, () -> dom5.write(base + "/n", "5"));
        expectError(XenStoreException.EACCES, () -> dom6.read(base + "/n")); // write-only
        dom6.write(base + "/n", "6");
        assertEquals(Optional.of("6"), dom8.readString(base + "/n")); // not listed: the owner entry's "r"
        expectError(XenStoreException.EACCES, () -> dom8.write(base + "/n", "8"));
        // Write access is not ownership: only the owner (or dom0) may change the permissions.
        expectError(XenStoreException.EACCES,
                () -> dom6.setPermissions(base + "/n", XenStorePermission.parseList("n6")));
        assertEquals(XenStorePermission.parseList("r0 n5 w6 b7"), xs.getPermissions(base + "/n"));
    }

    @Test
    void creatingANodeNeedsWriteAccessToItsNearestExistingAncestor() throws IOException {
        xs.mkdir(base + "/open");
        xs.setPermissions(base + "/open", XenStorePermission.parseList("n0 w5"));
        xs.mkdir(base + "/ro");
        xs.setPermissions(base + "/ro", XenStorePermission.parseList("n0 r5"));
        XenStore domU = openAs(5);
        // base itself is dom0's and closed to dom5; only the nearest existing ancestor counts.
        domU.write(base + "/open/a/b", "v");
        assertEquals(Optional.of("v"), xs.readString(base + "/open/a/b"));
        assertEquals(XenStorePermission.parseList("n5 w5"), xs.getPermissions(base + "/open/a"));
        assertEquals(XenStorePermission.parseList("n5 w5"), xs.getPermissions(base + "/open/a/b"));
        assertEquals(Optional.of("v"), domU.readString(base + "/open/a/b")); // the owner may read what he created
        expectError(XenStoreException.EACCES, () -> domU.write(base + "/ro/a/b", "v"));
        expectError(XenStoreException.EACCES, () -> domU.mkdir(base + "/ro/m"));
        expectError(XenStoreException.EACCES, () -> domU.write(base + "/c", "v"));
        assertEquals(List.of(), xs.directory(base + "/ro"), "a refused create leaves nothing behind");
        assertEquals(List.of("open", "ro"), xs.directory(base));
    }

    /**
     * What an unprivileged domain learns about a missing node depends on the nearest ancestor that exists: ENOENT when
     * it grants the access the operation needs (read; write for rm), else EACCES, so a closed subtree hides its shape.
     */
    @Test
    void aMissingNodeIsEaccesOrEnoentByItsNearestExistingAncestor() throws IOException {
        xs.mkdir(base + "/hidden");
        xs.mkdir(base + "/shown/inner");
        xs.setPermissions(base + "/shown", XenStorePermission.parseList("n0 r5"));
        xs.setPermissions(base + "/shown/inner", XenStorePermission.parseList("n0"));
        xs.mkdir(base + "/wo");
        xs.setPermissions(base + "/wo", XenStorePermission.parseList("n0 w5"));
        XenStore domU = openAs(5);
        for (String missing : List.of("/hidden/x", "/hidden/x/y", "/shown/inner/x", "/nothing/x")) {
            String p = base + missing;
            expectError(XenStoreException.EACCES, () -> domU.read(p));
            expectError(XenStoreException.EACCES, () -> domU.directory(p));
            expectError(XenStoreException.EACCES, () -> domU.getPermissions(p));
            expectError(XenStoreException.EACCES, () -> domU.rm(p));
        }
        for (String missing : List.of("/shown/x", "/shown/x/y")) { // readable, not writable
            String p = base + missing;
            assertEquals(Optional.empty(), domU.read(p));
            expectError(XenStoreException.ENOENT, () -> domU.directory(p));
            expectError(XenStoreException.ENOENT, () -> domU.getPermissions(p));
            expectError(XenStoreException.EACCES, () -> domU.rm(p));
        }
        // Writable, not readable: reading says EACCES, but rm learns the node is missing (and, as for dom0, succeeds
        // when the parent exists).
        expectError(XenStoreException.EACCES, () -> domU.read(base + "/wo/x"));
        expectError(XenStoreException.EACCES, () -> domU.directory(base + "/wo/x"));
        domU.rm(base + "/wo/x");
        expectError(XenStoreException.ENOENT, () -> domU.rm(base + "/wo/x/y"));
    }

    // -- watches ------------------------------------------------------------------------------------------------------

    /** Records events; {@link #await} waits for one with a given path and returns everything seen up to it. */
    public static final class Recorder implements XenStore.WatchListener {
        private final BlockingQueue<String> events = new LinkedBlockingQueue<>();
        private final List<String> seen = new ArrayList<>();

        @Override
        public void onEvent(String path, String token) {
            events.add(path + " " + token);
        }

        public List<String> await(String pathAndToken) throws InterruptedException {
            long deadline = System.currentTimeMillis() + EVENT_TIMEOUT_MS;
            while (true) {
                String e = events.poll(Math.max(1, deadline - System.currentTimeMillis()), TimeUnit.MILLISECONDS);
                if (e == null) {
                    fail("no watch event '" + pathAndToken + "' within " + EVENT_TIMEOUT_MS + " ms; seen: " + seen);
                }
                seen.add(e);
                if (e.equals(pathAndToken)) {
                    return List.copyOf(seen);
                }
            }
        }

        /** Events that arrived so far, without waiting. */
        public List<String> drain() {
            List<String> more = new ArrayList<>();
            events.drainTo(more);
            seen.addAll(more);
            return List.copyOf(seen);
        }
    }

    @Test
    void aWatchFiresOnceOnRegistrationAndForChangesAtOrBelowItsPath() throws Exception {
        Recorder r = new Recorder();
        try (XenStore.Watch w = xs.watch(base + "/w", "tok", r)) {
            assertEquals("tok", w.token());
            assertEquals(List.of(base + "/w tok"), r.await(base + "/w tok"));
            xs.write(base + "/w/x/y", "1");
            xs.write(base + "/other", "1"); // not below the watch: no event
            xs.write(base + "/w", "2");
            assertEquals(List.of(base + "/w tok", base + "/w/x/y tok", base + "/w tok"), r.await(base + "/w tok"));
        }
    }

    /** xenstored's watch_permitted: an event goes to a domain that may read the changed node or its parent. */
    @Test
    void watchEventsGoOnlyToDomainsThatMayReadTheChangedNodeOrItsParent() throws Exception {
        xs.mkdir(base + "/w");
        xs.setPermissions(base + "/w", XenStorePermission.parseList("n0 r5"));
        xs.write(base + "/w/closed/deep", "d");
        xs.setPermissions(base + "/w/closed", XenStorePermission.parseList("n0"));
        xs.setPermissions(base + "/w/closed/deep", XenStorePermission.parseList("n0"));
        xs.write(base + "/w/hidden", "h");
        xs.setPermissions(base + "/w/hidden", XenStorePermission.parseList("n0"));
        XenStore domU = openAs(5);
        Recorder r = new Recorder();
        try (XenStore.Watch w = domU.watch(base + "/w", "u", r)) {
            r.await(base + "/w u");
            xs.write(base + "/w/closed/deep", "x"); // neither it nor its parent readable by dom5: no event
            xs.write(base + "/w/hidden", "x"); // unreadable, but its parent is readable: an event
            xs.write(base + "/w/seen", "y"); // inherits "n0 r5": an event
            assertEquals(List.of(base + "/w u", base + "/w/hidden u", base + "/w/seen u"), r.await(base + "/w/seen u"));
            xs.rm(base + "/w/closed/deep"); // removal is filtered the same way
            xs.write(base + "/w/seen", "z");
            assertEquals(List.of(base + "/w u", base + "/w/hidden u", base + "/w/seen u", base + "/w/seen u"),
                    r.await(base + "/w/seen u"));
        }
    }

    /** A set-perms is seen by a domain that could read the node before it or can read it after it. */
    @Test
    void aPermissionChangeIsSeenByDomainsThatCouldReadTheNodeBeforeOrAfter() throws Exception {
        xs.write(base + "/p/a", "x");
        xs.write(base + "/p/b", "x");
        xs.write(base + "/p/c", "x");
        xs.write(base + "/p/marker", "x");
        xs.setPermissions(base + "/p/marker", XenStorePermission.parseList("n0 r5"));
        xs.setPermissions(base + "/p/a", XenStorePermission.parseList("n0 r5"));
        XenStore domU = openAs(5);
        Recorder r = new Recorder();
        try (XenStore.Watch w = domU.watch(base + "/p", "u", r)) {
            r.await(base + "/p u");
            xs.setPermissions(base + "/p/a", XenStorePermission.parseList("n0")); // revoked: seen
            xs.setPermissions(base + "/p/b", XenStorePermission.parseList("n0 r5")); // granted: seen
            xs.setPermissions(base + "/p/c", XenStorePermission.parseList("n0 w5")); // never readable: not seen
            xs.write(base + "/p/marker", "m");
            assertEquals(List.of(base + "/p u", base + "/p/a u", base + "/p/b u", base + "/p/marker u"),
                    r.await(base + "/p/marker u"));
        }
    }

    @Test
    void aWatchSeesChangesMadeByOtherConnections() throws Exception {
        Recorder r = new Recorder();
        XenStore other = open();
        try (XenStore.Watch w = xs.watch(base, "t", r)) {
            r.await(base + " t");
            other.write(base + "/from-other", "x");
            r.await(base + "/from-other t");
            other.setPermissions(base + "/from-other", XenStorePermission.parseList("n0 r3"));
            r.await(base + "/from-other t");
        }
    }

    @Test
    void removingAnAncestorFiresTheWatchWithItsOwnPath() throws Exception {
        xs.write(base + "/a/b/c", "x");
        Recorder r = new Recorder();
        try (XenStore.Watch w = xs.watch(base + "/a/b", "t", r)) {
            r.await(base + "/a/b t");
            xs.rm(base + "/a");
            r.await(base + "/a/b t");
        }
    }

    /** Removing a subtree fires a watch below it only if a node was removed at exactly the watched path. */
    @Test
    void removingASubtreeFiresWatchesOnRemovedNodesOnly() throws Exception {
        xs.write(base + "/a/b", "x");
        Recorder removed = new Recorder();
        Recorder never = new Recorder();
        Recorder marker = new Recorder();
        try (XenStore.Watch w1 = xs.watch(base + "/a/b", "b", removed);
                XenStore.Watch w2 = xs.watch(base + "/a/b/never", "never", never);
                XenStore.Watch w3 = xs.watch(base + "/m", "m", marker)) {
            removed.await(base + "/a/b b");
            never.await(base + "/a/b/never never");
            marker.await(base + "/m m");
            xs.rm(base + "/a");
            removed.await(base + "/a/b b");
            xs.write(base + "/m", "x"); // one connection's events arrive in order: after this, all of rm's are in
            marker.await(base + "/m m");
            assertEquals(List.of(base + "/a/b/never never"), never.drain());
        }
    }

    @Test
    void closingAWatchStopsItsEvents() throws Exception {
        Recorder first = new Recorder();
        Recorder marker = new Recorder();
        XenStore.Watch w = xs.watch(base, "first", first);
        first.await(base + " first");
        w.close();
        w.close(); // idempotent
        try (XenStore.Watch m = xs.watch(base, "marker", marker)) {
            marker.await(base + " marker");
            xs.write(base + "/after", "x");
            // Events of one connection are delivered in order: once the marker saw the write, so would have 'first'.
            marker.await(base + "/after marker");
            assertEquals(List.of(base + " first"), first.drain());
        }
    }

    @Test
    void relativeWatchesReportRelativePaths() throws Exception {
        String rel = "jtap-rel-" + base.substring(base.lastIndexOf('/') + 1);
        Recorder r = new Recorder();
        try (XenStore.Watch w = xs.watch(rel, "rel", r)) {
            r.await(rel + " rel");
            xs.write("/local/domain/0/" + rel + "/q", "x");
            r.await(rel + "/q rel");
        } finally {
            xs.rm("/local/domain/0/" + rel);
        }
    }

    @Test
    void specialWatchesCanBeRegistered() throws Exception {
        Recorder r = new Recorder();
        try (XenStore.Watch w = xs.watch(XenStorePath.RELEASE_DOMAIN, "rd", r)) {
            r.await("@releaseDomain rd");
        }
    }

    @Test
    void tokensAreUniquePerConnection() throws Exception {
        Recorder r = new Recorder();
        try (XenStore.Watch w = xs.watch(base, "dup", r)) {
            assertThrows(IllegalArgumentException.class, () -> xs.watch(base + "/x", "dup", r));
            try (XenStore.Watch fresh1 = xs.watch(base, r); XenStore.Watch fresh2 = xs.watch(base, r)) {
                assertFalse(fresh1.token().equals(fresh2.token()));
            }
        }
    }

    @Test
    void aListenerMayCallBackIntoTheConnection() throws Exception {
        BlockingQueue<String> seen = new LinkedBlockingQueue<>();
        try (XenStore.Watch w = xs.watch(base + "/cb", "cb", (path, token) -> {
            try {
                seen.add(path + "=" + xs.readString(path).orElse("<none>"));
            } catch (IOException e) {
                seen.add(path + "!" + e.getMessage());
            }
        })) {
            assertEquals(base + "/cb=<none>", seen.poll(EVENT_TIMEOUT_MS, TimeUnit.MILLISECONDS));
            xs.write(base + "/cb", "v");
            assertEquals(base + "/cb=v", seen.poll(EVENT_TIMEOUT_MS, TimeUnit.MILLISECONDS));
        }
    }

    /**
     * Many threads write while a watch is registered on the same connection: replies and events interleave on the
     * wire (an event may come before the reply to the write that caused it); no reply may be lost or misrouted, and
     * every write's event must arrive.
     */
    @Test
    void eventsAndRepliesInterleaveWithoutLoss() throws Exception {
        int threads = 4;
        int writesPerThread = 50;
        Recorder r = new Recorder();
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try (XenStore.Watch w = xs.watch(base + "/race", "race", r)) {
            r.await(base + "/race race");
            List<Future<?>> done = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int thread = t;
                done.add(pool.submit(() -> {
                    for (int i = 0; i < writesPerThread; i++) {
                        String p = base + "/race/t" + thread + "-" + i;
                        xs.write(p, p);
                        assertEquals(Optional.of(p), xs.readString(p));
                    }
                    return null;
                }));
            }
            for (Future<?> f : done) {
                f.get(60, TimeUnit.SECONDS);
            }
            xs.write(base + "/race/done", "x"); // events arrive in order: once this one is in, all writes' are
            long writeEvents = r.await(base + "/race/done race").stream()
                    .filter(e -> e.startsWith(base + "/race/t")).count();
            assertEquals(threads * writesPerThread, writeEvents);
        } finally {
            pool.shutdownNow();
        }
    }

    // -- transactions -------------------------------------------------------------------------------------------------

    @Test
    void aCommittedTransactionsChangesBecomeVisibleTogether() throws Exception {
        XenStore other = open();
        String result = xs.transaction(tx -> {
            tx.write(base + "/t/a", "1");
            tx.write(base + "/t/b", "2");
            assertEquals(Optional.of("1"), tx.readString(base + "/t/a"), "a transaction reads its own writes");
            assertEquals(List.of("a", "b"), tx.directory(base + "/t"));
            assertEquals(Optional.empty(), other.read(base + "/t/a"), "invisible outside before commit");
            return "done";
        });
        assertEquals("done", result);
        assertEquals(Optional.of("1"), other.readString(base + "/t/a"));
        assertEquals(Optional.of("2"), other.readString(base + "/t/b"));
    }

    @Test
    void aTransactionWhoseBodyThrowsIsAborted() throws Exception {
        IllegalStateException thrown = assertThrows(IllegalStateException.class, () -> xs.transaction(tx -> {
            tx.write(base + "/aborted", "x");
            tx.rm(base);
            throw new IllegalStateException("body failed");
        }));
        assertEquals("body failed", thrown.getMessage());
        assertEquals(Optional.empty(), xs.read(base + "/aborted"));
        assertEquals(Optional.of(""), xs.readString(base));
    }

    @Test
    void aConflictingTransactionRunsItsBodyAgain() throws Exception {
        XenStore other = open();
        xs.write(base + "/n", "0");
        AtomicInteger runs = new AtomicInteger();
        int result = xs.transaction(tx -> {
            runs.incrementAndGet();
            int n = Integer.parseInt(tx.readString(base + "/n").orElseThrow());
            if (tx.attempt() == 0) {
                other.write(base + "/n", "10"); // changes a node the transaction read: its commit must fail
            }
            tx.write(base + "/n", Integer.toString(n + 1));
            return n + 1;
        });
        assertEquals(2, runs.get());
        assertEquals(11, result);
        assertEquals(Optional.of("11"), xs.readString(base + "/n"));
    }

    @Test
    void aNodeCreatedOutsideAfterTheTransactionFoundItMissingIsAConflict() throws Exception {
        XenStore other = open();
        AtomicInteger runs = new AtomicInteger();
        xs.transaction(tx -> {
            runs.incrementAndGet();
            if (tx.read(base + "/late").isEmpty()) {
                if (tx.attempt() == 0) {
                    other.write(base + "/late", "outside");
                }
                tx.write(base + "/late", "inside");
            }
            return null;
        });
        assertEquals(2, runs.get());
        assertEquals(Optional.of("outside"), xs.readString(base + "/late"));
    }

    @Test
    void concurrentIncrementsInTransactionsAreNotLost() throws Exception {
        int threads = 4;
        int increments = 10;
        xs.write(base + "/counter", "0");
        List<XenStore> conns = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            conns.add(open());
        }
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            List<Future<?>> done = new ArrayList<>();
            for (XenStore c : conns) {
                done.add(pool.submit(() -> {
                    for (int i = 0; i < increments; i++) {
                        c.transaction(tx -> {
                            int n = Integer.parseInt(tx.readString(base + "/counter").orElseThrow());
                            tx.write(base + "/counter", Integer.toString(n + 1));
                            return null;
                        });
                    }
                    return null;
                }));
            }
            for (Future<?> f : done) {
                f.get(120, TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
        }
        assertEquals(Optional.of(Integer.toString(threads * increments)), xs.readString(base + "/counter"));
    }

    @Test
    void aTransactionThatAlwaysConflictsGivesUpWithEagain() throws Exception {
        XenStore other = open();
        xs.write(base + "/hot", "0");
        AtomicInteger runs = new AtomicInteger();
        XenStoreException e = expectError(XenStoreException.EAGAIN, () -> xs.transaction(tx -> {
            runs.incrementAndGet();
            tx.read(base + "/hot");
            other.write(base + "/hot", Integer.toString(tx.attempt()));
            tx.write(base + "/hot2", "x");
            return null;
        }));
        assertEquals(XenStore.MAX_TRANSACTION_ATTEMPTS, runs.get());
        assertTrue(e.getMessage().startsWith("xenstore transaction failed: error=EAGAIN"), e.getMessage());
        assertEquals(Optional.empty(), xs.read(base + "/hot2"));
    }

    @Test
    void watchesSeeATransactionsChangesOnlyAtCommit() throws Exception {
        Recorder r = new Recorder();
        XenStore other = open();
        try (XenStore.Watch w = xs.watch(base, "tx", r)) {
            r.await(base + " tx");
            xs.transaction(tx -> {
                tx.write(base + "/in-tx", "x");
                if (tx.attempt() == 0) {
                    other.write(base + "/marker", "m"); // outside the transaction: fires now
                    try {
                        List<String> seen = r.await(base + "/marker tx");
                        assertFalse(seen.contains(base + "/in-tx tx"), "event before commit: " + seen);
                    } catch (InterruptedException e) {
                        throw new IllegalStateException(e);
                    }
                }
                return null;
            });
            r.await(base + "/in-tx tx");
        }
    }

    @Test
    void aTransactionViewIsUnusableAfterItsBody() throws Exception {
        XenStore.Transaction[] escaped = new XenStore.Transaction[1];
        xs.transaction(tx -> {
            escaped[0] = tx;
            return null;
        });
        assertThrows(IllegalStateException.class, () -> escaped[0].read(base));
    }
}
