package io.jtap.ring.blkif;

import io.jtap.ring.SharedRingDescriptor;

/**
 * Constants of the block-device ring protocol, {@code xen/io/blkif.h}, under their Xen names. Layouts are in the
 * {@code Blkif*Descriptor} classes; per-ABI sizes in {@link BlkifAbi}.
 */
public final class Blkif {
    public static final int BLKIF_OP_READ = 0;
    public static final int BLKIF_OP_WRITE = 1;
    public static final int BLKIF_OP_WRITE_BARRIER = 2;
    public static final int BLKIF_OP_FLUSH_DISKCACHE = 3;
    public static final int BLKIF_OP_RESERVED_1 = 4;
    public static final int BLKIF_OP_DISCARD = 5;
    public static final int BLKIF_OP_INDIRECT = 6;

    /** Segments carried in a direct request. */
    public static final int BLKIF_MAX_SEGMENTS_PER_REQUEST = 11;
    /** Indirect pages (grefs) an indirect request can name. */
    public static final int BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST = 8;
    /** Segments in one indirect page: {@code PAGE_SIZE / sizeof(struct blkif_request_segment)} (blkif.h), 512. */
    public static final int BLKIF_SEGMENTS_PER_INDIRECT_PAGE =
        SharedRingDescriptor.XEN_PAGE_SIZE / BlkifSegmentDescriptor.LENGTH;

    /** Flag of a discard request. */
    public static final int BLKIF_DISCARD_SECURE = 1 << 0;

    public static final int BLKIF_RSP_EOPNOTSUPP = -2;
    public static final int BLKIF_RSP_ERROR = -1;
    public static final int BLKIF_RSP_OKAY = 0;

    /** Bits of the xenstore "info" node. */
    public static final int VDISK_CDROM = 0x1;
    public static final int VDISK_REMOVABLE = 0x2;
    public static final int VDISK_READONLY = 0x4;

    /** sector_number, first_sect and last_sect count 512-byte sectors (without "feature-large-sector-size"). */
    public static final int SECTOR_SHIFT = 9;
    public static final int SECTOR_SIZE = 1 << SECTOR_SHIFT;
    /** Sectors in one 4 KiB Xen page: the bound on last_sect. */
    public static final int SECTORS_PER_PAGE = SharedRingDescriptor.XEN_PAGE_SIZE >> SECTOR_SHIFT;

    private Blkif() {
    }
}
