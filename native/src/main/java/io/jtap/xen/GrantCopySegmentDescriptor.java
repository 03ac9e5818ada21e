package io.jtap.xen;

/**
 * Layout of the grant-copy ioctl argument and its segments, mirroring {@code struct ioctl_gntdev_grant_copy} and
 * {@code struct gntdev_grant_copy_segment} of Linux's {@code xen/gntdev.h} on LP64 (x86_64, arm64). Both structures
 * are laid out in one native block owned by a {@link GrantCopyBatch}, so the Linux implementation passes the block to
 * the ioctl unchanged and the simulation reads the very same bytes.
 *
 * <pre>
 *   batch block:
 *   0   struct ioctl_gntdev_grant_copy { unsigned int count; (pad 4)  struct gntdev_grant_copy_segment *segments; }
 *   16  segment[0], segment[1], ...  (segments points here)
 *
 *   struct gntdev_grant_copy_segment (24 bytes):
 *   0   union source { void *virt;  struct { grant_ref_t ref @0; __u16 offset @4; domid_t domid @6 } foreign; }
 *   8   union dest   { void *virt;  struct { grant_ref_t ref @8; __u16 offset @12; domid_t domid @14 } foreign; }
 *   16  __u16 len
 *   18  __u16 flags    GNTCOPY_source_gref | GNTCOPY_dest_gref: which side is foreign
 *   20  __s16 status   GNTST_*, written by the copy
 *   22  (pad 2)
 * </pre>
 *
 * Every value here is checked against the installed header by {@code KernelUapiLayoutTest}.
 */
public final class GrantCopySegmentDescriptor {
    public static final int IOCTL_GNTDEV_GRANT_COPY_SIZE = 16;
    public static final int IOCTL_GNTDEV_GRANT_COPY_COUNT_OFFSET = 0;
    public static final int IOCTL_GNTDEV_GRANT_COPY_SEGMENTS_OFFSET = 8;

    public static final int SEGMENT_SIZE = 24;
    public static final int SOURCE_OFFSET = 0;
    public static final int DEST_OFFSET = 8;
    /**
     * Within a source or dest union: {@code virt}, or {@code foreign.ref}, {@code foreign.offset},
     * {@code foreign.domid}.
     */
    public static final int UNION_VIRT_OFFSET = 0;
    public static final int UNION_FOREIGN_REF_OFFSET = 0;
    public static final int UNION_FOREIGN_OFFSET_OFFSET = 4;
    public static final int UNION_FOREIGN_DOMID_OFFSET = 6;
    public static final int LEN_OFFSET = 16;
    public static final int FLAGS_OFFSET = 18;
    public static final int STATUS_OFFSET = 20;

    /** Xen {@code public/grant_table.h}: the source is a grant ref (else a local virtual address). */
    public static final int GNTCOPY_source_gref = 1 << 0;
    /** Xen {@code public/grant_table.h}: the destination is a grant ref (else a local virtual address). */
    public static final int GNTCOPY_dest_gref = 1 << 1;

    /** {@code XEN_PAGE_SIZE}: a foreign side must lie within one 4 KiB Xen page. */
    public static final int XEN_PAGE_SIZE = 4096;

    private GrantCopySegmentDescriptor() {
    }
}
