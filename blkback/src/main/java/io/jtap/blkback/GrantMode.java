package io.jtap.blkback;

/** How a device's data path reaches the guest's data pages. Chosen per device in {@link BlkbackConfig}. */
public enum GrantMode {
    /**
     * Keep mapped grants in a bounded per-ring cache and reuse them (Linux blkback's persistent grants), when the
     * frontend also advertises {@code feature-persistent}; otherwise falls back to {@link #MAP}. The mapped pages are
     * the IO buffers.
     */
    PERSISTENT,
    /** Map all segments of a request in one batch, do the IO straight into them, unmap on completion. */
    MAP,
    /** Never map data pages: grant-copy between the guest and a private bounce buffer (QEMU qdisk's way). */
    COPY
}
