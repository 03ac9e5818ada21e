package io.jtap.xen.linux;

import static io.jtap.xen.linux.GntdevDescriptor.GRANT_REF_DOMID_OFFSET;
import static io.jtap.xen.linux.GntdevDescriptor.GRANT_REF_REF_OFFSET;
import static io.jtap.xen.linux.GntdevDescriptor.GRANT_REF_SIZE;
import static io.jtap.xen.linux.GntdevDescriptor.IOCTL_GNTDEV_GRANT_COPY;
import static io.jtap.xen.linux.GntdevDescriptor.IOCTL_GNTDEV_MAP_GRANT_REF;
import static io.jtap.xen.linux.GntdevDescriptor.IOCTL_GNTDEV_SET_MAX_GRANTS;
import static io.jtap.xen.linux.GntdevDescriptor.IOCTL_GNTDEV_SET_UNMAP_NOTIFY;
import static io.jtap.xen.linux.GntdevDescriptor.IOCTL_GNTDEV_UNMAP_GRANT_REF;
import static io.jtap.xen.linux.GntdevDescriptor.MAP_GRANT_REF_COUNT_OFFSET;
import static io.jtap.xen.linux.GntdevDescriptor.MAP_GRANT_REF_INDEX_OFFSET;
import static io.jtap.xen.linux.GntdevDescriptor.MAP_GRANT_REF_REFS_OFFSET;
import static io.jtap.xen.linux.GntdevDescriptor.SET_MAX_GRANTS_COUNT_OFFSET;
import static io.jtap.xen.linux.GntdevDescriptor.SET_MAX_GRANTS_SIZE;
import static io.jtap.xen.linux.GntdevDescriptor.UNMAP_GRANT_REF_COUNT_OFFSET;
import static io.jtap.xen.linux.GntdevDescriptor.UNMAP_GRANT_REF_INDEX_OFFSET;
import static io.jtap.xen.linux.GntdevDescriptor.UNMAP_GRANT_REF_SIZE;
import static io.jtap.xen.linux.GntdevDescriptor.UNMAP_NOTIFY_ACTION_OFFSET;
import static io.jtap.xen.linux.GntdevDescriptor.UNMAP_NOTIFY_EVENT_CHANNEL_PORT_OFFSET;
import static io.jtap.xen.linux.GntdevDescriptor.UNMAP_NOTIFY_INDEX_OFFSET;
import static io.jtap.xen.linux.GntdevDescriptor.UNMAP_NOTIFY_SIZE;

import com.sun.jna.Memory;
import com.sun.jna.Pointer;
import io.jtap.xen.Availability;
import io.jtap.xen.GrantCopyBatch;
import io.jtap.xen.GrantMapping;
import io.jtap.xen.GrantStatus;
import io.jtap.xen.GrantTable;
import io.jtap.xen.GrantTableException;
import io.jtap.xen.linux.Syscalls.ErrnoException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * {@link GrantTable} over Linux's {@code /dev/xen/gntdev}.
 *
 * <p>A map is {@code IOCTL_GNTDEV_MAP_GRANT_REF} (which only records the refs and returns an offset into the device),
 * then {@code mmap} of the device at that offset, which is when Xen maps the grants: a refused ref fails the
 * {@code mmap} with EINVAL, and a grant that is paged out fails it with EAGAIN, which is retried. Unmapping is
 * {@code munmap} then {@code IOCTL_GNTDEV_UNMAP_GRANT_REF} at the same offset, in that order (the refs stay recorded
 * until then). Copies pass the batch's native block straight to {@code IOCTL_GNTDEV_GRANT_COPY}.
 */
public final class LinuxGrantTable implements GrantTable {
    /** How long a map keeps retrying {@code mmap} while it fails with EAGAIN. */
    private static final long EAGAIN_RETRY_NS = TimeUnit.SECONDS.toNanos(1);

    private static final class AvailabilityHolder {
        static final Availability AVAILABILITY = XenDevices.probe(GntdevDescriptor.DEVICE);
    }

    private final int fd;
    private final AtomicInteger activeMappings = new AtomicInteger();
    private volatile boolean closed;

    private LinuxGrantTable(int fd) {
        this.fd = fd;
    }

    public static Availability availability() {
        return AvailabilityHolder.AVAILABILITY;
    }

    public static boolean isAvailable() {
        return availability().isAvailable();
    }

    public static Throwable unavailabilityCause() {
        return availability().unavailabilityCause();
    }

    public static void ensureAvailability() {
        availability().ensureAvailability("Linux grant table (" + GntdevDescriptor.DEVICE + ")");
    }

    /** Opens {@code /dev/xen/gntdev}. */
    public static LinuxGrantTable open() throws IOException {
        ensureAvailability();
        return new LinuxGrantTable(Syscalls.open(GntdevDescriptor.DEVICE, LibC.O_RDWR));
    }

    /**
     * Opens the device and asks for room for {@code maxGrants} mapped grants ({@code IOCTL_GNTDEV_SET_MAX_GRANTS}).
     * Kernels since 4.20 have no such ioctl (the limit is the module's {@code limit} parameter) and answer ENOTTY,
     * which is ignored.
     */
    public static LinuxGrantTable open(int maxGrants) throws IOException {
        LinuxGrantTable table = open();
        try (Memory arg = new Memory(SET_MAX_GRANTS_SIZE)) {
            arg.setInt(SET_MAX_GRANTS_COUNT_OFFSET, maxGrants);
            Syscalls.ioctl(table.fd, IOCTL_GNTDEV_SET_MAX_GRANTS, arg, "IOCTL_GNTDEV_SET_MAX_GRANTS");
        } catch (ErrnoException e) {
            if (e.errno() != LibC.ENOTTY) {
                table.close();
                throw e;
            }
        }
        return table;
    }

    @Override
    public GrantMapping map(int domid, int[] refs, boolean writable) throws IOException {
        if (refs.length == 0) {
            throw new IllegalArgumentException("grant map needs at least one ref: domid=" + domid);
        }
        ensureOpen();
        long index;
        try (Memory arg = new Memory(MAP_GRANT_REF_REFS_OFFSET + (long) GRANT_REF_SIZE * refs.length)) {
            arg.clear();
            arg.setInt(MAP_GRANT_REF_COUNT_OFFSET, refs.length);
            for (int i = 0; i < refs.length; i++) {
                long at = MAP_GRANT_REF_REFS_OFFSET + (long) GRANT_REF_SIZE * i;
                arg.setInt(at + GRANT_REF_DOMID_OFFSET, domid);
                arg.setInt(at + GRANT_REF_REF_OFFSET, refs[i]);
            }
            Syscalls.ioctl(fd, IOCTL_GNTDEV_MAP_GRANT_REF, arg, "IOCTL_GNTDEV_MAP_GRANT_REF");
            index = arg.getLong(MAP_GRANT_REF_INDEX_OFFSET);
        }
        long length = (long) refs.length * PAGE_SIZE;
        int prot = writable ? LibC.PROT_READ | LibC.PROT_WRITE : LibC.PROT_READ;
        Pointer address;
        long deadline = System.nanoTime() + EAGAIN_RETRY_NS;
        while (true) {
            try {
                address = Syscalls.mmap(null, length, prot, LibC.MAP_SHARED, fd, index);
                break;
            } catch (ErrnoException e) {
                if (e.errno() == LibC.EAGAIN && System.nanoTime() < deadline) {
                    Thread.onSpinWait();
                    continue;
                }
                unmapGrantRef(index, refs.length);
                throw new GrantTableException("grant map refused: domid=" + domid + ", refs=" + Arrays.toString(refs)
                        + ", writable=" + writable, e.errno(), GrantStatus.GNTST_general_error, e);
            }
        }
        ByteBuffer buffer = address.getByteBuffer(0, length);
        if (!writable) {
            buffer = buffer.asReadOnlyBuffer().order(ByteOrder.nativeOrder());
        }
        activeMappings.incrementAndGet();
        return new Mapping(domid, refs.clone(), writable, index, address, buffer);
    }

    private void unmapGrantRef(long index, int count) throws ErrnoException {
        try (Memory arg = new Memory(UNMAP_GRANT_REF_SIZE)) {
            arg.clear();
            arg.setLong(UNMAP_GRANT_REF_INDEX_OFFSET, index);
            arg.setInt(UNMAP_GRANT_REF_COUNT_OFFSET, count);
            Syscalls.ioctl(fd, IOCTL_GNTDEV_UNMAP_GRANT_REF, arg, "IOCTL_GNTDEV_UNMAP_GRANT_REF");
        }
    }

    @Override
    public void copy(GrantCopyBatch batch) throws IOException {
        ensureOpen();
        if (batch.size() > 0) {
            Syscalls.ioctl(fd, IOCTL_GNTDEV_GRANT_COPY, batch.ioctlArgument(), "IOCTL_GNTDEV_GRANT_COPY");
        }
    }

    @Override
    public int activeMappings() {
        return activeMappings.get();
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("grant table is closed: fd=" + fd);
        }
    }

    @Override
    public synchronized void close() throws IOException {
        if (!closed) {
            closed = true;
            Syscalls.close(fd);
        }
    }

    private final class Mapping implements GrantMapping {
        private final int domid;
        private final int[] refs;
        private final boolean writable;
        private final long index;
        private final Pointer address;
        private final ByteBuffer buffer;
        private boolean unmapped;

        Mapping(int domid, int[] refs, boolean writable, long index, Pointer address, ByteBuffer buffer) {
            this.domid = domid;
            this.refs = refs;
            this.writable = writable;
            this.index = index;
            this.address = address;
            this.buffer = buffer;
        }

        @Override
        public synchronized ByteBuffer buffer() {
            if (unmapped) {
                throw new IllegalStateException("grant mapping is closed: domid=" + domid + ", refs="
                        + Arrays.toString(refs));
            }
            return buffer;
        }

        @Override
        public int pages() {
            return refs.length;
        }

        @Override
        public int domid() {
            return domid;
        }

        @Override
        public int[] refs() {
            return refs.clone();
        }

        @Override
        public boolean writable() {
            return writable;
        }

        @Override
        public synchronized void setUnmapNotify(int action, int offset, int port) throws IOException {
            if (unmapped) {
                throw new IllegalStateException("grant mapping is closed: domid=" + domid);
            }
            ensureOpen();
            try (Memory arg = new Memory(UNMAP_NOTIFY_SIZE)) {
                arg.setLong(UNMAP_NOTIFY_INDEX_OFFSET, index + offset);
                arg.setInt(UNMAP_NOTIFY_ACTION_OFFSET, action);
                arg.setInt(UNMAP_NOTIFY_EVENT_CHANNEL_PORT_OFFSET, port);
                Syscalls.ioctl(fd, IOCTL_GNTDEV_SET_UNMAP_NOTIFY, arg, "IOCTL_GNTDEV_SET_UNMAP_NOTIFY");
            }
        }

        /** munmap, then release the refs at the mapping's offset; once the device is closed, munmap alone does it. */
        @Override
        public synchronized void close() throws IOException {
            if (unmapped) {
                return;
            }
            unmapped = true;
            activeMappings.decrementAndGet();
            Syscalls.munmap(address, (long) refs.length * PAGE_SIZE);
            synchronized (LinuxGrantTable.this) {
                if (!closed) {
                    unmapGrantRef(index, refs.length);
                }
            }
        }
    }
}
