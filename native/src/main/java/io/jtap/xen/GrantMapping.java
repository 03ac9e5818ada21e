package io.jtap.xen;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Foreign pages mapped contiguously into this process by {@link GrantTable#map}. One owner; {@link #close()} unmaps.
 *
 * <p>The {@link #buffer()} aliases the granted pages: the guest sees the backend's writes and the backend sees the
 * guest's, with no copy. Any access through the buffer after {@link #close()} touches unmapped memory and can crash
 * the JVM: the owner must stop using it first.
 */
public interface GrantMapping extends AutoCloseable {
    /**
     * The mapped memory: {@code pages() * 4096} bytes, position 0, limit = capacity; read-only when the mapping is;
     * native byte order (Xen's shared structures are little-endian on every platform jtap runs on).
     * The same buffer object on every call: use absolute accessors, or {@code duplicate()} it for a private position.
     *
     * @throws IllegalStateException after {@link #close()}
     */
    ByteBuffer buffer();

    /** The number of 4 KiB pages mapped ({@code refs().length}). */
    int pages();

    /** The granting domain. */
    int domid();

    /** A copy of the grant refs, in mapping order. */
    int[] refs();

    boolean writable();

    /**
     * Asks for an action when this mapping is unmapped, even if the process dies
     * ({@code IOCTL_GNTDEV_SET_UNMAP_NOTIFY}): {@link GrantTable#UNMAP_NOTIFY_CLEAR_BYTE} zeroes the byte at
     * {@code offset} (bytes from the start of the mapping; needs a writable mapping),
     * {@link GrantTable#UNMAP_NOTIFY_SEND_EVENT} notifies {@code port}, a local port bound through an
     * {@link EventChannels} of this process. Replaces an earlier request.
     */
    void setUnmapNotify(int action, int offset, int port) throws IOException;

    /** Unmaps the pages (munmap, then release the grants). Idempotent. */
    @Override
    void close() throws IOException;
}
