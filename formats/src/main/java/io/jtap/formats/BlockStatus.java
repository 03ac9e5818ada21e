package io.jtap.formats;

/**
 * The allocation state of a run of bytes in one layer (QEMU: {@code bdrv_co_block_status}).
 *
 * @param kind   the state
 * @param length how many bytes from the queried offset share it, positive
 */
public record BlockStatus(Kind kind, long length) {

    public enum Kind {
        /** Allocated in this layer and possibly non-zero. */
        DATA,
        /** Reads as zeros, decided by this layer (a hole in raw, a zero cluster in qcow2). */
        ZERO,
        /** Not allocated in this layer: reads from the backing image, or as zeros when there is none. */
        UNALLOCATED
    }

    public BlockStatus {
        if (length <= 0) {
            throw new IllegalArgumentException("block status length must be positive: length=" + length);
        }
    }
}
