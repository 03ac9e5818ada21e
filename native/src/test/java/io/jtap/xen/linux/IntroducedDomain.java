package io.jtap.xen.linux;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * An unprivileged domain's xenstore connection to a real xenstored running under the shim of
 * {@code native/src/test/c/xenstored-shim.c} (with JTAP_XENSTORED_DOMAINS={@code dir}): the page and FIFOs of
 * {@link DomainRingXenStoreTransport}, introduced by dom0 over the socket, and a {@link WireXenStore} over the ring.
 * xenstored treats requests on it as coming from {@code domid}, with all its permission checks.
 *
 * <p>Owns the connection and the introduction: {@link #close} closes the connection (if the user has not), releases
 * the domain in xenstored and removes the page.
 */
public final class IntroducedDomain implements AutoCloseable {
    /** The guest's event channel port for xenstore, as given in XS_INTRODUCE; the shim does not care which. */
    private static final int GUEST_PORT = 1;

    private final Path socket;
    private final Path dir;
    private final int domid;
    private final WireXenStore connection;
    private boolean closed;

    private IntroducedDomain(Path socket, Path dir, int domid, WireXenStore connection) {
        this.socket = socket;
        this.dir = dir;
        this.domid = domid;
        this.connection = connection;
    }

    /**
     * Introduces {@code domid} to the xenstored listening on {@code socket} and connects as it.
     *
     * @throws io.jtap.xen.XenStoreException when xenstored refuses the introduction (e.g. ENOENT: the shim found no
     *     page, so xenstored is not running under it with this {@code dir})
     */
    public static IntroducedDomain introduce(Path socket, Path dir, int domid) throws IOException {
        Path page = DomainRingXenStoreTransport.createInterfacePage(dir, domid);
        try {
            XenstoredToolstack.introduce(socket, domid, 0, GUEST_PORT);
        } catch (IOException e) {
            Files.deleteIfExists(page);
            throw e;
        }
        DomainRingXenStoreTransport transport;
        try {
            transport = DomainRingXenStoreTransport.open(dir, domid);
        } catch (IOException e) {
            XenstoredToolstack.release(socket, domid);
            Files.deleteIfExists(page);
            throw e;
        }
        return new IntroducedDomain(socket, dir, domid, WireXenStore.over(transport));
    }

    /** The connection acting as this domain; owned by this object, but the user may close it early. */
    public WireXenStore connection() {
        return connection;
    }

    public int domid() {
        return domid;
    }

    @Override
    public void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        try {
            connection.close();
            XenstoredToolstack.release(socket, domid);
        } finally {
            Files.deleteIfExists(DomainRingXenStoreTransport.interfacePage(dir, domid));
        }
    }
}
