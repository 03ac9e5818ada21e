package io.jtap.xen.sim;

import io.jtap.xen.GrantStatus;
import io.jtap.xen.GrantTable;
import io.jtap.xen.linux.LibC;
import io.jtap.xen.linux.Syscalls;
import io.jtap.xen.linux.Syscalls.ErrnoException;
import java.io.IOException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.TreeMap;
import com.sun.jna.Pointer;

/**
 * One domain of a {@link SimulatedXen}: its memory, its grant table (the grants it offers to others) and its
 * event-channel ports.
 *
 * <p>Memory: pages live in a memfd that grows with {@link #allocatePages(int)}; frame {@code n} is the memfd's page
 * {@code n}. The domain's own view is one address-space reservation in which each allocation is mapped
 * {@code MAP_SHARED}, so the guest's writes and a backend's mapping of the same frame are the same memory.
 *
 * <p>Grant table (v1 semantics): refs 0–7 are reserved ({@code GNTTAB_NR_RESERVED_ENTRIES}) and never handed out; the
 * table grows by one 512-entry frame as needed, up to 64 frames. A ref beyond the table is {@code GNTST_bad_gntref};
 * a ref not granted, granted to another domain, ended, or mapped writable while read-only is
 * {@code GNTST_general_error}, as Xen's {@code _set_status} reports it.
 */
public final class SimulatedDomain {
    /** Xen {@code GNTTAB_NR_RESERVED_ENTRIES}: the toolstack's refs (console, xenstore). */
    public static final int GNTTAB_NR_RESERVED_ENTRIES = 8;
    /** Grant entries per v1 grant-table frame: 4096 / sizeof(grant_entry_v1_t). */
    static final int ENTRIES_PER_FRAME = 512;
    /** Xen's default {@code max_grant_frames}. */
    static final int MAX_GRANT_FRAMES = 64;
    /** Ports of the 2-level event-channel ABI for a 64-bit guest. */
    static final int MAX_PORTS = 4096;

    private final SimulatedXen xen;
    private final int domid;
    private final String name;
    private final long maxPages;

    // Memory; guarded by xen.lock.
    private int memfd = -1;
    private long base;
    private long allocatedPages;

    // Grant table; guarded by xen.lock.
    private final List<GrantEntry> grantEntries = new ArrayList<>();
    private final ArrayDeque<Integer> freeRefs = new ArrayDeque<>();

    // Event-channel ports; guarded by xen.lock.
    private final TreeMap<Integer, SimulatedPort> ports = new TreeMap<>();

    private boolean dead;

    /** A grant-table entry: what the granting domain wrote (flags, domid, frame) and what Xen pinned (pins). */
    static final class GrantEntry {
        boolean permitAccess;
        int toDomid;
        long frame;
        boolean readOnly;
        int readPins;
        int writePins;

        int pins() {
            return readPins + writePins;
        }
    }

    SimulatedDomain(SimulatedXen xen, int domid, String name, long maxPages) {
        this.xen = xen;
        this.domid = domid;
        this.name = name;
        this.maxPages = maxPages;
    }

    public int domid() {
        return domid;
    }

    public String name() {
        return name;
    }

    public SimulatedXen xen() {
        return xen;
    }

    // --- Memory ------------------------------------------------------------------------------------------------------

    /**
     * Allocates {@code count} fresh zeroed pages of this domain's memory, contiguous in its view and in frame numbers.
     * Pages are never freed while the domain lives.
     */
    public GuestPages allocatePages(int count) throws IOException {
        if (count <= 0) {
            throw new IllegalArgumentException("allocate at least one page: domid=" + domid + ", count=" + count);
        }
        synchronized (xen.lock) {
            ensureAlive();
            if (allocatedPages + count > maxPages) {
                throw new IOException("simulated guest memory exhausted: domid=" + domid + ", allocatedPages="
                        + allocatedPages + ", count=" + count + ", maxPages=" + maxPages);
            }
            if (memfd < 0) {
                memfd = Syscalls.memfdCreate("jtap-sim-dom" + domid);
                try {
                    base = Pointer.nativeValue(Syscalls.mmap(null, maxPages * GrantTable.PAGE_SIZE, LibC.PROT_NONE,
                            LibC.MAP_PRIVATE | LibC.MAP_ANONYMOUS | LibC.MAP_NORESERVE, -1, 0));
                } catch (ErrnoException e) {
                    Syscalls.close(memfd);
                    memfd = -1;
                    throw e;
                }
            }
            long firstFrame = allocatedPages;
            long length = (long) count * GrantTable.PAGE_SIZE;
            Syscalls.ftruncate(memfd, (firstFrame + count) * GrantTable.PAGE_SIZE);
            Syscalls.mmap(new Pointer(frameAddress(firstFrame)), length, LibC.PROT_READ | LibC.PROT_WRITE,
                    LibC.MAP_SHARED | LibC.MAP_FIXED, memfd, firstFrame * GrantTable.PAGE_SIZE);
            allocatedPages += count;
            return new GuestPages(this, firstFrame, count,
                    new Pointer(frameAddress(firstFrame)).getByteBuffer(0, length));
        }
    }

    /** The address of {@code frame} in this domain's own view; called with xen.lock held. */
    long frameAddress(long frame) {
        return base + frame * GrantTable.PAGE_SIZE;
    }

    /** Called with xen.lock held. */
    int memfd() {
        return memfd;
    }

    /** Called with xen.lock held. */
    boolean ownsFrame(long frame) {
        return frame >= 0 && frame < allocatedPages;
    }

    /** Called with xen.lock held, when the world closes. */
    void releaseMemory() throws ErrnoException {
        dead = true;
        if (memfd >= 0) {
            Syscalls.munmap(new Pointer(base), maxPages * GrantTable.PAGE_SIZE);
            Syscalls.close(memfd);
            memfd = -1;
        }
    }

    // --- Grant table -------------------------------------------------------------------------------------------------

    /**
     * Grants {@code toDomid} access to {@code frame} of this domain (Linux {@code gnttab_grant_foreign_access}).
     *
     * @return the grant ref, never one of the reserved refs 0–7
     */
    public int grantAccess(int toDomid, long frame, boolean readOnly) {
        synchronized (xen.lock) {
            ensureAlive();
            if (!ownsFrame(frame)) {
                throw new IllegalArgumentException("grant of a frame the domain does not own: domid=" + domid
                        + ", frame=" + frame + ", allocatedPages=" + allocatedPages);
            }
            if (freeRefs.isEmpty()) {
                growGrantTable();
            }
            int ref = freeRefs.pop();
            GrantEntry e = grantEntries.get(ref);
            e.permitAccess = true;
            e.toDomid = toDomid;
            e.frame = frame;
            e.readOnly = readOnly;
            return ref;
        }
    }

    private void growGrantTable() {
        int size = grantEntries.size();
        if (size >= MAX_GRANT_FRAMES * ENTRIES_PER_FRAME) {
            throw new IllegalStateException("simulated grant table full: domid=" + domid + ", entries=" + size);
        }
        for (int i = 0; i < ENTRIES_PER_FRAME; i++) {
            grantEntries.add(new GrantEntry());
        }
        // Pushed in descending order so that the lowest free ref is handed out first.
        for (int ref = size + ENTRIES_PER_FRAME - 1; ref >= Math.max(size, GNTTAB_NR_RESERVED_ENTRIES); ref--) {
            freeRefs.push(ref);
        }
    }

    /**
     * Ends foreign access to {@code ref} (Linux {@code gnttab_end_foreign_access_ref}): succeeds only while no one has
     * it mapped. On success the ref is free for reuse.
     *
     * @return false when the grant is still mapped by some domain (the backend holds it), true when access ended
     * @throws IllegalArgumentException when {@code ref} is not granted
     */
    public boolean endAccess(int ref) {
        synchronized (xen.lock) {
            GrantEntry e = grantedEntry(ref);
            if (e.pins() > 0) {
                return false;
            }
            e.permitAccess = false;
            freeRefs.push(ref);
            return true;
        }
    }

    /**
     * Withdraws {@code ref} regardless of mappings, as a guest may overwrite its grant entry at any time: new maps and
     * copies of it fail at once, while existing mappings keep aliasing the page until they are unmapped (Xen keeps
     * the page pinned). The ref is reused only once the last mapping is gone.
     */
    public void revoke(int ref) {
        synchronized (xen.lock) {
            GrantEntry e = grantedEntry(ref);
            e.permitAccess = false;
            if (e.pins() == 0) {
                freeRefs.push(ref);
            }
        }
    }

    /** How many mappings of other domains currently pin {@code ref} (0 when none). */
    public int mapCount(int ref) {
        synchronized (xen.lock) {
            return ref >= 0 && ref < grantEntries.size() ? grantEntries.get(ref).pins() : 0;
        }
    }

    /** The refs currently granted (not ended), ascending: a frontend's own leak check. */
    public int[] grantedRefs() {
        synchronized (xen.lock) {
            List<Integer> refs = new ArrayList<>();
            for (int ref = 0; ref < grantEntries.size(); ref++) {
                if (grantEntries.get(ref).permitAccess) {
                    refs.add(ref);
                }
            }
            return refs.stream().mapToInt(Integer::intValue).toArray();
        }
    }

    private GrantEntry grantedEntry(int ref) {
        if (ref < 0 || ref >= grantEntries.size() || !grantEntries.get(ref).permitAccess) {
            throw new IllegalArgumentException("ref is not granted: domid=" + domid + ", ref=" + ref);
        }
        return grantEntries.get(ref);
    }

    /**
     * Xen's check of {@code ref} for domain {@code mapper} ({@code _set_status_v1}); called with xen.lock held.
     *
     * @return {@code GNTST_okay} or the status Xen would report
     */
    short checkGrant(int ref, int mapper, boolean write) {
        if (ref < 0 || ref >= grantEntries.size()) {
            return GrantStatus.GNTST_bad_gntref;
        }
        GrantEntry e = grantEntries.get(ref);
        if (!e.permitAccess || e.toDomid != mapper || (write && e.readOnly)) {
            return GrantStatus.GNTST_general_error;
        }
        return GrantStatus.GNTST_okay;
    }

    /** The entry of a ref that passed {@link #checkGrant}; called with xen.lock held. */
    GrantEntry entry(int ref) {
        return grantEntries.get(ref);
    }

    /** Drops a mapping's pin; a revoked entry is freed with its last pin. Called with xen.lock held. */
    void unpin(int ref, boolean write) {
        GrantEntry e = grantEntries.get(ref);
        if (write) {
            e.writePins--;
        } else {
            e.readPins--;
        }
        if (e.pins() == 0 && !e.permitAccess) {
            if (!freeRefs.contains(ref)) {
                freeRefs.push(ref);
            }
        }
    }

    // --- Event-channel ports -----------------------------------------------------------------------------------------

    /** Allocates the lowest free port (ports start at 1); called with xen.lock held. */
    SimulatedPort allocatePort(SimulatedEventChannels owner, String call) throws ErrnoException {
        int port = 1;
        for (int used : ports.keySet()) {
            if (used != port) {
                break;
            }
            port++;
        }
        if (port >= MAX_PORTS) {
            throw new ErrnoException(call + " [simulated dom" + domid + "]", LibC.ENOSPC);
        }
        SimulatedPort p = new SimulatedPort(port, owner);
        ports.put(port, p);
        return p;
    }

    /** Called with xen.lock held. */
    SimulatedPort port(int port) {
        return ports.get(port);
    }

    /** Called with xen.lock held. */
    void freePort(int port) {
        ports.remove(port);
    }

    // --- Handles -----------------------------------------------------------------------------------------------------

    /** Opens this domain's view of others' grants (an open of {@code /dev/xen/gntdev} in this domain). */
    public SimulatedGrantTable openGrantTable() {
        synchronized (xen.lock) {
            ensureAlive();
            SimulatedGrantTable table = new SimulatedGrantTable(xen, this);
            xen.registered(table);
            return table;
        }
    }

    /** Opens an event-channel handle of this domain (an open of {@code /dev/xen/evtchn} in this domain). */
    public SimulatedEventChannels openEventChannels() throws IOException {
        synchronized (xen.lock) {
            ensureAlive();
            SimulatedEventChannels channels = new SimulatedEventChannels(xen, this);
            xen.registered(channels);
            return channels;
        }
    }

    /** Called with xen.lock held. */
    boolean alive() {
        return !dead;
    }

    private void ensureAlive() {
        xen.ensureOpen();
        if (dead) {
            throw new IllegalStateException("simulated domain is gone: domid=" + domid);
        }
    }

    @Override
    public String toString() {
        return "dom" + domid + "(" + name + ")";
    }

    /** For diagnostics: the ports of this domain. */
    String describePorts(Iterable<Integer> which) {
        List<String> out = new ArrayList<>();
        for (int port : which) {
            SimulatedPort p = ports.get(port);
            out.add(p == null ? port + ":free" : p.toString());
        }
        return Arrays.toString(out.toArray());
    }
}
