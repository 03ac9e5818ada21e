package io.jtap.xen.sim;

import io.jtap.xen.GrantTable;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Pages of a simulated domain's memory from {@link SimulatedDomain#allocatePages(int)}: consecutive frames, seen
 * through the domain's own view. They live as long as the domain.
 */
public final class GuestPages {
    private final SimulatedDomain domain;
    private final long firstFrame;
    private final int count;
    private final ByteBuffer buffer;

    GuestPages(SimulatedDomain domain, long firstFrame, int count, ByteBuffer buffer) {
        this.domain = domain;
        this.firstFrame = firstFrame;
        this.count = count;
        this.buffer = buffer;
    }

    public SimulatedDomain domain() {
        return domain;
    }

    public int count() {
        return count;
    }

    /** The frame number of page {@code i}: what the guest puts in a grant entry. */
    public long frame(int i) {
        if (i < 0 || i >= count) {
            throw new IndexOutOfBoundsException("guest page: index=" + i + ", count=" + count);
        }
        return firstFrame + i;
    }

    /** All pages, {@code count() * 4096} bytes, writable: the guest's view in native byte order (a shared
     * buffer object; use absolute access). */
    public ByteBuffer buffer() {
        return buffer;
    }

    /** Page {@code i} alone, 4096 bytes, a fresh slice in native byte order. */
    public ByteBuffer page(int i) {
        frame(i);
        return buffer.slice(i * GrantTable.PAGE_SIZE, GrantTable.PAGE_SIZE).order(ByteOrder.nativeOrder());
    }

    /** Grants {@code toDomid} access to every page, in order, and returns the refs. */
    public int[] grantAll(int toDomid, boolean readOnly) {
        int[] refs = new int[count];
        for (int i = 0; i < count; i++) {
            refs[i] = domain.grantAccess(toDomid, frame(i), readOnly);
        }
        return refs;
    }
}
