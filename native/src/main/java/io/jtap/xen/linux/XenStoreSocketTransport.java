package io.jtap.xen.linux;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;

/** xenstored's unix socket, over a blocking {@link SocketChannel}; closing it wakes the blocked reader. */
final class XenStoreSocketTransport implements XenStoreTransport {
    private final SocketChannel channel;
    private final Path path;

    private XenStoreSocketTransport(SocketChannel channel, Path path) {
        this.channel = channel;
        this.path = path;
    }

    static XenStoreSocketTransport connect(Path path) throws IOException {
        SocketChannel channel = SocketChannel.open(StandardProtocolFamily.UNIX);
        try {
            channel.connect(UnixDomainSocketAddress.of(path));
        } catch (IOException e) {
            channel.close();
            throw new IOException("xenstore connect failed: socket=" + path + ", cause=" + e.getMessage(), e);
        }
        return new XenStoreSocketTransport(channel, path);
    }

    @Override
    public int read(ByteBuffer dst) throws IOException {
        try {
            return channel.read(dst);
        } catch (ClosedChannelException e) {
            return -1;
        }
    }

    @Override
    public void write(ByteBuffer message) throws IOException {
        while (message.hasRemaining()) {
            channel.write(message);
        }
    }

    @Override
    public String describe() {
        return "socket " + path;
    }

    @Override
    public void close() throws IOException {
        channel.close();
    }
}
