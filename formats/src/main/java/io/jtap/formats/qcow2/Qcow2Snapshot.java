package io.jtap.formats.qcow2;

/**
 * One internal snapshot, as its entry in the snapshot table describes it ({@link SnapshotTable} has the layout).
 *
 * @param id            the id string, unique in the image (QEMU numbers them 1, 2, ...)
 * @param name          the name (QEMU calls it the tag); not necessarily unique in images other tools wrote
 * @param l1TableOffset the snapshot's L1 table
 * @param l1Size        its entries
 * @param diskSize      virtual size at the time of the snapshot (-1 when the entry predates the field)
 * @param dateSeconds   creation time, seconds since the epoch
 * @param dateNanos     creation time, the part below a second, in nanoseconds
 * @param vmClockNanos  how long the guest had run when the snapshot was taken (0 for disk-only snapshots)
 * @param vmStateSize   bytes of VM state saved with the snapshot (0 for disk-only snapshots)
 * @param icount        the guest's instruction count at the snapshot (-1 when not recorded)
 */
public record Qcow2Snapshot(String id, String name, long l1TableOffset, int l1Size, long diskSize,
                            long dateSeconds, int dateNanos, long vmClockNanos, long vmStateSize, long icount) {
}
