package io.jtap.xen.linux;

import static io.jtap.xen.linux.XsWireDescriptor.HEADER_LENGTH;
import static io.jtap.xen.linux.XsWireDescriptor.XENSTORE_PAYLOAD_MAX;
import static io.jtap.xen.linux.XsWireDescriptor.XS_DIRECTORY;
import static io.jtap.xen.linux.XsWireDescriptor.XS_ERROR;
import static io.jtap.xen.linux.XsWireDescriptor.XS_GET_PERMS;
import static io.jtap.xen.linux.XsWireDescriptor.XS_MKDIR;
import static io.jtap.xen.linux.XsWireDescriptor.XS_READ;
import static io.jtap.xen.linux.XsWireDescriptor.XS_RM;
import static io.jtap.xen.linux.XsWireDescriptor.XS_SET_PERMS;
import static io.jtap.xen.linux.XsWireDescriptor.XS_TRANSACTION_END;
import static io.jtap.xen.linux.XsWireDescriptor.XS_TRANSACTION_START;
import static io.jtap.xen.linux.XsWireDescriptor.XS_UNWATCH;
import static io.jtap.xen.linux.XsWireDescriptor.XS_WATCH;
import static io.jtap.xen.linux.XsWireDescriptor.XS_WATCH_EVENT;
import static io.jtap.xen.linux.XsWireDescriptor.XS_WRITE;

import io.jtap.xen.Availability;
import io.jtap.xen.XenStore;
import io.jtap.xen.XenStoreException;
import io.jtap.xen.XenStorePath;
import io.jtap.xen.XenStorePermission;
import io.jtap.xen.XenStoreTransactionLoop;
import io.jtap.xen.linux.XsWireDescriptor.Message;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Semaphore;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A xenstore client speaking the wire protocol ({@link XsWireDescriptor}) over xenstored's unix socket or
 * {@code /dev/xen/xenbus}.
 *
 * <p>Threads: any number of callers issue requests concurrently; each request gets its own req_id and waits for the
 * reply with that id. Over {@code /dev/xen/xenbus} only one request is in flight at a time (the others wait
 * their turn), because the kernel reads a request's body from the file's one buffer after the {@code write} has
 * returned ({@link XenStoreTransport#pipelines()}). One reader thread per connection reads every message: replies
 * complete their waiting request,
 * XS_WATCH_EVENT messages (req_id 0, "path\0token\0") go to the delivery thread, which calls the listener registered
 * for the token. A watch's listener is registered <em>before</em> its XS_WATCH is sent, because nothing orders an
 * event before or after the reply to the request that caused it.
 *
 * <p>Over a socket xenstored treats the connection as dom0 (privileged). Over the xenbus device the kernel forwards
 * requests as the domain the kernel runs in.
 */
public final class WireXenStore implements XenStore {
    /** Where xenstored listens (XEN_RUN_STORED/socket); overridden by XENSTORED_RUNDIR in xenstored itself. */
    public static final Path DEFAULT_SOCKET = Path.of("/run/xenstored/socket");
    /** Linux's xenbus_dev_frontend. */
    public static final Path DEFAULT_XENBUS_DEVICE = Path.of("/dev/xen/xenbus");

    private static final System.Logger LOG = System.getLogger(WireXenStore.class.getName());
    private static final AtomicLong CONNECTIONS = new AtomicLong();

    private final XenStoreTransport transport;
    private final Object writeLock = new Object();
    private final AtomicInteger nextReqId = new AtomicInteger(1);
    private final AtomicLong nextToken = new AtomicLong();
    private final Map<Integer, CompletableFuture<Message>> pending = new ConcurrentHashMap<>();
    /** One request in flight at a time on a transport that cannot pipeline ({@link XenStoreTransport#pipelines()}). */
    private final Semaphore oneInFlight = new Semaphore(1, true);
    private final Map<String, WireWatch> watches = new ConcurrentHashMap<>();
    private final AtomicInteger openTransactions = new AtomicInteger();
    private final ExecutorService delivery;
    private final Thread reader;
    private volatile IOException failure;

    private WireXenStore(XenStoreTransport transport) {
        this.transport = transport;
        long n = CONNECTIONS.incrementAndGet();
        this.delivery = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "xenstore-watch-" + n);
            t.setDaemon(true);
            return t;
        });
        this.reader = new Thread(this::readLoop, "xenstore-reader-" + n);
        this.reader.setDaemon(true);
        this.reader.start();
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Availability and factories

    /** Whether xenstored's socket at {@code socket} exists and may be connected to (by file permissions). */
    public static Availability socketAvailability(Path socket) {
        if (!Files.exists(socket)) {
            return Availability.unavailable("xenstored socket missing: path=" + socket);
        }
        if (!Files.isReadable(socket) || !Files.isWritable(socket)) {
            return Availability.unavailable("xenstored socket not accessible: path=" + socket + " (permission)");
        }
        return Availability.available();
    }

    /** Whether the xenbus device exists, is read-writable, and libc could be bound. */
    public static Availability xenbusDeviceAvailability(Path device) {
        if (LibC.loadFailure() != null) {
            return Availability.unavailable(LibC.loadFailure());
        }
        if (!Files.exists(device)) {
            return Availability.unavailable("xenbus device missing: path=" + device);
        }
        if (!Files.isReadable(device) || !Files.isWritable(device)) {
            return Availability.unavailable("xenbus device not accessible: path=" + device + " (permission)");
        }
        return Availability.available();
    }

    /** Whether {@link #openDefault()} can succeed: the default xenbus device or the default socket is usable. */
    public static Availability availability() {
        Availability device = xenbusDeviceAvailability(DEFAULT_XENBUS_DEVICE);
        if (device.isAvailable()) {
            return device;
        }
        Availability socket = socketAvailability(DEFAULT_SOCKET);
        if (socket.isAvailable()) {
            return socket;
        }
        return Availability.unavailable("no xenstore: " + device.unavailabilityCause().getMessage() + "; "
                + socket.unavailabilityCause().getMessage());
    }

    public static WireXenStore connectSocket(Path socket) throws IOException {
        return new WireXenStore(XenStoreSocketTransport.connect(socket));
    }

    /**
     * A connection over {@code transport}, which the connection owns from now on: {@link #close} closes it. The seam
     * for transports other than the socket and the xenbus device, such as a test playing a guest's xenbus driver.
     */
    static WireXenStore over(XenStoreTransport transport) {
        return new WireXenStore(transport);
    }

    public static WireXenStore openXenbusDevice(Path device) throws IOException {
        xenbusDeviceAvailability(device).ensureAvailability("xenbus device");
        return new WireXenStore(XenbusDeviceTransport.open(device));
    }

    /**
     * The xenbus device if it is usable, else xenstored's socket. Never a simulation.
     *
     * @throws IOException naming both causes when neither is usable
     */
    public static WireXenStore openDefault() throws IOException {
        Availability device = xenbusDeviceAvailability(DEFAULT_XENBUS_DEVICE);
        if (device.isAvailable()) {
            return openXenbusDevice(DEFAULT_XENBUS_DEVICE);
        }
        Availability socket = socketAvailability(DEFAULT_SOCKET);
        if (socket.isAvailable()) {
            return connectSocket(DEFAULT_SOCKET);
        }
        throw new IOException("xenstore open failed: " + device.unavailabilityCause().getMessage() + "; "
                + socket.unavailabilityCause().getMessage());
    }

    // ---------------------------------------------------------------------------------------------------------------
    // XenStore

    @Override
    public Optional<byte[]> read(String path) throws IOException {
        return read(0, path);
    }

    @Override
    public void write(String path, byte[] value) throws IOException {
        write(0, path, value);
    }

    @Override
    public void mkdir(String path) throws IOException {
        mkdir(0, path);
    }

    @Override
    public void rm(String path) throws IOException {
        rm(0, path);
    }

    @Override
    public List<String> directory(String path) throws IOException {
        return directory(0, path);
    }

    @Override
    public List<XenStorePermission> getPermissions(String path) throws IOException {
        return getPermissions(0, path);
    }

    @Override
    public void setPermissions(String path, List<XenStorePermission> permissions) throws IOException {
        setPermissions(0, path, permissions);
    }

    @Override
    public Watch watch(String path, String token, WatchListener listener) throws IOException {
        XenStorePath.checkWatch("watch", path);
        String tok = token != null ? token : "jtap-" + nextToken.incrementAndGet();
        WireWatch watch = new WireWatch(path, tok, listener);
        if (watches.putIfAbsent(tok, watch) != null) {
            throw new IllegalArgumentException("xenstore watch token already in use on this connection: token=" + tok);
        }
        try {
            request("watch", path, XS_WATCH, 0, XsWireDescriptor.strings(path, tok));
        } catch (IOException | RuntimeException e) {
            watch.open = false;
            watches.remove(tok, watch);
            throw e;
        }
        return watch;
    }

    @Override
    public <T> T transaction(TransactionBody<T> body) throws IOException {
        return XenStoreTransactionLoop.run(body, this::startTransaction);
    }

    /** Watches registered and not yet closed (for leak checks). */
    public int openWatchCount() {
        return watches.size();
    }

    /** Transactions started and not yet ended (for leak checks). */
    public int openTransactionCount() {
        return openTransactions.get();
    }

    /** Where this connection goes, e.g. "socket /run/xenstored/socket". */
    public String describe() {
        return transport.describe();
    }

    @Override
    public void close() throws IOException {
        IOException closed = new IOException("xenstore connection closed: " + transport.describe());
        synchronized (writeLock) {
            if (failure == null) {
                failure = closed;
            }
        }
        transport.close();
        if (Thread.currentThread() != reader) {
            try {
                reader.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        transport.release();
        failPending();
        for (WireWatch w : watches.values()) {
            w.open = false;
        }
        watches.clear();
        delivery.shutdown();
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Requests, shared by the connection (tx 0) and transactions

    private Optional<byte[]> read(int txId, String path) throws IOException {
        XenStorePath.check("read", path);
        try {
            return Optional.of(request("read", path, XS_READ, txId, XsWireDescriptor.strings(path)).payload());
        } catch (XenStoreException e) {
            if (e.is(XenStoreException.ENOENT)) {
                return Optional.empty();
            }
            throw e;
        }
    }

    private void write(int txId, String path, byte[] value) throws IOException {
        XenStorePath.check("write", path);
        request("write", path, XS_WRITE, txId, XsWireDescriptor.pathAndValue(path, value));
    }

    private void mkdir(int txId, String path) throws IOException {
        XenStorePath.check("mkdir", path);
        request("mkdir", path, XS_MKDIR, txId, XsWireDescriptor.strings(path));
    }

    private void rm(int txId, String path) throws IOException {
        XenStorePath.check("rm", path);
        request("rm", path, XS_RM, txId, XsWireDescriptor.strings(path));
    }

    private List<String> directory(int txId, String path) throws IOException {
        XenStorePath.check("directory", path);
        return request("directory", path, XS_DIRECTORY, txId, XsWireDescriptor.strings(path)).strings();
    }

    private List<XenStorePermission> getPermissions(int txId, String path) throws IOException {
        XenStorePath.check("get-perms", path);
        List<XenStorePermission> out = new ArrayList<>();
        for (String s : request("get-perms", path, XS_GET_PERMS, txId, XsWireDescriptor.strings(path)).strings()) {
            try {
                out.add(XenStorePermission.parse(s));
            } catch (IllegalArgumentException e) {
                throw new IOException("xenstore protocol error: bad permission in XS_GET_PERMS reply: path=" + path
                        + ", entry=" + s, e);
            }
        }
        return List.copyOf(out);
    }

    private void setPermissions(int txId, String path, List<XenStorePermission> permissions) throws IOException {
        XenStorePath.check("set-perms", path);
        if (permissions.isEmpty()) {
            throw new XenStoreException("set-perms", path, XenStoreException.EINVAL, "empty permission list");
        }
        String[] parts = new String[permissions.size() + 1];
        parts[0] = path;
        for (int i = 0; i < permissions.size(); i++) {
            parts[i + 1] = permissions.get(i).toString();
        }
        request("set-perms", path, XS_SET_PERMS, txId, XsWireDescriptor.strings(parts));
    }

    private XenStoreTransactionLoop.Attempt startTransaction(int attempt) throws IOException {
        Message reply = request("transaction start", null, XS_TRANSACTION_START, 0, XsWireDescriptor.strings(""));
        List<String> strings = reply.strings();
        int txId;
        try {
            txId = Integer.parseUnsignedInt(strings.isEmpty() ? "" : strings.get(0));
        } catch (NumberFormatException e) {
            throw new IOException("xenstore protocol error: bad XS_TRANSACTION_START reply: reply=" + strings, e);
        }
        openTransactions.incrementAndGet();
        return new WireTransaction(txId, attempt);
    }

    /**
     * Sends one request and waits for its reply.
     *
     * @throws XenStoreException with xenstored's error name when the reply is XS_ERROR, or E2BIG when the payload
     *     exceeds XENSTORE_PAYLOAD_MAX (xenstored would drop the connection)
     */
    private Message request(String operation, String path, int type, int txId, byte[] payload) throws IOException {
        if (payload.length > XENSTORE_PAYLOAD_MAX) {
            throw new XenStoreException(operation, path, XenStoreException.E2BIG,
                    "payload=" + payload.length + " exceeds XENSTORE_PAYLOAD_MAX=" + XENSTORE_PAYLOAD_MAX);
        }
        boolean serial = !transport.pipelines();
        if (serial) {
            try {
                oneInFlight.acquire();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted waiting to send a xenstore request: " + operation);
            }
        }
        int reqId = nextReqId.getAndIncrement();
        CompletableFuture<Message> reply = new CompletableFuture<>();
        pending.put(reqId, reply);
        try {
            synchronized (writeLock) {
                if (failure != null) {
                    throw new IOException(failure.getMessage(), failure);
                }
                transport.write(XsWireDescriptor.encode(type, reqId, txId, payload));
            }
            Message m = await(reply);
            if (m.type() == XS_ERROR) {
                List<String> s = m.strings();
                throw new XenStoreException(operation, path, s.isEmpty() ? "EIO" : s.get(0));
            }
            if (m.type() != type) {
                throw new IOException("xenstore protocol error: reply type mismatch: request="
                        + XsWireDescriptor.typeName(type) + ", reply=" + XsWireDescriptor.typeName(m.type())
                        + ", req_id=" + reqId);
            }
            return m;
        } finally {
            pending.remove(reqId);
            if (serial) {
                oneInFlight.release();
            }
        }
    }

    private static Message await(CompletableFuture<Message> reply) throws IOException {
        try {
            return reply.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted waiting for a xenstore reply");
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            throw new IOException(cause.getMessage(), cause);
        }
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Reader and delivery

    private void readLoop() {
        ByteBuffer header = ByteBuffer.allocate(HEADER_LENGTH);
        IOException end = null;
        try {
            while (true) {
                header.clear();
                if (!readFully(header)) {
                    break;
                }
                int length = XsWireDescriptor.payloadLength(header);
                if (length < 0 || length > XENSTORE_PAYLOAD_MAX) {
                    throw new IOException("xenstore protocol error: message length out of range: len="
                            + Integer.toUnsignedString(length) + ", from=" + transport.describe());
                }
                ByteBuffer payload = ByteBuffer.allocate(length);
                if (!readFully(payload)) {
                    throw new IOException("xenstore connection ended inside a message: " + transport.describe());
                }
                dispatch(XsWireDescriptor.decode(header, payload.array()));
            }
        } catch (IOException e) {
            end = e;
        } catch (RuntimeException e) {
            end = new IOException("xenstore reader failed: " + transport.describe(), e);
        }
        synchronized (writeLock) {
            if (failure == null) {
                failure = end != null ? end : new IOException("xenstore connection lost: " + transport.describe());
            }
        }
        if (end != null) {
            LOG.log(System.Logger.Level.WARNING, "xenstore reader stopped: " + transport.describe(), end);
        }
        failPending();
    }

    /** Fills {@code buf}; false on a clean end of stream before its first byte. */
    private boolean readFully(ByteBuffer buf) throws IOException {
        boolean started = false;
        while (buf.hasRemaining()) {
            int n = transport.read(buf);
            if (n < 0) {
                if (started || buf.position() > 0) {
                    throw new IOException("xenstore connection ended inside a message: " + transport.describe());
                }
                return false;
            }
            started |= n > 0;
        }
        return true;
    }

    private void dispatch(Message m) {
        if (m.type() == XS_WATCH_EVENT) {
            List<String> s = m.strings();
            if (s.size() < 2) {
                LOG.log(System.Logger.Level.WARNING, "xenstore: malformed XS_WATCH_EVENT ignored: strings=" + s);
                return;
            }
            String path = s.get(0);
            String token = s.get(1);
            delivery.execute(() -> deliver(path, token));
            return;
        }
        CompletableFuture<Message> waiting = pending.get(m.reqId());
        if (waiting == null) {
            LOG.log(System.Logger.Level.WARNING, "xenstore: reply for no request ignored: req_id=" + m.reqId()
                    + ", type=" + XsWireDescriptor.typeName(m.type()));
            return;
        }
        waiting.complete(m);
    }

    private void deliver(String path, String token) {
        WireWatch w = watches.get(token);
        if (w == null || !w.open) {
            return;
        }
        try {
            w.listener.onEvent(path, token);
        } catch (RuntimeException e) {
            LOG.log(System.Logger.Level.WARNING, "xenstore watch listener threw: path=" + path + ", token=" + token, e);
        }
    }

    private void failPending() {
        IOException f = failure;
        for (CompletableFuture<Message> p : pending.values()) {
            p.completeExceptionally(f);
        }
    }

    // ---------------------------------------------------------------------------------------------------------------

    private final class WireWatch implements Watch {
        private final String path;
        private final String token;
        private final WatchListener listener;
        private volatile boolean open = true;

        WireWatch(String path, String token, WatchListener listener) {
            this.path = path;
            this.token = token;
            this.listener = listener;
        }

        @Override
        public String path() {
            return path;
        }

        @Override
        public String token() {
            return token;
        }

        @Override
        public void close() throws IOException {
            if (!open) {
                return;
            }
            open = false;
            try {
                if (failure == null) {
                    request("unwatch", path, XS_UNWATCH, 0, XsWireDescriptor.strings(path, token));
                }
            } finally {
                watches.remove(token, this);
            }
        }
    }

    private final class WireTransaction implements Transaction, XenStoreTransactionLoop.Attempt {
        private final int txId;
        private final int attempt;
        private boolean ended;

        WireTransaction(int txId, int attempt) {
            this.txId = txId;
            this.attempt = attempt;
        }

        @Override
        public Transaction view() {
            return this;
        }

        @Override
        public int attempt() {
            return attempt;
        }

        private void live() {
            if (ended) {
                throw new IllegalStateException("xenstore transaction used after it ended: tx_id=" + txId);
            }
        }

        @Override
        public Optional<byte[]> read(String path) throws IOException {
            live();
            return WireXenStore.this.read(txId, path);
        }

        @Override
        public void write(String path, byte[] value) throws IOException {
            live();
            WireXenStore.this.write(txId, path, value);
        }

        @Override
        public void mkdir(String path) throws IOException {
            live();
            WireXenStore.this.mkdir(txId, path);
        }

        @Override
        public void rm(String path) throws IOException {
            live();
            WireXenStore.this.rm(txId, path);
        }

        @Override
        public List<String> directory(String path) throws IOException {
            live();
            return WireXenStore.this.directory(txId, path);
        }

        @Override
        public List<XenStorePermission> getPermissions(String path) throws IOException {
            live();
            return WireXenStore.this.getPermissions(txId, path);
        }

        @Override
        public void setPermissions(String path, List<XenStorePermission> permissions) throws IOException {
            live();
            WireXenStore.this.setPermissions(txId, path, permissions);
        }

        @Override
        public boolean commit() throws IOException {
            return end("T");
        }

        @Override
        public void abort() throws IOException {
            if (!ended) {
                try {
                    end("F");
                } catch (XenStoreException e) {
                    if (!e.is(XenStoreException.ENOENT)) {
                        throw e;
                    }
                }
            }
        }

        /** XS_TRANSACTION_END; false when xenstored answered EAGAIN (conflict). */
        private boolean end(String how) throws IOException {
            live();
            ended = true;
            openTransactions.decrementAndGet();
            try {
                request(how.equals("T") ? "transaction commit" : "transaction abort", null, XS_TRANSACTION_END, txId,
                        XsWireDescriptor.strings(how));
                return true;
            } catch (XenStoreException e) {
                if (e.is(XenStoreException.EAGAIN)) {
                    return false;
                }
                throw e;
            }
        }
    }
}
