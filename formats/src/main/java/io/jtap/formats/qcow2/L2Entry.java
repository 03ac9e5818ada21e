package io.jtap.formats.qcow2;

/**
 * Decoding of L1 and L2 entries (qcow2.txt, "Cluster mapping"). An L2 entry's standard cluster descriptor:
 *
 * <pre>
 *  bit 63 COPIED (refcount is exactly 1)   bit 62 COMPRESSED
 *  normal:     bits 9-55 host cluster offset, bit 0 reads as zeros (v3)
 *  compressed: bits 0..x-1 host byte offset, bits x..61 additional 512-byte sectors, x = 62 - (cluster_bits - 8)
 * </pre>
 *
 * Extended L2 entries add a 64-bit bitmap: bit i = subcluster i allocated, bit 32+i = subcluster i reads as zeros.
 */
final class L2Entry {
    static final long COPIED = 1L << 63;
    static final long COMPRESSED = 1L << 62;
    static final long ZERO = 1L;
    static final long OFFSET_MASK = 0x00fffffffffffe00L;
    /** Bits other than these in a normal L2 entry are reserved and must be zero. */
    static final long NORMAL_RESERVED = ~(COPIED | OFFSET_MASK | ZERO);
    static final int SUBCLUSTERS = 32;
    static final int SECTOR = 512;

    /** What a guest cluster (or subcluster) is, as far as this layer knows. */
    enum Type {
        UNALLOCATED, ZERO, NORMAL, COMPRESSED
    }

    private L2Entry() {
    }

    static Type type(long entry, int version) {
        if ((entry & COMPRESSED) != 0) {
            return Type.COMPRESSED;
        }
        if (version >= 3 && (entry & ZERO) != 0) {
            return Type.ZERO;
        }
        return (entry & OFFSET_MASK) == 0 ? Type.UNALLOCATED : Type.NORMAL;
    }

    static long hostOffset(long entry) {
        return entry & OFFSET_MASK;
    }

    /** Bit position where a compressed entry's sector count starts. */
    static int compressedShift(int clusterBits) {
        return 62 - (clusterBits - 8);
    }

    /** Host byte offset of compressed data. */
    static long compressedOffset(long entry, int clusterBits) {
        return entry & ((1L << compressedShift(clusterBits)) - 1);
    }

    /**
     * Bytes of compressed data from {@link #compressedOffset}: whole 512-byte sectors counted from the sector that
     * holds the offset, so the true length is known only to that precision.
     */
    static int compressedLength(long entry, int clusterBits) {
        int shift = compressedShift(clusterBits);
        long sectors = ((entry >>> shift) & ((1L << (clusterBits - 8)) - 1)) + 1;
        long offset = compressedOffset(entry, clusterBits);
        return (int) (sectors * SECTOR - (offset & (SECTOR - 1)));
    }
}
