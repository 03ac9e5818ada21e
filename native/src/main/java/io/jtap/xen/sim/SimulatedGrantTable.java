package io.jtap.xen.sim;

import io.jtap.xen.GrantCopyBatch;
import io.jtap.xen.GrantMapping;
import io.jtap.xen.GrantStatus;
import io.jtap.xen.GrantTable;
import io.jtap.xen.GrantTableException;
import io.jtap.xen.linux.LibC;
import io.jtap.xen.linux.Syscalls;
import io.jtap.xen.linux.Syscalls.ErrnoException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.LinkedHashSet;
import java.util.Set;
import com.sun.jna.Pointer;

/**
 * A simulated domain's {@link GrantTable}: maps other simulated domains' grants so that the mapping truly aliases
 * their memory.
 *
 * <p>A mapping reserves {@code pages * 4096} bytes of address space ({@code PROT_NONE}, private anonymous), then maps
 * each granted frame from the granting domain's memfd over it with {@code MAP_FIXED | MAP_SHARED}, {@code PROT_READ}
 * for a read-only mapping. Refused maps fail as the Linux device fails them (EINVAL from {@code mmap}) and carry the
 * {@code GNTST_*} code Xen gave. Copies check each segment the same way and store Xen's status per segment.
 */
public final class SimulatedGrantTable implements GrantTable {
    private final SimulatedXen xen;
    private final SimulatedDomain domain;
    /** Mappings made through this table and not closed; guarded by xen.lock. */
    private final Set<SimulatedGrantMapping> mappings = new LinkedHashSet<>();
    private boolean closed;

    SimulatedGrantTable(SimulatedXen xen, SimulatedDomain domain) {
        this.xen = xen;
        this.domain = domain;
    }

    /** The domain whose view this is. */
    public SimulatedDomain domain() {
        return domain;
    }

    @Override
    public GrantMapping map(int domid, int[] refs, boolean writable) throws IOException {
        if (refs.length == 0) {
            throw new IllegalArgumentException("grant map needs at least one ref: domid=" + domid);
        }
        int[] ownRefs = refs.clone();
        synchronized (xen.lock) {
            ensureOpen();
            SimulatedDomain granter = xen.liveDomain(domid);
            for (int ref : ownRefs) {
                short status = granter == null ? GrantStatus.GNTST_bad_domain
                        : granter.checkGrant(ref, domain.domid(), writable);
                if (status != GrantStatus.GNTST_okay) {
                    throw new GrantTableException("grant map refused: mapper=dom" + domain.domid() + ", domid=" + domid
                            + ", ref=" + Integer.toUnsignedString(ref) + ", writable=" + writable, LibC.EINVAL,
                            status);
                }
            }
            long length = (long) ownRefs.length * PAGE_SIZE;
            Pointer reserved = Syscalls.mmap(null, length, LibC.PROT_NONE,
                    LibC.MAP_PRIVATE | LibC.MAP_ANONYMOUS | LibC.MAP_NORESERVE, -1, 0);
            long address = Pointer.nativeValue(reserved);
            int prot = writable ? LibC.PROT_READ | LibC.PROT_WRITE : LibC.PROT_READ;
            try {
                for (int i = 0; i < ownRefs.length; i++) {
                    long frame = granter.entry(ownRefs[i]).frame;
                    Syscalls.mmap(new Pointer(address + (long) i * PAGE_SIZE), PAGE_SIZE, prot,
                            LibC.MAP_SHARED | LibC.MAP_FIXED, granter.memfd(), frame * PAGE_SIZE);
                }
            } catch (ErrnoException e) {
                Syscalls.munmap(reserved, length);
                throw e;
            }
            for (int ref : ownRefs) {
                SimulatedDomain.GrantEntry e = granter.entry(ref);
                if (writable) {
                    e.writePins++;
                } else {
                    e.readPins++;
                }
            }
            ByteBuffer buffer = reserved.getByteBuffer(0, length);
            SimulatedGrantMapping mapping = new SimulatedGrantMapping(this, granter, ownRefs, writable, address,
                    writable ? buffer : buffer.asReadOnlyBuffer().order(ByteOrder.nativeOrder()));
            mappings.add(mapping);
            xen.registered(mapping);
            return mapping;
        }
    }

    /** Undoes {@link #map} for {@code mapping}; called by the mapping with xen.lock held. */
    void unmapped(SimulatedGrantMapping mapping) {
        mappings.remove(mapping);
        xen.unregistered(mapping);
    }

    @Override
    public void copy(GrantCopyBatch batch) throws IOException {
        synchronized (xen.lock) {
            ensureOpen();
            for (int i = 0; i < batch.size(); i++) {
                batch.setStatus(i, copySegment(batch, i));
            }
        }
    }

    private short copySegment(GrantCopyBatch batch, int i) {
        boolean fromForeign = batch.fromForeign(i);
        SimulatedDomain granter = xen.liveDomain(batch.domid(i));
        if (granter == null) {
            return GrantStatus.GNTST_bad_domain;
        }
        short status = granter.checkGrant(batch.ref(i), domain.domid(), !fromForeign);
        if (status != GrantStatus.GNTST_okay) {
            return status;
        }
        int length = batch.length(i);
        if (batch.foreignOffset(i) + length > PAGE_SIZE) {
            return GrantStatus.GNTST_bad_copy_arg;
        }
        long foreign = granter.frameAddress(granter.entry(batch.ref(i)).frame) + batch.foreignOffset(i);
        long local = batch.localAddress(i);
        ByteBuffer source = new Pointer(fromForeign ? foreign : local).getByteBuffer(0, length);
        ByteBuffer dest = new Pointer(fromForeign ? local : foreign).getByteBuffer(0, length);
        dest.put(source);
        return GrantStatus.GNTST_okay;
    }

    @Override
    public int activeMappings() {
        synchronized (xen.lock) {
            return mappings.size();
        }
    }

    private void ensureOpen() {
        xen.ensureOpen();
        if (closed) {
            throw new IllegalStateException("simulated grant table is closed: domid=" + domain.domid());
        }
    }

    /** Closes the handle; live mappings stay, as a gntdev mapping outlives its file descriptor. */
    @Override
    public void close() {
        synchronized (xen.lock) {
            if (!closed) {
                closed = true;
                xen.unregistered(this);
            }
        }
    }

    @Override
    public String toString() {
        synchronized (xen.lock) {
            return "SimulatedGrantTable[dom" + domain.domid() + ", activeMappings=" + mappings.size()
                    + (closed ? ", closed" : "") + "]";
        }
    }
}
