package io.jtap.xen.linux;

import static io.jtap.xen.linux.Ioc._IOC;
import static io.jtap.xen.linux.Ioc._IOC_NONE;

import com.sun.jna.Memory;
import com.sun.jna.Pointer;
import io.jtap.xen.GrantTable;
import io.jtap.xen.GrantingFrontend;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * A {@link GrantingFrontend} on real Xen: this domain grants its own pages to itself through {@code /dev/xen/gntalloc}
 * (Linux {@code xen/gntalloc.h}), so a backend in the same domain can map them. Layouts are checked by
 * {@code KernelUapiLayoutTest}. gntalloc ends a grant lazily when it is still mapped, so {@link #endAccess} always
 * reports success here.
 */
final class LinuxGntallocFrontend implements GrantingFrontend, AutoCloseable {
    static final String DEVICE = "/dev/xen/gntalloc";
    /**
     * struct ioctl_gntalloc_alloc_gref: __u16 domid @0; __u16 flags @2; __u32 count @4; __u64 index @8; __u32
     * gref_ids[] @16.
     */
    static final int ALLOC_GREF_SIZE = 24;
    static final int ALLOC_GREF_DOMID_OFFSET = 0;
    static final int ALLOC_GREF_FLAGS_OFFSET = 2;
    static final int ALLOC_GREF_COUNT_OFFSET = 4;
    static final int ALLOC_GREF_INDEX_OFFSET = 8;
    static final int ALLOC_GREF_GREF_IDS_OFFSET = 16;
    /** struct ioctl_gntalloc_dealloc_gref: __u64 index @0; __u32 count @8. */
    static final int DEALLOC_GREF_SIZE = 16;
    static final int DEALLOC_GREF_INDEX_OFFSET = 0;
    static final int DEALLOC_GREF_COUNT_OFFSET = 8;
    static final int GNTALLOC_FLAG_WRITABLE = 1;
    static final long IOCTL_GNTALLOC_ALLOC_GREF = _IOC(_IOC_NONE, 'G', 5, ALLOC_GREF_SIZE);
    static final long IOCTL_GNTALLOC_DEALLOC_GREF = _IOC(_IOC_NONE, 'G', 6, DEALLOC_GREF_SIZE);

    private record Allocation(int ref, long index, Pointer address) {
    }

    private final int fd;
    private final int selfDomid;
    private final List<Allocation> allocations = new ArrayList<>();

    LinuxGntallocFrontend(int selfDomid) throws IOException {
        this.fd = Syscalls.open(DEVICE, LibC.O_RDWR);
        this.selfDomid = selfDomid;
    }

    @Override
    public int domid() {
        return selfDomid;
    }

    private int[] alloc(int toDomid, int pages, boolean readOnly, List<Allocation> out) throws IOException {
        int[] refs = new int[pages];
        // One ioctl per page so each ref can be ended on its own.
        for (int i = 0; i < pages; i++) {
            try (Memory arg = new Memory(ALLOC_GREF_SIZE)) {
                arg.clear();
                arg.setShort(ALLOC_GREF_DOMID_OFFSET, (short) toDomid);
                arg.setShort(ALLOC_GREF_FLAGS_OFFSET, (short) (readOnly ? 0 : GNTALLOC_FLAG_WRITABLE));
                arg.setInt(ALLOC_GREF_COUNT_OFFSET, 1);
                Syscalls.ioctl(fd, IOCTL_GNTALLOC_ALLOC_GREF, arg, "IOCTL_GNTALLOC_ALLOC_GREF");
                long index = arg.getLong(ALLOC_GREF_INDEX_OFFSET);
                refs[i] = arg.getInt(ALLOC_GREF_GREF_IDS_OFFSET);
                Pointer address = Syscalls.mmap(null, GrantTable.PAGE_SIZE, LibC.PROT_READ | LibC.PROT_WRITE,
                        LibC.MAP_SHARED, fd, index);
                Allocation a = new Allocation(refs[i], index, address);
                allocations.add(a);
                out.add(a);
            }
        }
        return refs;
    }

    /** gntalloc allocates each page on its own; the view maps them again side by side, so page i is refs[i]. */
    @Override
    public GrantedPages grant(int pages, boolean readOnly) throws IOException {
        List<Allocation> mine = new ArrayList<>();
        int[] refs = alloc(selfDomid, pages, readOnly, mine);
        // Reserve a contiguous range and move each gntalloc page into it, so that page i of the view is refs[i].
        long length = (long) pages * GrantTable.PAGE_SIZE;
        Pointer view = Syscalls.mmap(null, length, LibC.PROT_NONE, LibC.MAP_PRIVATE | LibC.MAP_ANONYMOUS, -1, 0);
        for (int i = 0; i < pages; i++) {
            Syscalls.mmap(view.share((long) i * GrantTable.PAGE_SIZE), GrantTable.PAGE_SIZE,
                    LibC.PROT_READ | LibC.PROT_WRITE, LibC.MAP_SHARED | LibC.MAP_FIXED, fd, mine.get(i).index());
        }
        ByteBuffer memory = view.getByteBuffer(0, length);
        return new GrantedPages(refs, memory);
    }

    @Override
    public boolean endAccess(int ref) throws IOException {
        for (Allocation a : allocations) {
            if (a.ref() == ref) {
                try (Memory arg = new Memory(DEALLOC_GREF_SIZE)) {
                    arg.clear();
                    arg.setLong(DEALLOC_GREF_INDEX_OFFSET, a.index());
                    arg.setInt(DEALLOC_GREF_COUNT_OFFSET, 1);
                    Syscalls.ioctl(fd, IOCTL_GNTALLOC_DEALLOC_GREF, arg, "IOCTL_GNTALLOC_DEALLOC_GREF");
                }
                allocations.remove(a);
                return true;
            }
        }
        throw new IllegalArgumentException("ref is not granted here: ref=" + ref);
    }

    /** A ref granted and ended at once; valid until the next grant reuses it. */
    @Override
    public int unusedRef() throws IOException {
        int ref = alloc(selfDomid, 1, false, new ArrayList<>())[0];
        endAccess(ref);
        return ref;
    }

    @Override
    public int refGrantedToAnotherDomain() throws IOException {
        return alloc(selfDomid + 1, 1, false, new ArrayList<>())[0];
    }

    @Override
    public int nonexistentDomid() {
        return 30000;
    }

    @Override
    public void close() throws IOException {
        Syscalls.close(fd);
    }
}
