package io.jtap.xen;

import java.io.IOException;

/**
 * The backend domain's view of other domains' grants: map granted pages into this process, or copy to and from them.
 *
 * <p>Shaped after Linux's gntdev device, not after libxengnttab: one open device is one {@code GrantTable}; a mapping
 * is one contiguous range of pages with one owner; a batch copy reports a status per segment. A mapping's
 * {@link GrantMapping#buffer() buffer} aliases the granted memory itself (zero copy, writes visible both ways), so it
 * must not be touched after {@link GrantMapping#close()}. A mapping outlives {@link #close()} of the table that made
 * it, as a gntdev mapping outlives its file descriptor: close mappings first.
 *
 * <p>Implementations: {@code io.jtap.xen.linux.LinuxGrantTable} (over {@code /dev/xen/gntdev}) and
 * {@code io.jtap.xen.sim.SimulatedGrantTable}. Both pass {@code GrantTableContract}. Thread-safe: mappings may be made
 * and closed from any thread; one {@link GrantCopyBatch} belongs to one thread.
 */
public interface GrantTable extends AutoCloseable {
    /** {@code XEN_PAGE_SIZE}: grants are 4 KiB pages. */
    int PAGE_SIZE = 4096;
    /** Linux {@code xen/gntdev.h}: on unmap, clear (set to zero) the byte at the notify offset. */
    int UNMAP_NOTIFY_CLEAR_BYTE = 0x1;
    /** Linux {@code xen/gntdev.h}: on unmap, send an event on the notify port. */
    int UNMAP_NOTIFY_SEND_EVENT = 0x2;

    /**
     * Maps {@code refs} of domain {@code domid} contiguously: page {@code i} of the mapping is grant {@code refs[i]}.
     *
     * @param writable whether to map read-write; a read-only mapping is mapped {@code PROT_READ} and its buffer is
     *     read-only; a read-write mapping of a read-only grant is refused
     * @return the mapping, owned by the caller (close it to unmap)
     * @throws GrantTableException when the hypervisor refuses any of the refs (none is then mapped)
     * @throws IOException when the device fails otherwise
     */
    GrantMapping map(int domid, int[] refs, boolean writable) throws IOException;

    /**
     * Performs every segment of {@code batch} ({@code GNTTABOP_copy}) and stores each segment's {@code GNTST_*} status
     * in the batch. A refused segment does not stop the others.
     *
     * @throws IOException only when the device rejects the whole batch
     */
    void copy(GrantCopyBatch batch) throws IOException;

    /** The number of mappings made through this table and not yet closed (for leak checks). */
    int activeMappings();

    /** Closes the device. Live mappings stay mapped until they are closed themselves. Idempotent. */
    @Override
    void close() throws IOException;
}
