package io.jtap.xen.linux;

import static io.jtap.xen.linux.XsWireDescriptor.HEADER_LENGTH;
import static io.jtap.xen.linux.XsWireDescriptor.XENSTORE_PAYLOAD_MAX;
import static io.jtap.xen.linux.XsWireDescriptor.XS_ERROR;
import static io.jtap.xen.linux.XsWireDescriptor.XS_INTRODUCE;
import static io.jtap.xen.linux.XsWireDescriptor.XS_RELEASE;

import io.jtap.xen.XenStoreException;
import io.jtap.xen.linux.XsWireDescriptor.Message;
import java.io.EOFException;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.util.List;

/**
 * The toolstack's part in a domain's xenstore connection: XS_INTRODUCE and XS_RELEASE, sent by dom0 over xenstored's
 * unix socket (these are not {@link io.jtap.xen.XenStore} operations; a backend never sends them). Each call is one
 * short-lived connection carrying one request, so no watch event can come between it and its reply.
 */
final class XenstoredToolstack {
    private XenstoredToolstack() {
    }

    /**
     * XS_INTRODUCE "domid\0gfn\0port\0": xenstored maps the domain's xenstore page (it ignores {@code gfn} and maps the
     * reserved grant instead), binds an interdomain event channel to the guest's {@code port}, resets the rings and
     * serves the domain as an unprivileged connection from then on.
     */
    static void introduce(Path socket, int domid, long gfn, int port) throws IOException {
        request(socket, "introduce", XS_INTRODUCE, Integer.toString(domid), Long.toString(gfn), Integer.toString(port));
    }

    /** XS_RELEASE "domid\0": xenstored drops the domain's connection, unmaps its page, unbinds its port. */
    static void release(Path socket, int domid) throws IOException {
        request(socket, "release", XS_RELEASE, Integer.toString(domid));
    }

    private static void request(Path socket, String operation, int type, String... args) throws IOException {
        try (SocketChannel channel = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            channel.connect(UnixDomainSocketAddress.of(socket));
            ByteBuffer out = XsWireDescriptor.encode(type, 1, 0, XsWireDescriptor.strings(args));
            while (out.hasRemaining()) {
                channel.write(out);
            }
            ByteBuffer header = ByteBuffer.allocate(HEADER_LENGTH);
            readFully(channel, header);
            int length = XsWireDescriptor.payloadLength(header);
            if (length < 0 || length > XENSTORE_PAYLOAD_MAX) {
                throw new IOException("xenstore protocol error: reply length out of range: len=" + length);
            }
            ByteBuffer payload = ByteBuffer.allocate(length);
            readFully(channel, payload);
            Message reply = XsWireDescriptor.decode(header, payload.array());
            if (reply.type() == XS_ERROR) {
                List<String> s = reply.strings();
                throw new XenStoreException(operation, null, s.isEmpty() ? "EIO" : s.get(0), "args=" + List.of(args));
            }
            if (reply.type() != type) {
                throw new IOException("xenstore protocol error: reply type mismatch: request="
                        + XsWireDescriptor.typeName(type) + ", reply=" + XsWireDescriptor.typeName(reply.type()));
            }
        }
    }

    private static void readFully(SocketChannel channel, ByteBuffer buf) throws IOException {
        while (buf.hasRemaining()) {
            if (channel.read(buf) < 0) {
                throw new EOFException("xenstored closed the connection before replying");
            }
        }
    }
}
