package io.jtap.aio;

import com.sun.jna.Native;
import com.sun.jna.Pointer;
import java.nio.ByteBuffer;

/**
 * The iovec array of one engine slot: {@code struct iovec { void *iov_base; size_t iov_len; }} entries in native
 * memory owned by the engine, rewritten for each operation in the slot, so building a request allocates nothing.
 * Obtained from {@link BlockIoEngine#vector()}; confined to the engine's owner thread, and not to be touched between
 * passing it to {@code readv}/{@code writev} and reaping that operation (the engine advances it over short transfers).
 *
 * <p>Segment addresses are raw: the caller guarantees each names {@code length} bytes of memory that stay mapped
 * until the operation is reaped. For O_DIRECT the addresses, lengths and file offset must meet the file's alignment
 * (usually 512 or 4096 bytes).
 */
public final class IoVector {
    /** {@code sizeof(struct iovec)} on LP64. */
    static final int IOVEC_SIZE = 16;
    private static final int IOV_BASE_OFFSET = 0;
    private static final int IOV_LEN_OFFSET = 8;

    final IoSlots owner;
    final int slot;
    /** The slot's entries: {@code maxSegments * IOVEC_SIZE} bytes at {@link #address}, native order. */
    private final ByteBuffer entries;
    private final long address;
    private final int maxSegments;
    private int count;
    /** The first entry not yet fully transferred (advanced over short transfers). */
    private int first;
    private long length;
    private long remaining;
    /** A one-entry cache for {@link #add(ByteBuffer, int, int)}: finding a buffer's address allocates. */
    private ByteBuffer lastBuffer;
    private long lastBufferAddress;

    IoVector(IoSlots owner, int slot, ByteBuffer entries, long address, int maxSegments) {
        this.owner = owner;
        this.slot = slot;
        this.entries = entries;
        this.address = address;
        this.maxSegments = maxSegments;
    }

    /** The native address of a direct buffer's first byte. Allocates: call once per mapping and keep the result. */
    public static long addressOf(ByteBuffer direct) {
        if (!direct.isDirect()) {
            throw new IllegalArgumentException("an iovec needs a direct buffer");
        }
        return Pointer.nativeValue(Native.getDirectBufferPointer(direct));
    }

    /**
     * Appends a segment of {@code length} bytes at native {@code address}.
     *
     * @throws IllegalArgumentException if length &lt;= 0 or address is 0
     * @throws IllegalStateException    if the vector already holds {@link #maxSegments()} segments
     */
    public IoVector add(long address, int length) {
        if (length <= 0 || address == 0) {
            throw new IllegalArgumentException("bad iovec segment: address=0x" + Long.toHexString(address)
                    + ", length=" + length);
        }
        if (owner.closed) {
            throw new IllegalStateException("iovec of a closed engine");
        }
        if (count == maxSegments) {
            throw new IllegalStateException("iovec full: segments=" + count + ", maxSegments=" + maxSegments);
        }
        int at = count * IOVEC_SIZE;
        entries.putLong(at + IOV_BASE_OFFSET, address);
        entries.putLong(at + IOV_LEN_OFFSET, length);
        count++;
        this.length += length;
        this.remaining += length;
        return this;
    }

    /**
     * Appends {@code length} bytes of a direct buffer from {@code offset} (absolute, ignoring position and limit).
     * Remembers the last buffer's address, so segments from one mapping cost no allocation after the first.
     */
    public IoVector add(ByteBuffer direct, int offset, int length) {
        if (offset < 0 || length <= 0 || offset > direct.capacity() - length) {
            throw new IndexOutOfBoundsException("segment outside buffer: offset=" + offset + ", length=" + length
                    + ", capacity=" + direct.capacity());
        }
        if (direct != lastBuffer) {
            lastBufferAddress = addressOf(direct);
            lastBuffer = direct;
        }
        return add(lastBufferAddress + offset, length);
    }

    public int segments() {
        return count;
    }

    public int maxSegments() {
        return maxSegments;
    }

    /** The bytes the vector names. */
    public long length() {
        return length;
    }

    void reset() {
        count = 0;
        first = 0;
        length = 0;
        remaining = 0;
    }

    /** Bytes not yet transferred. */
    long remaining() {
        return remaining;
    }

    /** The address of the first entry not yet fully transferred. */
    long firstEntryAddress() {
        return address + (long) first * IOVEC_SIZE;
    }

    /** The number of entries from {@link #firstEntryAddress()}. */
    int remainingSegments() {
        return count - first;
    }

    /** Skips {@code bytes} transferred by a short read or write, rewriting the partly transferred entry in place. */
    void advance(long bytes) {
        if (bytes <= 0 || bytes > remaining) {
            throw new IllegalArgumentException("cannot advance iovec: bytes=" + bytes + ", remaining=" + remaining);
        }
        remaining -= bytes;
        while (bytes > 0) {
            int at = first * IOVEC_SIZE;
            long len = entries.getLong(at + IOV_LEN_OFFSET);
            if (bytes >= len) {
                bytes -= len;
                first++;
            } else {
                entries.putLong(at + IOV_BASE_OFFSET, entries.getLong(at + IOV_BASE_OFFSET) + bytes);
                entries.putLong(at + IOV_LEN_OFFSET, len - bytes);
                bytes = 0;
            }
        }
    }

    /** The base address of the first entry not yet fully transferred. */
    long firstBase() {
        return entries.getLong(first * IOVEC_SIZE + IOV_BASE_OFFSET);
    }

    /** The untransferred length of the first entry not yet fully transferred. */
    long firstLength() {
        return entries.getLong(first * IOVEC_SIZE + IOV_LEN_OFFSET);
    }

    /** Entry {@code i}'s base address (for tests). */
    long entryBase(int i) {
        return entries.getLong(i * IOVEC_SIZE + IOV_BASE_OFFSET);
    }

    /** Entry {@code i}'s length (for tests). */
    long entryLength(int i) {
        return entries.getLong(i * IOVEC_SIZE + IOV_LEN_OFFSET);
    }

    /** Index of the first entry not yet fully transferred (for tests). */
    int firstSegment() {
        return first;
    }
}
