package io.jtap.formats;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Optional;

/**
 * An open disk image: one layer of a virtual disk, and (through {@link #backingImage()}) the layers beneath it.
 *
 * <p><b>Why it is shaped this way.</b> blkback moves guest data between guest pages and the image file without a
 * copy and with many requests in flight. So besides the synchronous copy-through {@link #read}/{@link #write} (for
 * tools and for the bounded worker pool) an image <em>translates</em> a guest range into host file extents:
 * {@link #mapForRead} says where the bytes are, {@link #mapForWrite} reserves where they go and, for a format that
 * allocates (qcow2), splits the write in two phases so that the caller's asynchronous data IO sits between the
 * reservation and the metadata update that makes the data visible. Anything the backend cannot move by itself
 * (compressed or encrypted data) is reported as {@link Extent.Kind#TRANSFORMED} and goes through
 * {@link #read}/{@link #write} instead. This mirrors tapdisk's ten-operation driver table and QEMU's
 * {@code bdrv_co_block_status}/{@code bdrv_co_preadv} split.
 *
 * <p><b>Units and alignment.</b> Offsets and lengths are bytes of the virtual disk. Every offset and length passed
 * to {@link #read}, {@link #write}, {@link #mapForRead} and {@link #mapForWrite} must be a multiple of
 * {@link #alignment()} (1 for buffered images, the device's logical block size for {@code O_DIRECT} images), and
 * the range must lie within {@code [0, size())}; otherwise {@link IllegalArgumentException}. For an {@code O_DIRECT}
 * image the caller's buffers for DATA extents must also be aligned in memory (address and length) to
 * {@code alignment()}; {@link #read}/{@link #write} accept any buffer and bounce when they must.
 *
 * <p><b>Threading.</b> All methods are safe to call from many threads at once. Metadata is guarded by one lock per
 * image; data IO happens outside it. Methods may block on file IO; none blocks waiting for another caller except
 * where a method's Javadoc says so. {@link #close()} must not race with other calls.
 *
 * <p><b>Overlapping requests.</b> Extents describe the image at the moment of the call and stay valid until the
 * caller's IO on them has finished, <em>provided</em> the caller does not concurrently {@link #discard},
 * {@link #writeZeroes} or {@link #resize} an overlapping range (those may free host clusters, which a later
 * allocation may reuse). blkback orders overlapping requests; tools are single-threaded.
 *
 * <p><b>Ownership.</b> The image owns its files and its backing chain; {@link #close()} closes both. Extents and
 * {@link HostFile}s handed out are borrowed and become invalid on close.
 *
 * <p><b>Errors.</b> {@link IOException} for IO; {@link CorruptImageException} when metadata is inconsistent, after
 * which the image refuses further writes.
 */
public interface Image extends AutoCloseable {

    /** The format's registry name, for example {@code "raw"} or {@code "qcow2"}. */
    String formatName();

    /** Virtual size in bytes. */
    long size();

    /**
     * The request alignment in bytes, a power of two: offsets and lengths of {@link #read}, {@link #write},
     * {@link #mapForRead} and {@link #mapForWrite} must be multiples of it. 1 unless the image uses {@code O_DIRECT}.
     */
    int alignment();

    /**
     * True when the image was opened read-only; writing methods then throw
     * {@link java.nio.file.AccessDeniedException}.
     */
    boolean isReadOnly();

    /**
     * Reads {@code dst.remaining()} bytes at {@code offset} into {@code dst} (advancing its position), resolving
     * the whole backing chain. Synchronous; any buffer kind.
     */
    void read(long offset, ByteBuffer dst) throws IOException;

    /**
     * Writes {@code src.remaining()} bytes at {@code offset} (advancing its position). Synchronous, allocating as
     * needed; not durable until {@link #flush()}. Equivalent to {@link #mapForWrite}, the data IO, then
     * {@link WriteMapping#complete()}.
     */
    void write(long offset, ByteBuffer src) throws IOException;

    /**
     * Makes every write and metadata update completed before the call durable (data before the metadata that
     * references it). On return a crash loses nothing that was written before the call.
     */
    void flush() throws IOException;

    /**
     * QEMU's {@code cache=unsafe}, for a target whose durability nobody relies on ({@code convert -t unsafe}): from
     * now on {@link #flush} and {@link #close} still write what they must but do not wait for it to be durable. The
     * default does nothing (flushes keep syncing).
     */
    default void disableSyncs() {
    }

    /**
     * A hint from a writer that writes each range once and in large pieces (a conversion's target): the image may
     * allocate host space explicitly before each write instead of leaving it to the file system's delayed allocation
     * (see {@link HostFile#allocateBeforeWrites}). Changes no contents and no allocation that the writes would not
     * make. The default does nothing.
     */
    default void allocateBeforeWrites() throws IOException {
    }

    /**
     * Tells the image that the range's contents are no longer needed. Advisory: afterwards the range reads as
     * zeros, as the backing image, or unchanged — use {@link #writeZeroes} for a defined result. Parts of the range
     * smaller than the format's allocation unit may be ignored. Fallback for formats that cannot free space: no-op.
     */
    void discard(long offset, long length) throws IOException;

    /**
     * Makes the range read as zeros, keeping the file sparse where the format allows (hole punching, qcow2 zero
     * clusters); falls back to writing zeros. Any alignment.
     */
    void writeZeroes(long offset, long length) throws IOException;

    /**
     * Describes the allocation state at {@code offset}: the kind and how many bytes from {@code offset} share it
     * (at least the alignment, at most {@code length}; may be less than the real run). {@code offset < size()}.
     */
    BlockStatus blockStatus(long offset, long length) throws IOException;

    /**
     * Changes the virtual size. Growing makes the new range read as zeros (even over a longer backing image),
     * with one exception QEMU shares: after a qcow2 image was shrunk to a size that is not a multiple of its cluster
     * size, the rest of that last cluster keeps its old bytes and reads back when the image grows again (unless a
     * longer backing image makes the grow zero it). Shrinking drops data beyond the new size. Fails with
     * {@link IOException} while writes are pending.
     */
    void resize(long newSize) throws IOException;

    /** The backing file as recorded in this layer (name as written, format if recorded), if any. */
    Optional<BackingReference> backing();

    /**
     * The open backing image, owned by this image, when it has a backing file and it was opened (see
     * {@link OpenOptions#openBacking()}). A {@link Extent.Kind#BACKING} extent is resolved by mapping the same
     * range in this image.
     */
    Optional<Image> backingImage();

    /**
     * Translates {@code [offset, offset+length)} into extents of this layer, in order, contiguous, covering the
     * range exactly. DATA extents name a host file and offset the caller may read from directly; ZERO reads as
     * zeros; BACKING reads from {@link #backingImage()} at the same guest offset (always within the backing image's
     * size); TRANSFORMED must be read through {@link #read}. May block to load metadata; never waits for other
     * callers.
     */
    List<Extent> mapForRead(long offset, long length) throws IOException;

    /**
     * As {@link #mapForRead}, for a caller that must not wait (blkback's ring thread, which serves every request of
     * its ring): null, having done nothing, where the answer would need a read of the image's metadata (a qcow2 L2
     * table not in the cache) or a metadata lock another thread holds (an allocation in progress). The caller then
     * maps on a thread that may wait. The default answers as {@link #mapForRead}: for formats whose mapping never
     * waits.
     */
    default List<Extent> mapForReadNow(long offset, long length) throws IOException {
        return mapForRead(offset, length);
    }

    /**
     * Reserves the host space for a write of {@code [offset, offset+length)} — phase one of a two-phase write.
     *
     * <p>The returned mapping's extents are DATA (the caller writes its data there, possibly asynchronously) or
     * TRANSFORMED (the caller writes that part through {@link #write} instead, before completing). When the caller's
     * IO has finished successfully it calls {@link WriteMapping#complete()}, which makes the data visible; if the IO
     * failed it calls {@link WriteMapping#abort()}. Until completion, reads of the range return the old contents.
     *
     * <p>For a newly allocated qcow2 cluster this method has already written the parts of the cluster outside the
     * range (copy-on-write from the backing image, zeros, or a decompressed cluster), and refcounts are updated
     * before any L2 entry references the cluster. May block on metadata and copy-on-write IO, and briefly while
     * another caller's copy-on-write into the same new cluster finishes; never waits for another caller's data IO.
     * Run it off an event loop.
     */
    WriteMapping mapForWrite(long offset, long length) throws IOException;

    /**
     * As {@link #mapForWrite}, for a caller that must not wait (blkback's ring thread): a mapping whose extents are
     * all DATA and whose {@link WriteMapping#complete()} and {@link WriteMapping#abort()} never wait either (no IO,
     * no lock another thread may hold), or null, having done nothing, where the write needs more than that:
     * allocation, copy-on-write, metadata not in memory, a transformed part, or a metadata lock another thread
     * holds. The caller then maps on a thread that may wait. The default is always null.
     */
    default WriteMapping mapForWriteNow(long offset, long length) throws IOException {
        return null;
    }

    /**
     * Flushes, releases host resources and closes the backing chain. Idempotent. Pending {@link WriteMapping}s
     * must have been completed or aborted.
     */
    @Override
    void close() throws IOException;
}
