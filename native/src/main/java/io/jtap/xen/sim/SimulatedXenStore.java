package io.jtap.xen.sim;

import io.jtap.xen.XenStore;
import io.jtap.xen.XenStoreException;
import io.jtap.xen.XenStorePath;
import io.jtap.xen.XenStorePermission;
import io.jtap.xen.XenStorePermission.Access;
import io.jtap.xen.XenStoreTransactionLoop;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

/**
 * An in-process xenstore with C xenstored's semantics, for tests and for running backends without Xen.
 *
 * <ul>
 *   <li>A tree of nodes, each with a byte value, a permission list and ordered children; it starts with "/" (n0),
 *       "/tool" and "/tool/xenstored", as xenstored's fresh store does.</li>
 *   <li>Permissions as {@code perm_for_conn}: dom0 is privileged; the owner (first entry) has full access; a listed
 *       domain has its entry's access; everyone else the first entry's access. A new node copies its parent's list,
 *       with the creator as owner when the creator is unprivileged. A missing node is ENOENT when its nearest
 *       existing ancestor grants the access the operation needs (read, or write for rm and set-perms) and EACCES
 *       otherwise ({@code errno_from_parents}); creating needs write access to the nearest existing ancestor.</li>
 *   <li>Watches fire for a change at or below the watched path (path of the changed node); removing a subtree fires,
 *       for each removed node, the watches on exactly that node, and for the removed node itself also those above it
 *       ({@code delete_node}). An event goes only to connections that may read the changed node, its old permissions
 *       on a set-perms, or its parent ({@code watch_permitted}); relative watches get relative paths; every watch gets
 *       an initial event with its own path.</li>
 *   <li>Transactions see a snapshot taken at start plus their own changes; at commit, if any node the transaction
 *       read or wrote (including a node it found missing) changed meanwhile, the commit fails with EAGAIN and nothing
 *       is applied. Watches for a transaction's changes fire at commit.</li>
 * </ul>
 *
 * <p>Threading: one lock guards the store; each connection delivers its watch events on its own thread, in the order
 * the changes were made. {@link #leaks()} reports watches and transactions still open on connections not closed.
 */
public final class SimulatedXenStore implements AutoCloseable {
    /** One node; immutable, so a snapshot is a copy of the map and "changed since" is an identity comparison. */
    private record Node(byte[] value, List<XenStorePermission> perms, List<String> children) {
        Node withValue(byte[] v) {
            return new Node(v, perms, children);
        }

        Node withPerms(List<XenStorePermission> p) {
            return new Node(value, p, children);
        }

        Node withChild(String name) {
            List<String> c = new ArrayList<>(children);
            c.add(name);
            return new Node(value, perms, List.copyOf(c));
        }

        Node withoutChild(String name) {
            List<String> c = new ArrayList<>(children);
            c.remove(name);
            return new Node(value, perms, List.copyOf(c));
        }
    }

    /**
     * A change that fires watches ({@code fire_watches}): the node; whether only watches on exactly this node fire
     * (each node below a removed one) or also those above it; and what decides who may see it, as
     * {@code watch_permitted}: the node's perms, its perms before a set-perms (else null), its parent's perms (null for
     * "/"), all at the time of the change.
     */
    private record Fire(String path, boolean exact, List<XenStorePermission> perms,
            List<XenStorePermission> oldPerms, List<XenStorePermission> parentPerms) {
        /** watch_permitted(): the node (before or after a permission change) or its parent is readable. */
        boolean visibleTo(int domid) {
            return access(domid, perms).canRead() || (oldPerms != null && access(domid, oldPerms).canRead())
                    || (parentPerms != null && access(domid, parentPerms).canRead());
        }
    }

    private static final byte[] EMPTY = new byte[0];
    private static final int MAX_DOMID = 0x7FEF;

    private final Object lock = new Object();
    private final List<SimConnection> connections = new ArrayList<>();
    private final Map<String, Node> tree = new HashMap<>();
    private int nextConnection = 1;
    private boolean closed;

    public SimulatedXenStore() {
        List<XenStorePermission> dom0Only = List.of(XenStorePermission.of(0, Access.NONE));
        tree.put("/", new Node(EMPTY, dom0Only, List.of("tool")));
        tree.put("/tool", new Node(EMPTY, dom0Only, List.of("xenstored")));
        tree.put("/tool/xenstored", new Node(EMPTY, dom0Only, List.of()));
    }

    /**
     * Opens a connection acting as {@code domid}; domain 0 is privileged. The caller owns the connection.
     *
     * @throws IllegalArgumentException for a domid outside 0..0x7FEF
     */
    public XenStore connect(int domid) {
        if (domid < 0 || domid > MAX_DOMID) {
            throw new IllegalArgumentException("simulated xenstore connect: domid out of range: domid=" + domid);
        }
        synchronized (lock) {
            if (closed) {
                throw new IllegalStateException("simulated xenstore is closed");
            }
            SimConnection c = new SimConnection(domid, nextConnection++);
            connections.add(c);
            return c;
        }
    }

    /** Fires {@code @introduceDomain} watches, as xenstored does when the toolstack introduces a domain. */
    public void introduceDomain(int domid) {
        fireSpecial(XenStorePath.INTRODUCE_DOMAIN);
    }

    /** Fires {@code @releaseDomain} watches, as xenstored does when a domain is released. */
    public void releaseDomain(int domid) {
        fireSpecial(XenStorePath.RELEASE_DOMAIN);
    }

    /**
     * What is still open on connections that were not closed: one line per open watch or transaction, or "" when
     * nothing leaked. {@link #openConnections()} lists the connections themselves.
     */
    public String leaks() {
        StringBuilder out = new StringBuilder();
        synchronized (lock) {
            for (SimConnection c : connections) {
                if (c.closed) {
                    continue;
                }
                for (SimWatch w : c.watches.values()) {
                    out.append("open watch: domid=").append(c.domid).append(", connection=").append(c.id)
                            .append(", path=").append(w.path).append(", token=").append(w.token).append('\n');
                }
                if (c.openTransactions > 0) {
                    out.append("open transactions: domid=").append(c.domid).append(", connection=").append(c.id)
                            .append(", count=").append(c.openTransactions).append('\n');
                }
            }
        }
        return out.toString();
    }

    /** One line per connection not yet closed. */
    public List<String> openConnections() {
        List<String> open = new ArrayList<>();
        synchronized (lock) {
            for (SimConnection c : connections) {
                if (!c.closed) {
                    open.add("open connection: domid=" + c.domid + ", connection=" + c.id);
                }
            }
        }
        return open;
    }

    /** @throws AssertionError listing {@link #leaks()} when anything leaked */
    public void assertNoLeaks() {
        String leaks = leaks();
        if (!leaks.isEmpty()) {
            throw new AssertionError("simulated xenstore leaks:\n" + leaks);
        }
    }

    /** Closes every connection. */
    @Override
    public void close() {
        List<SimConnection> all;
        synchronized (lock) {
            closed = true;
            all = new ArrayList<>(connections);
        }
        for (SimConnection c : all) {
            c.close();
        }
    }

    private void fireSpecial(String special) {
        synchronized (lock) {
            for (SimConnection c : connections) {
                if (c.closed) {
                    continue;
                }
                for (SimWatch w : c.watches.values()) {
                    if (w.path.equals(special)) {
                        c.post(w, special);
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------------------
    // The operations, on a tree that is the store or a transaction's view. Called with the lock held.

    /** One operation's context: which tree, as which domain, and what a transaction must remember. */
    private static final class Ctx {
        final Map<String, Node> tree;
        final int domid;
        final Set<String> accessed;
        final Set<String> written;
        final List<Fire> fires;

        Ctx(Map<String, Node> tree, int domid, Set<String> accessed, Set<String> written, List<Fire> fires) {
            this.tree = tree;
            this.domid = domid;
            this.accessed = accessed;
            this.written = written;
            this.fires = fires;
        }

        Node get(String path) {
            if (accessed != null) {
                accessed.add(path);
            }
            return tree.get(path);
        }

        void put(String path, Node node) {
            if (accessed != null) {
                accessed.add(path);
                written.add(path);
            }
            tree.put(path, node);
        }

        void remove(String path) {
            if (accessed != null) {
                accessed.add(path);
                written.add(path);
            }
            tree.remove(path);
        }
    }

    private static Access access(int domid, List<XenStorePermission> perms) {
        if (domid == 0 || perms.get(0).domid() == domid) {
            return Access.BOTH;
        }
        for (int i = 1; i < perms.size(); i++) {
            if (perms.get(i).domid() == domid) {
                return perms.get(i).access();
            }
        }
        return perms.get(0).access();
    }

    /** The node, checked for read or write access; null when missing and the caller may know that. */
    private static Node checked(Ctx ctx, String op, String abs, String given, boolean write)
            throws XenStoreException {
        Node node = ctx.get(abs);
        if (node == null) {
            missing(ctx, op, abs, given, write);
            return null;
        }
        Access a = access(ctx.domid, node.perms);
        if (write ? !a.canWrite() : !a.canRead()) {
            throw new XenStoreException(op, given, XenStoreException.EACCES);
        }
        return node;
    }

    /**
     * For a missing node: returns when the caller may learn it is missing (ENOENT), else throws EACCES. As
     * {@code errno_from_parents}, the nearest existing ancestor must grant the access the operation asked for: read
     * for read, directory and get-perms; write for rm and set-perms.
     */
    private static void missing(Ctx ctx, String op, String abs, String given, boolean write)
            throws XenStoreException {
        String p = abs;
        Node ancestor = null;
        while (ancestor == null && !p.equals("/")) {
            p = XenStorePath.parent(p);
            ancestor = ctx.get(p);
        }
        Access a = ancestor == null ? Access.NONE : access(ctx.domid, ancestor.perms);
        if (write ? !a.canWrite() : !a.canRead()) {
            throw new XenStoreException(op, given, XenStoreException.EACCES);
        }
    }

    private static Optional<byte[]> doRead(Ctx ctx, String given) throws XenStoreException {
        String abs = XenStorePath.canonical("read", given, ctx.domid);
        Node node = checked(ctx, "read", abs, given, false);
        return node == null ? Optional.empty() : Optional.of(node.value.clone());
    }

    private static void doWrite(Ctx ctx, String given, byte[] value, boolean mkdir) throws XenStoreException {
        String op = mkdir ? "mkdir" : "write";
        String abs = XenStorePath.canonical(op, given, ctx.domid);
        Node node = ctx.get(abs);
        if (node != null) {
            if (!access(ctx.domid, node.perms).canWrite()) {
                throw new XenStoreException(op, given, XenStoreException.EACCES);
            }
            if (mkdir) {
                return;
            }
            ctx.put(abs, node.withValue(value.clone()));
            ctx.fires.add(new Fire(abs, false, node.perms, null, parentPerms(ctx, abs)));
            return;
        }
        if (abs.equals("/")) {
            throw new XenStoreException(op, given, XenStoreException.EINVAL);
        }
        // Find the nearest existing ancestor; it must be writable by the creator.
        List<String> toCreate = new ArrayList<>();
        String p = abs;
        Node ancestor = null;
        while (ancestor == null) {
            toCreate.add(0, p);
            p = XenStorePath.parent(p);
            ancestor = ctx.get(p);
        }
        Access a = access(ctx.domid, ancestor.perms);
        if (!a.canWrite()) {
            throw new XenStoreException(op, given, XenStoreException.EACCES);
        }
        String parentPath = p;
        Node parent = ancestor;
        Node created = null;
        for (String path : toCreate) {
            List<XenStorePermission> perms = new ArrayList<>(parent.perms);
            if (ctx.domid != 0) {
                perms.set(0, XenStorePermission.of(ctx.domid, perms.get(0).access()));
            }
            created = new Node(path.equals(abs) ? value.clone() : EMPTY, List.copyOf(perms), List.of());
            ctx.put(parentPath, parent.withChild(XenStorePath.name(path)));
            ctx.put(path, created);
            parentPath = path;
            parent = created;
        }
        ctx.fires.add(new Fire(abs, false, created.perms, null, parentPerms(ctx, abs)));
    }

    private static void doRm(Ctx ctx, String given) throws XenStoreException {
        String abs = XenStorePath.canonical("rm", given, ctx.domid);
        Node node = ctx.get(abs);
        if (node == null) {
            missing(ctx, "rm", abs, given, true);
            if (!abs.equals("/") && ctx.get(XenStorePath.parent(abs)) != null) {
                return; // xenstored: "Didn't exist already? Fine, if parent exists."
            }
            throw new XenStoreException("rm", given, XenStoreException.ENOENT);
        }
        if (!access(ctx.domid, node.perms).canWrite()) {
            throw new XenStoreException("rm", given, XenStoreException.EACCES);
        }
        if (abs.equals("/")) {
            throw new XenStoreException("rm", given, XenStoreException.EINVAL);
        }
        String parentPath = XenStorePath.parent(abs);
        Node parent = ctx.get(parentPath);
        removeSubtree(ctx, abs, node, parent.perms, false);
        ctx.put(parentPath, ctx.get(parentPath).withoutChild(XenStorePath.name(abs)));
    }

    /**
     * Removes a node and everything below it, children first, as {@code delete_node}: each node below fires the
     * watches on exactly its path, the removed node itself also those above it.
     */
    private static void removeSubtree(Ctx ctx, String abs, Node node, List<XenStorePermission> parentPerms,
            boolean exact) {
        for (String child : node.children) {
            String c = abs.equals("/") ? "/" + child : abs + "/" + child;
            Node n = ctx.get(c);
            if (n != null) {
                removeSubtree(ctx, c, n, node.perms, true);
            }
        }
        ctx.remove(abs);
        ctx.fires.add(new Fire(abs, exact, node.perms, null, parentPerms));
    }

    private static List<XenStorePermission> parentPerms(Ctx ctx, String abs) {
        if (abs.equals("/")) {
            return null;
        }
        Node parent = ctx.tree.get(XenStorePath.parent(abs));
        return parent == null ? null : parent.perms;
    }

    private static List<String> doDirectory(Ctx ctx, String given) throws XenStoreException {
        String abs = XenStorePath.canonical("directory", given, ctx.domid);
        Node node = checked(ctx, "directory", abs, given, false);
        if (node == null) {
            throw new XenStoreException("directory", given, XenStoreException.ENOENT);
        }
        return node.children;
    }

    private static List<XenStorePermission> doGetPerms(Ctx ctx, String given) throws XenStoreException {
        String abs = XenStorePath.canonical("get-perms", given, ctx.domid);
        Node node = checked(ctx, "get-perms", abs, given, false);
        if (node == null) {
            throw new XenStoreException("get-perms", given, XenStoreException.ENOENT);
        }
        return node.perms;
    }

    private static void doSetPerms(Ctx ctx, String given, List<XenStorePermission> perms) throws XenStoreException {
        String abs = XenStorePath.canonical("set-perms", given, ctx.domid);
        if (perms.isEmpty()) {
            throw new XenStoreException("set-perms", given, XenStoreException.EINVAL, "empty permission list");
        }
        Node node = checked(ctx, "set-perms", abs, given, true);
        if (node == null) {
            throw new XenStoreException("set-perms", given, XenStoreException.ENOENT);
        }
        if (ctx.domid != 0 && node.perms.get(0).domid() != ctx.domid) {
            throw new XenStoreException("set-perms", given, XenStoreException.EACCES, "not the owner");
        }
        if (ctx.domid != 0 && perms.get(0).domid() != ctx.domid) {
            throw new XenStoreException("set-perms", given, XenStoreException.EPERM, "may not change the owner");
        }
        ctx.put(abs, node.withPerms(List.copyOf(perms)));
        ctx.fires.add(new Fire(abs, false, List.copyOf(perms), node.perms, parentPerms(ctx, abs)));
    }

    private static void checkWriteSize(String op, String given, int valueLength) throws XenStoreException {
        int payload = given.length() + 1 + valueLength;
        if (payload > 4096) {
            throw new XenStoreException(op, given, XenStoreException.E2BIG,
                    "payload=" + payload + " exceeds XENSTORE_PAYLOAD_MAX=4096");
        }
    }

    /** Queues watch events for {@code fires} on every connection that may see them. Lock held. */
    private void fire(List<Fire> fires) {
        for (Fire f : fires) {
            for (SimConnection c : connections) {
                if (c.closed || !f.visibleTo(c.domid)) {
                    continue;
                }
                for (SimWatch w : c.watches.values()) {
                    if (w.absolute == null) {
                        continue;
                    }
                    if (f.exact ? f.path.equals(w.absolute) : XenStorePath.isSelfOrBelow(f.path, w.absolute)) {
                        c.post(w, w.relativeName(f.path));
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------------------

    private static final class SimWatch {
        final String path;
        final String token;
        final String absolute;
        final String home;
        final XenStore.WatchListener listener;
        volatile boolean open = true;

        SimWatch(String path, String token, String absolute, String home, XenStore.WatchListener listener) {
            this.path = path;
            this.token = token;
            this.absolute = absolute;
            this.home = home;
            this.listener = listener;
        }

        /** xenstored reports events of a relative watch relative to the connection's home. */
        String relativeName(String changed) {
            if (path.startsWith("/")) {
                return changed;
            }
            return changed.length() > home.length() ? changed.substring(home.length() + 1) : "";
        }
    }

    /** A per-domain connection. */
    private final class SimConnection implements XenStore {
        final int domid;
        final int id;
        final Map<String, SimWatch> watches = new LinkedHashMap<>();
        final ExecutorService delivery;
        int openTransactions;
        long nextToken;
        volatile boolean closed;

        SimConnection(int domid, int id) {
            this.domid = domid;
            this.id = id;
            this.delivery = Executors.newSingleThreadExecutor(r -> {
                Thread t = new Thread(r, "sim-xenstore-watch-dom" + domid + "-" + id);
                t.setDaemon(true);
                return t;
            });
        }

        private void live() {
            if (closed) {
                throw new IllegalStateException("simulated xenstore connection is closed: domid=" + domid);
            }
        }

        private Ctx direct(List<Fire> fires) {
            return new Ctx(tree, domid, null, null, fires);
        }

        /** Queues one event; lock held, so events keep the order of the changes. */
        void post(SimWatch w, String eventPath) {
            delivery.execute(() -> {
                if (w.open && !closed) {
                    try {
                        w.listener.onEvent(eventPath, w.token);
                    } catch (RuntimeException e) {
                        System.getLogger(SimulatedXenStore.class.getName()).log(System.Logger.Level.WARNING,
                                "simulated xenstore watch listener threw: path=" + eventPath, e);
                    }
                }
            });
        }

        @Override
        public Optional<byte[]> read(String path) throws IOException {
            synchronized (lock) {
                live();
                return doRead(direct(new ArrayList<>()), path);
            }
        }

        @Override
        public void write(String path, byte[] value) throws IOException {
            synchronized (lock) {
                live();
                checkWriteSize("write", path, value.length);
                List<Fire> fires = new ArrayList<>();
                doWrite(direct(fires), path, value, false);
                fire(fires);
            }
        }

        @Override
        public void mkdir(String path) throws IOException {
            synchronized (lock) {
                live();
                List<Fire> fires = new ArrayList<>();
                doWrite(direct(fires), path, EMPTY, true);
                fire(fires);
            }
        }

        @Override
        public void rm(String path) throws IOException {
            synchronized (lock) {
                live();
                List<Fire> fires = new ArrayList<>();
                doRm(direct(fires), path);
                fire(fires);
            }
        }

        @Override
        public List<String> directory(String path) throws IOException {
            synchronized (lock) {
                live();
                return doDirectory(direct(new ArrayList<>()), path);
            }
        }

        @Override
        public List<XenStorePermission> getPermissions(String path) throws IOException {
            synchronized (lock) {
                live();
                return doGetPerms(direct(new ArrayList<>()), path);
            }
        }

        @Override
        public void setPermissions(String path, List<XenStorePermission> permissions) throws IOException {
            synchronized (lock) {
                live();
                List<Fire> fires = new ArrayList<>();
                doSetPerms(direct(fires), path, permissions);
                fire(fires);
            }
        }

        @Override
        public Watch watch(String path, String token, WatchListener listener) throws IOException {
            XenStorePath.checkWatch("watch", path);
            synchronized (lock) {
                live();
                String absolute = XenStorePath.isSpecial(path) ? null : XenStorePath.canonical("watch", path, domid);
                String tok = token != null ? token : "jtap-" + (++nextToken);
                if (watches.containsKey(tok)) {
                    throw new IllegalArgumentException(
                            "xenstore watch token already in use on this connection: token=" + tok);
                }
                SimWatch w = new SimWatch(path, tok, absolute, XenStorePath.home(domid), listener);
                watches.put(tok, w);
                post(w, path); // xenstored fires every new watch once, with its own path
                return new Watch() {
                    @Override
                    public String path() {
                        return path;
                    }

                    @Override
                    public String token() {
                        return tok;
                    }

                    @Override
                    public void close() {
                        synchronized (lock) {
                            w.open = false;
                            watches.remove(tok, w);
                        }
                    }
                };
            }
        }

        @Override
        public <T> T transaction(TransactionBody<T> body) throws IOException {
            return XenStoreTransactionLoop.run(body, attempt -> {
                synchronized (lock) {
                    live();
                    openTransactions++;
                    return new SimTransaction(this, attempt, tree);
                }
            });
        }

        @Override
        public void close() {
            synchronized (lock) {
                if (closed) {
                    return;
                }
                closed = true;
                for (SimWatch w : watches.values()) {
                    w.open = false;
                }
                watches.clear();
                openTransactions = 0;
            }
            delivery.shutdown();
            try {
                delivery.awaitTermination(5, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /** A transaction: a snapshot of the store at start, this transaction's view, and what it touched. */
    private final class SimTransaction implements XenStore.Transaction, XenStoreTransactionLoop.Attempt {
        final SimConnection conn;
        final int attempt;
        final Map<String, Node> base;
        final Map<String, Node> view;
        final Set<String> accessed = new LinkedHashSet<>();
        final Set<String> written = new LinkedHashSet<>();
        final List<Fire> fires = new ArrayList<>();
        boolean ended;

        SimTransaction(SimConnection conn, int attempt, Map<String, Node> current) {
            this.conn = conn;
            this.attempt = attempt;
            this.base = new HashMap<>(current);
            this.view = new HashMap<>(current);
        }

        private Ctx ctx() {
            if (ended) {
                throw new IllegalStateException("xenstore transaction used after it ended");
            }
            conn.live();
            return new Ctx(view, conn.domid, accessed, written, fires);
        }

        @Override
        public int attempt() {
            return attempt;
        }

        @Override
        public XenStore.Transaction view() {
            return this;
        }

        @Override
        public Optional<byte[]> read(String path) throws IOException {
            synchronized (lock) {
                return doRead(ctx(), path);
            }
        }

        @Override
        public void write(String path, byte[] value) throws IOException {
            synchronized (lock) {
                Ctx c = ctx();
                checkWriteSize("write", path, value.length);
                doWrite(c, path, value, false);
            }
        }

        @Override
        public void mkdir(String path) throws IOException {
            synchronized (lock) {
                doWrite(ctx(), path, EMPTY, true);
            }
        }

        @Override
        public void rm(String path) throws IOException {
            synchronized (lock) {
                doRm(ctx(), path);
            }
        }

        @Override
        public List<String> directory(String path) throws IOException {
            synchronized (lock) {
                return doDirectory(ctx(), path);
            }
        }

        @Override
        public List<XenStorePermission> getPermissions(String path) throws IOException {
            synchronized (lock) {
                return doGetPerms(ctx(), path);
            }
        }

        @Override
        public void setPermissions(String path, List<XenStorePermission> permissions) throws IOException {
            synchronized (lock) {
                doSetPerms(ctx(), path, permissions);
            }
        }

        @Override
        public boolean commit() {
            synchronized (lock) {
                end();
                for (String p : accessed) {
                    if (tree.get(p) != base.get(p)) {
                        return false;
                    }
                }
                for (String p : written) {
                    Node n = view.get(p);
                    if (n == null) {
                        tree.remove(p);
                    } else {
                        tree.put(p, n);
                    }
                }
                fire(fires);
                return true;
            }
        }

        @Override
        public void abort() {
            synchronized (lock) {
                if (!ended) {
                    end();
                }
            }
        }

        private void end() {
            if (ended) {
                throw new IllegalStateException("xenstore transaction ended twice");
            }
            ended = true;
            if (!conn.closed) {
                conn.openTransactions--;
            }
        }
    }
}
