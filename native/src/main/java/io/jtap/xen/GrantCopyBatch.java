package io.jtap.xen;

import static io.jtap.xen.GrantCopySegmentDescriptor.DEST_OFFSET;
import static io.jtap.xen.GrantCopySegmentDescriptor.FLAGS_OFFSET;
import static io.jtap.xen.GrantCopySegmentDescriptor.GNTCOPY_dest_gref;
import static io.jtap.xen.GrantCopySegmentDescriptor.GNTCOPY_source_gref;
import static io.jtap.xen.GrantCopySegmentDescriptor.IOCTL_GNTDEV_GRANT_COPY_COUNT_OFFSET;
import static io.jtap.xen.GrantCopySegmentDescriptor.IOCTL_GNTDEV_GRANT_COPY_SEGMENTS_OFFSET;
import static io.jtap.xen.GrantCopySegmentDescriptor.IOCTL_GNTDEV_GRANT_COPY_SIZE;
import static io.jtap.xen.GrantCopySegmentDescriptor.LEN_OFFSET;
import static io.jtap.xen.GrantCopySegmentDescriptor.SEGMENT_SIZE;
import static io.jtap.xen.GrantCopySegmentDescriptor.SOURCE_OFFSET;
import static io.jtap.xen.GrantCopySegmentDescriptor.STATUS_OFFSET;
import static io.jtap.xen.GrantCopySegmentDescriptor.UNION_FOREIGN_DOMID_OFFSET;
import static io.jtap.xen.GrantCopySegmentDescriptor.UNION_FOREIGN_OFFSET_OFFSET;
import static io.jtap.xen.GrantCopySegmentDescriptor.UNION_FOREIGN_REF_OFFSET;
import static io.jtap.xen.GrantCopySegmentDescriptor.UNION_VIRT_OFFSET;
import static io.jtap.xen.GrantCopySegmentDescriptor.XEN_PAGE_SIZE;

import com.sun.jna.Memory;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A reusable batch of grant-copy segments for {@link GrantTable#copy(GrantCopyBatch)}: the backend's way to move
 * request data without mapping ({@code GNTTABOP_copy} through {@code IOCTL_GNTDEV_GRANT_COPY}).
 *
 * <p>Each segment copies between a local direct {@link ByteBuffer} and one foreign page (domid, ref, offset), in one
 * direction. The segments are written straight into a native block laid out as the ioctl argument
 * ({@link GrantCopySegmentDescriptor}), so filling and submitting a batch allocates nothing: {@link #clear()} and
 * reuse. Argument checks the kernel would reject the whole ioctl for (a foreign side crossing its page, a zero length)
 * are made here, at {@code add} time, as {@link IllegalArgumentException}; the hypervisor's per-segment verdicts come
 * back in {@link #status(int)}.
 *
 * <p>Not thread-safe: one owner (a ring's loop) fills, submits and reads it. The local buffers are referenced until
 * {@link #clear()} so they stay alive during the copy.
 */
public final class GrantCopyBatch implements AutoCloseable {
    private final int capacity;
    private final Memory block;
    /** {@link #block} as a buffer, for field access without a JNI call per field. */
    private final ByteBuffer view;
    private final ByteBuffer[] locals;
    private int size;
    private ByteBuffer lastBuffer;
    private long lastAddress;

    public GrantCopyBatch(int capacity) {
        if (capacity <= 0) {
            throw new IllegalArgumentException("grant copy batch needs a positive capacity: capacity=" + capacity);
        }
        this.capacity = capacity;
        this.block = new Memory(IOCTL_GNTDEV_GRANT_COPY_SIZE + (long) SEGMENT_SIZE * capacity);
        this.block.clear();
        this.view = block.getByteBuffer(0, block.size()).order(ByteOrder.nativeOrder());
        this.locals = new ByteBuffer[capacity];
        this.block.setPointer(IOCTL_GNTDEV_GRANT_COPY_SEGMENTS_OFFSET, block.share(IOCTL_GNTDEV_GRANT_COPY_SIZE));
    }

    /**
     * Adds a segment copying {@code length} bytes from foreign page ({@code domid}, {@code ref}) at
     * {@code foreignOffset} into {@code local} at {@code localOffset} (a guest's write request, a tx packet).
     *
     * @return the segment's index, for {@link #status(int)}
     */
    public int copyFromForeign(int domid, int ref, int foreignOffset, ByteBuffer local, int localOffset, int length) {
        if (local.isReadOnly()) {
            throw new IllegalArgumentException("grant copy into a read-only local buffer: domid=" + domid + ", ref="
                    + Integer.toUnsignedString(ref));
        }
        int i = begin(domid, ref, foreignOffset, local, localOffset, length);
        long seg = segmentOffset(i);
        putForeign(seg + SOURCE_OFFSET, domid, ref, foreignOffset);
        putLong(seg + DEST_OFFSET + UNION_VIRT_OFFSET, address(local) + localOffset);
        putShort(seg + FLAGS_OFFSET, (short) GNTCOPY_source_gref);
        return i;
    }

    /**
     * Adds a segment copying {@code length} bytes from {@code local} at {@code localOffset} into foreign page
     * ({@code domid}, {@code ref}) at {@code foreignOffset} (a read response, an rx packet).
     *
     * @return the segment's index, for {@link #status(int)}
     */
    public int copyToForeign(ByteBuffer local, int localOffset, int domid, int ref, int foreignOffset, int length) {
        int i = begin(domid, ref, foreignOffset, local, localOffset, length);
        long seg = segmentOffset(i);
        putLong(seg + SOURCE_OFFSET + UNION_VIRT_OFFSET, address(local) + localOffset);
        putForeign(seg + DEST_OFFSET, domid, ref, foreignOffset);
        putShort(seg + FLAGS_OFFSET, (short) GNTCOPY_dest_gref);
        return i;
    }

    private int begin(int domid, int ref, int foreignOffset, ByteBuffer local, int localOffset, int length) {
        if (size == capacity) {
            throw new IllegalStateException("grant copy batch is full: capacity=" + capacity);
        }
        if (!local.isDirect()) {
            throw new IllegalArgumentException("grant copy needs a direct local buffer");
        }
        if (length <= 0 || foreignOffset < 0 || foreignOffset + length > XEN_PAGE_SIZE) {
            throw new IllegalArgumentException("grant copy segment must lie within one page: domid=" + domid
                    + ", ref=" + Integer.toUnsignedString(ref) + ", offset=" + foreignOffset + ", length=" + length);
        }
        if (domid < 0 || domid > 0xffff) {
            throw new IllegalArgumentException("grant copy domid out of range: domid=" + domid);
        }
        if (localOffset < 0 || localOffset > local.capacity() - length) {
            throw new IllegalArgumentException("grant copy local range outside the buffer: localOffset=" + localOffset
                    + ", length=" + length + ", capacity=" + local.capacity());
        }
        int i = size++;
        locals[i] = local;
        long seg = segmentOffset(i);
        putShort(seg + LEN_OFFSET, (short) length);
        putShort(seg + STATUS_OFFSET, GrantStatus.GNTST_general_error);
        putInt(IOCTL_GNTDEV_GRANT_COPY_COUNT_OFFSET, size);
        return i;
    }

    private void putForeign(long union, int domid, int ref, int offset) {
        putInt(union + UNION_FOREIGN_REF_OFFSET, ref);
        putShort(union + UNION_FOREIGN_OFFSET_OFFSET, (short) offset);
        putShort(union + UNION_FOREIGN_DOMID_OFFSET, (short) domid);
    }

    /** One-entry cache: a ring loop copies to and from the same few buffers, so this rarely allocates. */
    private long address(ByteBuffer local) {
        if (local != lastBuffer) {
            lastAddress = Pointer.nativeValue(Native.getDirectBufferPointer(local));
            lastBuffer = local;
        }
        return lastAddress;
    }

    private static long segmentOffset(int i) {
        return IOCTL_GNTDEV_GRANT_COPY_SIZE + (long) SEGMENT_SIZE * i;
    }

    private long checked(int i) {
        if (i < 0 || i >= size) {
            throw new IndexOutOfBoundsException("grant copy segment: index=" + i + ", size=" + size);
        }
        return segmentOffset(i);
    }

    /** Empties the batch for reuse; statuses of the previous copy are gone. */
    public void clear() {
        for (int i = 0; i < size; i++) {
            locals[i] = null;
        }
        size = 0;
        putInt(IOCTL_GNTDEV_GRANT_COPY_COUNT_OFFSET, 0);
    }

    public int size() {
        return size;
    }

    public int capacity() {
        return capacity;
    }

    /** The {@code GNTST_*} status of segment {@code i} after {@link GrantTable#copy}; general_error before. */
    public short status(int i) {
        return getShort(checked(i) + STATUS_OFFSET);
    }

    /** The index of the first segment whose status is not {@code GNTST_okay}, or -1 when all succeeded. */
    public int firstFailure() {
        for (int i = 0; i < size; i++) {
            if (status(i) != GrantStatus.GNTST_okay) {
                return i;
            }
        }
        return -1;
    }

    // --- Accessors for GrantTable implementations -------------------------------------------------------------------

    /** The native block, laid out as {@code struct ioctl_gntdev_grant_copy} followed by the segments. */
    public Pointer ioctlArgument() {
        return block;
    }

    /** Whether segment {@code i} copies foreign → local ({@code GNTCOPY_source_gref}); else local → foreign. */
    public boolean fromForeign(int i) {
        return (getShort(checked(i) + FLAGS_OFFSET) & GNTCOPY_source_gref) != 0;
    }

    private long foreignUnion(int i) {
        return checked(i) + (fromForeign(i) ? SOURCE_OFFSET : DEST_OFFSET);
    }

    private long localUnion(int i) {
        return checked(i) + (fromForeign(i) ? DEST_OFFSET : SOURCE_OFFSET);
    }

    public int domid(int i) {
        return Short.toUnsignedInt(getShort(foreignUnion(i) + UNION_FOREIGN_DOMID_OFFSET));
    }

    public int ref(int i) {
        return getInt(foreignUnion(i) + UNION_FOREIGN_REF_OFFSET);
    }

    public int foreignOffset(int i) {
        return Short.toUnsignedInt(getShort(foreignUnion(i) + UNION_FOREIGN_OFFSET_OFFSET));
    }

    /** The local virtual address of segment {@code i} (buffer address plus local offset). */
    public long localAddress(int i) {
        return getLong(localUnion(i) + UNION_VIRT_OFFSET);
    }

    public int length(int i) {
        return Short.toUnsignedInt(getShort(checked(i) + LEN_OFFSET));
    }

    /** For implementations that perform the copy themselves (the simulation). */
    public void setStatus(int i, short status) {
        putShort(checked(i) + STATUS_OFFSET, status);
    }

    private void putShort(long at, short v) {
        view.putShort((int) at, v);
    }

    private void putInt(long at, int v) {
        view.putInt((int) at, v);
    }

    private void putLong(long at, long v) {
        view.putLong((int) at, v);
    }

    private short getShort(long at) {
        return view.getShort((int) at);
    }

    private int getInt(long at) {
        return view.getInt((int) at);
    }

    private long getLong(long at) {
        return view.getLong((int) at);
    }

    /** Frees the native block; the batch must not be used afterwards. */
    @Override
    public void close() {
        clear();
        block.close();
    }
}
