package io.jtap.xen.linux;

import static io.jtap.xen.linux.XsDomainInterfaceDescriptor.INDEX;
import static io.jtap.xen.linux.XsDomainInterfaceDescriptor.PAGE_LENGTH;
import static io.jtap.xen.linux.XsDomainInterfaceDescriptor.REQ_CONS_OFFSET;
import static io.jtap.xen.linux.XsDomainInterfaceDescriptor.REQ_OFFSET;
import static io.jtap.xen.linux.XsDomainInterfaceDescriptor.REQ_PROD_OFFSET;
import static io.jtap.xen.linux.XsDomainInterfaceDescriptor.RSP_CONS_OFFSET;
import static io.jtap.xen.linux.XsDomainInterfaceDescriptor.RSP_OFFSET;
import static io.jtap.xen.linux.XsDomainInterfaceDescriptor.RSP_PROD_OFFSET;
import static io.jtap.xen.linux.XsDomainInterfaceDescriptor.XENSTORE_RING_SIZE;
import static io.jtap.xen.linux.XsDomainInterfaceDescriptor.mask;
import static io.jtap.xen.linux.XsDomainInterfaceDescriptor.plausible;

import java.io.IOException;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * The guest's end of a xenstore domain connection, as Linux's xenbus driver ({@code xenbus_comms.c}) plays it: requests
 * go into the req ring of the domain's shared {@code struct xenstore_domain_interface} ({@link
 * XsDomainInterfaceDescriptor}), replies and watch events come out of the rsp ring, and the event channel to xenstored
 * is kicked after each change of an index that xenstored may be waiting for.
 *
 * <p>Without Xen, the page is a file that xenstored maps MAP_SHARED and the event channel is a pair of FIFOs, both
 * provided by {@code native/src/test/c/xenstored-shim.c} in the directory {@code dir}: the guest kicks xenstored by
 * writing its domid into {@code dir/evtchn}, and xenstored's notifications arrive as bytes in
 * {@code dir/dom<domid>.notify}. A kick carries no data; whoever wakes rechecks the indices, so a kick that finds
 * nothing new is harmless and one that coalesces with another loses nothing.
 *
 * <p>Threads: {@link #read} from the one reader thread, {@link #write} serialized by the caller, {@link #close} from
 * any thread. The reader drains notifications while it waits for replies and wakes a writer waiting for room.
 */
final class DomainRingXenStoreTransport implements XenStoreTransport {
    /** How long a writer waiting for room sleeps before rechecking req_cons without a notification, in ms. */
    private static final long SPACE_RECHECK_MS = 10;

    private final int domid;
    private final Path dir;
    private final MappedByteBuffer page;
    private final FileChannel kick;
    private final FileChannel notify;
    /** Write end of the notify FIFO, for close() to wake the reader (a FileChannel's reads and writes share a lock). */
    private final FileChannel wake;
    private final Object space = new Object();
    private volatile boolean closed;

    private DomainRingXenStoreTransport(int domid, Path dir, MappedByteBuffer page, FileChannel kick,
            FileChannel notify, FileChannel wake) {
        this.domid = domid;
        this.dir = dir;
        this.page = page;
        this.kick = kick;
        this.notify = notify;
        this.wake = wake;
    }

    /** {@code dir/dom<domid>.interface}: the page xenstored maps for domid. */
    static Path interfacePage(Path dir, int domid) {
        return dir.resolve("dom" + domid + ".interface");
    }

    /**
     * Creates the domain's page, zeroed (empty rings), for xenstored to map at XS_INTRODUCE; replaces an old one.
     */
    static Path createInterfacePage(Path dir, int domid) throws IOException {
        Path path = interfacePage(dir, domid);
        Path tmp = dir.resolve("dom" + domid + ".interface.tmp");
        Files.write(tmp, new byte[PAGE_LENGTH]);
        Files.move(tmp, path, java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        return path;
    }

    /**
     * The guest's end for a domain xenstored has been introduced to (its page mapped and its port bound, which
     * created the notify FIFO). The caller owns the transport.
     */
    static DomainRingXenStoreTransport open(Path dir, int domid) throws IOException {
        Path notifyFifo = dir.resolve("dom" + domid + ".notify");
        if (!Files.exists(notifyFifo)) {
            throw new IOException("xenstore domain ring open failed: no notify FIFO (was the domain introduced?): path="
                    + notifyFifo);
        }
        MappedByteBuffer page;
        try (FileChannel f = FileChannel.open(interfacePage(dir, domid), StandardOpenOption.READ,
                StandardOpenOption.WRITE)) {
            page = f.map(FileChannel.MapMode.READ_WRITE, 0, PAGE_LENGTH);
            page.order(ByteOrder.nativeOrder()); // as INDEX: the indices are in the host's order
        }
        FileChannel kick = FileChannel.open(dir.resolve("evtchn"), StandardOpenOption.WRITE);
        FileChannel notify = null;
        try {
            // Read and write, so opening does not wait for a writer; then the write-only open finds a reader.
            notify = FileChannel.open(notifyFifo, StandardOpenOption.READ, StandardOpenOption.WRITE);
            FileChannel wake = FileChannel.open(notifyFifo, StandardOpenOption.WRITE);
            return new DomainRingXenStoreTransport(domid, dir, page, kick, notify, wake);
        } catch (IOException e) {
            kick.close();
            if (notify != null) {
                notify.close();
            }
            throw e;
        }
    }

    /**
     * Copies replies out of the rsp ring, waiting for a notification while it is empty. Xen:
     * {@code xb_read()} in Linux's {@code xenbus_comms.c}.
     */
    @Override
    public int read(ByteBuffer dst) throws IOException {
        while (true) {
            if (closed) {
                return -1;
            }
            int n = consumeResponses(dst);
            if (n > 0) {
                return n;
            }
            awaitNotification();
        }
    }

    private int consumeResponses(ByteBuffer dst) throws IOException {
        int cons = page.getInt(RSP_CONS_OFFSET); // only this side writes rsp_cons
        // We read the data /after/ reading the producer index.
        int prod = (int) INDEX.getAcquire(page, RSP_PROD_OFFSET);
        if (!plausible(cons, prod)) {
            throw new IOException("xenstore domain ring: bogus rsp_prod: domid=" + domid + ", rsp_cons="
                    + Integer.toUnsignedString(cons) + ", rsp_prod=" + Integer.toUnsignedString(prod));
        }
        int n = Math.min(Math.min(prod - cons, XENSTORE_RING_SIZE - mask(cons)), dst.remaining());
        if (n == 0) {
            return 0;
        }
        dst.put(dst.position(), page, RSP_OFFSET + mask(cons), n);
        dst.position(dst.position() + n);
        // xenstored sees the free space /after/ we copied the data out.
        INDEX.setRelease(page, RSP_CONS_OFFSET, cons + n);
        // xenstored, if it found the ring full, sleeps until kicked: it sees our new rsp_cons /before/ we read its
        // rsp_prod, so either it saw the room or we see the full ring it saw.
        VarHandle.fullFence();
        if ((int) INDEX.getVolatile(page, RSP_PROD_OFFSET) - cons == XENSTORE_RING_SIZE) {
            kick();
        }
        return n;
    }

    /** Blocks until xenstored notifies (or close() wakes us), drains what is there, and wakes a waiting writer. */
    private void awaitNotification() throws IOException {
        ByteBuffer drain = ByteBuffer.allocate(64);
        if (notify.read(drain) < 0) {
            throw new IOException("xenstore domain ring: notify FIFO at end of file: domid=" + domid);
        }
        synchronized (space) {
            space.notifyAll();
        }
    }

    /**
     * Copies {@code message} into the req ring, as much as fits at a time, kicking xenstored after each chunk and
     * waiting for room when the ring is full. Xen: {@code xb_write()} in Linux's {@code xenbus_comms.c}.
     */
    @Override
    public void write(ByteBuffer message) throws IOException {
        while (message.hasRemaining()) {
            if (closed) {
                throw new IOException("xenstore domain ring closed: domid=" + domid);
            }
            int prod = page.getInt(REQ_PROD_OFFSET); // only this side writes req_prod
            // We write the data /after/ reading the consumer index.
            int cons = (int) INDEX.getAcquire(page, REQ_CONS_OFFSET);
            if (!plausible(cons, prod)) {
                throw new IOException("xenstore domain ring: bogus req_cons: domid=" + domid + ", req_cons="
                        + Integer.toUnsignedString(cons) + ", req_prod=" + Integer.toUnsignedString(prod));
            }
            int room = XENSTORE_RING_SIZE - (prod - cons);
            if (room == 0) {
                awaitSpace();
                continue;
            }
            int n = Math.min(Math.min(room, XENSTORE_RING_SIZE - mask(prod)), message.remaining());
            page.put(REQ_OFFSET + mask(prod), message, message.position(), n);
            message.position(message.position() + n);
            // xenstored sees the data /before/ the new producer index.
            INDEX.setRelease(page, REQ_PROD_OFFSET, prod + n);
            kick();
        }
    }

    private void awaitSpace() throws IOException {
        synchronized (space) {
            try {
                space.wait(SPACE_RECHECK_MS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new java.io.InterruptedIOException("interrupted waiting for room in the xenstore req ring");
            }
        }
    }

    /** Signals the event channel to xenstored: the shim's FIFO takes our domid (4 bytes, atomic) as "port fired". */
    private void kick() throws IOException {
        ByteBuffer b = ByteBuffer.allocate(Integer.BYTES).order(ByteOrder.nativeOrder()).putInt(0, domid);
        while (b.hasRemaining()) {
            kick.write(b);
        }
    }

    @Override
    public String describe() {
        return "domain ring domid=" + domid + " in " + dir;
    }

    /** Makes a blocked {@link #read} return -1 by notifying ourselves; the FIFOs close in {@link #release}. */
    @Override
    public void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        if (wake.isOpen()) {
            wake.write(ByteBuffer.wrap(new byte[] {1}));
        }
        synchronized (space) {
            space.notifyAll();
        }
    }

    @Override
    public void release() throws IOException {
        try (FileChannel k = kick; FileChannel n = notify; FileChannel w = wake) {
            // closes all three
        }
    }
}
