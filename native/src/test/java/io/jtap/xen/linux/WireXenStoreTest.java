package io.jtap.xen.linux;

import static io.jtap.xen.linux.XsWireDescriptor.XS_ERROR;
import static io.jtap.xen.linux.XsWireDescriptor.XS_READ;
import static io.jtap.xen.linux.XsWireDescriptor.XS_WATCH;
import static io.jtap.xen.linux.XsWireDescriptor.XS_WATCH_EVENT;
import static io.jtap.xen.linux.XsWireDescriptor.XS_WRITE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.xen.XenStore;
import io.jtap.xen.XenStoreException;
import io.jtap.xen.linux.XsWireDescriptor.Message;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * WireXenStore against a scripted server that orders messages in ways xenstored is allowed to but seldom does: a watch
 * event before the reply to the request that caused it, replies out of request order, a connection that drops.
 */
class WireXenStoreTest {
    @TempDir
    Path dir;
    private ServerSocketChannel server;
    private SocketChannel peer;
    private WireXenStore client;

    @BeforeEach
    void connect() throws Exception {
        Path socket = dir.resolve("socket");
        server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        server.bind(UnixDomainSocketAddress.of(socket));
        CompletableFuture<SocketChannel> accepted = CompletableFuture.supplyAsync(() -> {
            try {
                return server.accept();
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        });
        client = WireXenStore.connectSocket(socket);
        peer = accepted.get(5, TimeUnit.SECONDS);
    }

    @AfterEach
    void close() throws IOException {
        client.close();
        peer.close();
        server.close();
    }

    private Message receive() throws IOException {
        ByteBuffer header = ByteBuffer.allocate(XsWireDescriptor.HEADER_LENGTH);
        readFully(header);
        ByteBuffer payload = ByteBuffer.allocate(XsWireDescriptor.payloadLength(header));
        readFully(payload);
        return XsWireDescriptor.decode(header, payload.array());
    }

    private void readFully(ByteBuffer buf) throws IOException {
        while (buf.hasRemaining()) {
            if (peer.read(buf) < 0) {
                throw new IOException("client closed");
            }
        }
    }

    private void send(int type, int reqId, byte[] payload) throws IOException {
        ByteBuffer m = XsWireDescriptor.encode(type, reqId, 0, payload);
        while (m.hasRemaining()) {
            peer.write(m);
        }
    }

    private void ok(Message request) throws IOException {
        send(request.type(), request.reqId(), XsWireDescriptor.strings("OK"));
    }

    @Test
    void anInitialEventBeforeTheWatchReplyIsDelivered() throws Exception {
        BlockingQueue<String> events = new LinkedBlockingQueue<>();
        CompletableFuture<XenStore.Watch> watch = CompletableFuture.supplyAsync(() -> {
            try {
                return client.watch("/p", "tok", (path, token) -> events.add(path + " " + token));
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        });
        Message request = receive();
        assertEquals(XS_WATCH, request.type());
        assertEquals(List.of("/p", "tok"), request.strings());
        send(XS_WATCH_EVENT, 0, XsWireDescriptor.strings("/p", "tok")); // event first ...
        assertEquals("/p tok", events.poll(5, TimeUnit.SECONDS));
        assertFalse(watch.isDone(), "watch() returned before its reply");
        ok(request); // ... reply second
        XenStore.Watch w = watch.get(5, TimeUnit.SECONDS);
        assertEquals("tok", w.token());

        // A write whose event overtakes its reply.
        CompletableFuture<Void> write = CompletableFuture.runAsync(() -> {
            try {
                client.write("/p/x", "v");
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        });
        Message wr = receive();
        assertEquals(XS_WRITE, wr.type());
        send(XS_WATCH_EVENT, 0, XsWireDescriptor.strings("/p/x", "tok"));
        ok(wr);
        write.get(5, TimeUnit.SECONDS);
        assertEquals("/p/x tok", events.poll(5, TimeUnit.SECONDS));

        CompletableFuture<Void> unwatch = CompletableFuture.runAsync(() -> {
            try {
                w.close();
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        });
        Message un = receive();
        assertEquals(List.of("/p", "tok"), un.strings());
        send(XS_WATCH_EVENT, 0, XsWireDescriptor.strings("/p/late", "tok")); // after close: dropped
        ok(un);
        unwatch.get(5, TimeUnit.SECONDS);
        assertEquals(null, events.poll(200, TimeUnit.MILLISECONDS));
        assertEquals(0, client.openWatchCount());
    }

    @Test
    void repliesAreMatchedByReqIdNotByOrder() throws Exception {
        CompletableFuture<Optional<String>> a = readAsync("/a");
        Message ra = receive();
        CompletableFuture<Optional<String>> b = readAsync("/b");
        Message rb = receive();
        assertEquals(XS_READ, ra.type());
        assertTrue(ra.reqId() != rb.reqId());
        send(XS_READ, rb.reqId(), "value-b".getBytes(StandardCharsets.UTF_8));
        send(XS_READ, ra.reqId(), "value-a".getBytes(StandardCharsets.UTF_8));
        assertEquals(Optional.of("value-a"), a.get(5, TimeUnit.SECONDS));
        assertEquals(Optional.of("value-b"), b.get(5, TimeUnit.SECONDS));
    }

    @Test
    void anErrorReplyCarriesXenstoredsErrorName() throws Exception {
        CompletableFuture<Optional<String>> r = readAsync("/secret");
        Message m = receive();
        send(XS_ERROR, m.reqId(), XsWireDescriptor.strings("EACCES"));
        Exception e = assertThrows(Exception.class, () -> r.get(5, TimeUnit.SECONDS));
        XenStoreException x = (XenStoreException) e.getCause().getCause();
        assertEquals("EACCES", x.error());
        assertEquals("xenstore read failed: path=/secret, error=EACCES", x.getMessage());
    }

    @Test
    void aDroppedConnectionFailsWaitingRequests() throws Exception {
        CompletableFuture<Optional<String>> r = readAsync("/x");
        receive();
        peer.close();
        Exception e = assertThrows(Exception.class, () -> r.get(5, TimeUnit.SECONDS));
        assertTrue(e.getCause().getCause() instanceof IOException, e.toString());
        assertThrows(IOException.class, () -> client.read("/y"));
    }

    @Test
    void anOversizedWriteIsE2bigAndNeverSent() throws Exception {
        XenStoreException e = assertThrows(XenStoreException.class, () -> client.write("/v", new byte[4096]));
        assertEquals("E2BIG", e.error());
        CompletableFuture<Optional<String>> r = readAsync("/after");
        Message next = receive();
        assertEquals(XS_READ, next.type(), "nothing was sent for the oversized write");
        send(XS_READ, next.reqId(), new byte[0]);
        assertEquals(Optional.of(""), r.get(5, TimeUnit.SECONDS));
    }

    @Test
    void availabilityNamesWhatIsMissing() throws IOException {
        Path missing = dir.resolve("no-such-socket");
        assertFalse(WireXenStore.socketAvailability(missing).isAvailable());
        assertTrue(WireXenStore.socketAvailability(missing).unavailabilityCause().getMessage()
                .contains("xenstored socket missing: path=" + missing));
        assertFalse(WireXenStore.xenbusDeviceAvailability(dir.resolve("xenbus")).isAvailable());
        assertTrue(WireXenStore.socketAvailability(dir.resolve("socket")).isAvailable());
        Files.writeString(dir.resolve("plain"), "x");
        IOException e = assertThrows(IOException.class, () -> WireXenStore.connectSocket(dir.resolve("plain")));
        assertTrue(e.getMessage().startsWith("xenstore connect failed: socket="), e.getMessage());
    }

    private CompletableFuture<Optional<String>> readAsync(String path) {
        return CompletableFuture.supplyAsync(() -> {
            try {
                return client.readString(path);
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        });
    }
}
