package io.jtap.formats;

import com.sun.jna.Native;
import com.sun.jna.Pointer;
import com.sun.nio.file.ExtendedOpenOption;
import io.jtap.formats.internal.LibC;
import io.jtap.formats.internal.NativeFiles;
import io.jtap.formats.internal.Zeros;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A host file (regular file or block device) an image stores its bytes in, as both a {@link FileChannel} (for Java
 * IO) and a native file descriptor (for {@code fallocate}, {@code lseek(SEEK_DATA)} and, later, io_uring), opened with
 * the same access mode and the same {@code O_DIRECT} setting.
 *
 * <p>Owned by one image; {@link Extent}s borrow it. Thread-safe: positional IO only. Without the libc binding the
 * descriptor is absent ({@link #fd()} throws) and hole punching and data seeking report "unsupported".
 *
 * <p>With {@code O_DIRECT} ({@link #isDirect()}) every offset, length and buffer address of the caller's own IO must
 * be a multiple of {@link #alignment()}; {@link #read} and {@link #write} bounce unaligned buffers themselves.
 */
public final class HostFile implements AutoCloseable {
    /** Direct IO on Linux needs at most this alignment (the largest logical block size in practice). */
    private static final int MAX_DIRECT_ALIGNMENT = 4096;
    /** The smallest logical block size; a direct file tries it first. */
    private static final int MIN_DIRECT_ALIGNMENT = 512;
    /** The most buffers one {@code preadv}/{@code pwritev} takes (Linux's {@code IOV_MAX}). */
    static final int IOV_MAX = 1024;
    private static final int IOVEC_SIZE = 16;

    private final Path path;
    private final FileChannel channel;
    private final int fd;
    private final IOException fdFailure;
    private final boolean writable;
    private final boolean direct;
    private final boolean blockDevice;
    private final int alignment;
    private final AtomicBoolean closed = new AtomicBoolean();
    private volatile WriteObserver observer;
    private volatile boolean syncsDeferred;
    private volatile boolean allocateBeforeWrites;
    /** While growing ahead ({@link #allocateAheadOfEnd}): the file is allocated up to here; else -1. */
    private volatile long allocatedEnd = -1;
    private long growthStep;

    /**
     * Sees every change made through this object's own methods, in issue order: the seam crash-consistency tests
     * record the write stream through. Not called for IO a caller does on {@link #channel()} or {@link #fd()}
     * directly. Calls come from the changing thread in issue order: a write just before it starts, a zeroing once it
     * has succeeded, {@link #synced()} once the sync has completed. An observer must not keep the buffer.
     */
    public interface WriteObserver {
        /** {@code data} (a read-only view, position to limit) is about to be written at {@code position}. */
        void written(long position, ByteBuffer data);

        /** The range is about to read as zeros; {@code keepSize} false means the file may grow to cover it. */
        void zeroed(long position, long length, boolean keepSize);

        /** Everything issued before has become durable. */
        void synced();
    }

    /** Installs (or, with null, removes) the observer. One at a time. */
    public void observe(WriteObserver value) {
        this.observer = value;
    }

    private HostFile(Path path, FileChannel channel, int fd, IOException fdFailure, boolean writable, boolean direct,
                     boolean blockDevice, int alignment) {
        this.path = path;
        this.channel = channel;
        this.fd = fd;
        this.fdFailure = fdFailure;
        this.writable = writable;
        this.direct = direct;
        this.blockDevice = blockDevice;
        this.alignment = alignment;
    }

    /**
     * Opens an existing file or block device.
     *
     * @param writable open read-write, else read-only
     * @param direct   bypass the page cache ({@code O_DIRECT}); the alignment is then probed (512, else 4096)
     */
    public static HostFile open(Path path, boolean writable, boolean direct) throws IOException {
        List<OpenOption> options = new ArrayList<>();
        options.add(StandardOpenOption.READ);
        if (writable) {
            options.add(StandardOpenOption.WRITE);
        }
        if (direct) {
            options.add(ExtendedOpenOption.DIRECT);
        }
        boolean blockDevice = isBlockDevice(path);
        FileChannel channel = FileChannel.open(path, options.toArray(new OpenOption[0]));
        int fd = -1;
        IOException fdFailure = null;
        try {
            if (NativeFiles.isAvailable()) {
                int flags = (writable ? LibC.O_RDWR : LibC.O_RDONLY) | (direct ? LibC.oDirect() : 0);
                fd = NativeFiles.open(path.toString(), flags);
            } else {
                fdFailure = new IOException("no native descriptor: cause=" + LibC.loadFailure());
            }
            int alignment = direct ? probeDirectAlignment(channel) : 1;
            return new HostFile(path, channel, fd, fdFailure, writable, direct, blockDevice, alignment);
        } catch (IOException | RuntimeException e) {
            channel.close();
            if (fd >= 0) {
                NativeFiles.close(fd);
            }
            throw e;
        }
    }

    private static boolean isBlockDevice(Path path) throws IOException {
        try {
            int mode = (Integer) Files.getAttribute(path, "unix:mode");
            return (mode & 0170000) == 0060000;
        } catch (UnsupportedOperationException | IllegalArgumentException e) {
            return false;
        }
    }

    private static int probeDirectAlignment(FileChannel channel) throws IOException {
        ByteBuffer buf = ByteBuffer.allocateDirect(2 * MAX_DIRECT_ALIGNMENT).alignedSlice(MAX_DIRECT_ALIGNMENT);
        buf.limit(MIN_DIRECT_ALIGNMENT);
        try {
            channel.read(buf, 0);
            return MIN_DIRECT_ALIGNMENT;
        } catch (IOException e) {
            return MAX_DIRECT_ALIGNMENT;
        }
    }

    public Path path() {
        return path;
    }

    /** The channel for positional Java IO. Borrowed: do not close. */
    public FileChannel channel() {
        return channel;
    }

    /** The native descriptor (same file, same flags). Borrowed: do not close. */
    public int fd() throws IOException {
        if (fd < 0) {
            throw fdFailure;
        }
        return fd;
    }

    public boolean isWritable() {
        return writable;
    }

    public boolean isDirect() {
        return direct;
    }

    public boolean isBlockDevice() {
        return blockDevice;
    }

    /** 1 for buffered files; the probed logical block size for direct ones. */
    public int alignment() {
        return alignment;
    }

    /** Size in bytes (for a block device, the device size). */
    public long size() throws IOException {
        if (blockDevice) {
            if (fd < 0) {
                throw new IOException("block device size needs the native descriptor: path=" + path, fdFailure);
            }
            return NativeFiles.lseek(fd, 0, LibC.SEEK_END);
        }
        return channel.size();
    }

    /**
     * Reads {@code dst.remaining()} bytes at {@code position}; bytes past the end of the file read as zeros.
     * Any buffer; unaligned IO on a direct file is bounced.
     */
    public void read(ByteBuffer dst, long position) throws IOException {
        if (direct && !isAligned(dst, position)) {
            bouncedRead(dst, position);
            return;
        }
        long pos = position;
        while (dst.hasRemaining()) {
            int n = channel.read(dst, pos);
            if (n < 0) {
                Zeros.fill(dst);
                return;
            }
            pos += n;
        }
    }

    /**
     * Reads into {@code dsts} in order: the first from {@code position}, each next one from where the previous one
     * ends, as {@link #read(ByteBuffer, long)} for each. When every buffer is direct (and aligned, on a direct file)
     * this is one {@code preadv} per {@value #IOV_MAX} buffers, not one system call per buffer.
     */
    public void read(ByteBuffer[] dsts, long position) throws IOException {
        if (!vectored(dsts, position)) {
            long pos = position;
            for (ByteBuffer dst : dsts) {
                int n = dst.remaining();
                read(dst, pos);
                pos += n;
            }
            return;
        }
        transferv(dsts, position, true);
    }

    /**
     * Writes all of {@code srcs} in order: the first at {@code position}, each next one where the previous one ends,
     * as {@link #write(ByteBuffer, long)} for each; one {@code pwritev} per {@value #IOV_MAX} buffers where
     * {@link #read(ByteBuffer[], long)} would read with one {@code preadv}.
     */
    public void write(ByteBuffer[] srcs, long position) throws IOException {
        if (!vectored(srcs, position)) {
            long pos = position;
            for (ByteBuffer src : srcs) {
                int n = src.remaining();
                write(src, pos);
                pos += n;
            }
            return;
        }
        long total = 0;
        for (ByteBuffer src : srcs) {
            total += src.remaining();
        }
        if (allocateBeforeWrites && total > 0 && !allocate(position, total)) {
            allocateBeforeWrites = false;
        }
        if (position + total > allocatedEnd && allocatedEnd >= 0) {
            growAllocation(position + total);
        }
        WriteObserver o = observer;
        if (o != null) {
            long pos = position;
            for (ByteBuffer src : srcs) {
                o.written(pos, src.asReadOnlyBuffer());
                pos += src.remaining();
            }
        }
        transferv(srcs, position, false);
    }

    /** Whether {@code bufs} can go to the kernel as they are, in one vectored call. */
    private boolean vectored(ByteBuffer[] bufs, long position) {
        if (fd < 0 || bufs.length < 2) {
            return false;
        }
        long pos = position;
        for (ByteBuffer b : bufs) {
            if (!b.isDirect() || (direct && !isAligned(b, pos))) {
                return false;
            }
            pos += b.remaining();
        }
        return true;
    }

    /** A thread's iovec array for {@link #transferv}, and its address. */
    private static final class Iovecs {
        final ByteBuffer entries = ByteBuffer.allocateDirect(IOV_MAX * IOVEC_SIZE).order(ByteOrder.nativeOrder());
        final long address = Pointer.nativeValue(Native.getDirectBufferPointer(entries));
    }

    private static final ThreadLocal<Iovecs> IOVECS = ThreadLocal.withInitial(Iovecs::new);

    /** {@code preadv}/{@code pwritev} calls made (for tests; not synchronized). */
    private long vectoredCalls;

    long vectoredCallsForTest() {
        return vectoredCalls;
    }

    /** {@code preadv}/{@code pwritev} until every buffer is done (a read past the end of the file fills zeros). */
    private void transferv(ByteBuffer[] bufs, long position, boolean read) throws IOException {
        Iovecs iov = IOVECS.get();
        long pos = position;
        int first = 0;
        while (true) {
            while (first < bufs.length && !bufs[first].hasRemaining()) {
                first++;
            }
            if (first == bufs.length) {
                return;
            }
            int count = Math.min(IOV_MAX, bufs.length - first);
            for (int i = 0; i < count; i++) {
                ByteBuffer b = bufs[first + i];
                long base = Pointer.nativeValue(Native.getDirectBufferPointer(b)) + b.position();
                iov.entries.putLong(i * IOVEC_SIZE, base);
                iov.entries.putLong(i * IOVEC_SIZE + 8, b.remaining());
            }
            long n = NativeFiles.transferv(read, fd, iov.address, count, pos);
            vectoredCalls++;
            if (n == 0) {
                if (!read) {
                    throw new IOException("pwritev wrote nothing: path=" + path + ", offset=" + pos);
                }
                for (int i = first; i < bufs.length; i++) {
                    Zeros.fill(bufs[i]);
                }
                return;
            }
            pos += n;
            while (n > 0) {
                ByteBuffer b = bufs[first];
                int k = (int) Math.min(n, b.remaining());
                b.position(b.position() + k);
                n -= k;
                if (!b.hasRemaining()) {
                    first++;
                }
            }
        }
    }

    /** Writes all of {@code src} at {@code position}. Any buffer; unaligned IO on a direct file is bounced. */
    public void write(ByteBuffer src, long position) throws IOException {
        if (direct && !isAligned(src, position)) {
            bouncedWrite(src, position);
            return;
        }
        if (allocateBeforeWrites && src.hasRemaining() && !allocate(position, src.remaining())) {
            allocateBeforeWrites = false;
        }
        if (position + src.remaining() > allocatedEnd && allocatedEnd >= 0) {
            growAllocation(position + src.remaining());
        }
        WriteObserver o = observer;
        if (o != null) {
            o.written(position, src.asReadOnlyBuffer());
        }
        long pos = position;
        while (src.hasRemaining()) {
            pos += channel.write(src, pos);
        }
    }

    /**
     * With {@code true}, {@link #write} first allocates the range it is about to write ({@code fallocate} mode 0):
     * for a writer that writes each range once and in large pieces, such as a conversion's target. The file system
     * then finds the written blocks allocated instead of reserving each block for delayed allocation on every write,
     * which on ext4 costs more than copying the data into the page cache. Writes never need it; where the file
     * system, device or binding cannot allocate, it switches itself off after the first attempt.
     */
    public void allocateBeforeWrites(boolean value) {
        allocateBeforeWrites = value;
    }

    /**
     * For a file that grows at its end and whose every byte below the end gets written (a new qcow2 image during a
     * conversion: clusters are allocated in ascending order, and metadata clusters among them are written at the next
     * flush): a write past the allocated end first allocates the file, without changing its size
     * ({@code FALLOC_FL_KEEP_SIZE}), from there to {@code step} bytes past the write. One allocation per step keeps
     * the file contiguous on disk, which allocating each write separately does not (the file system places metadata
     * clusters written later elsewhere). {@link #close()} gives back what lies allocated past the end of the file.
     * Switches itself off where the file system cannot allocate. Allocation starts at the end of the file rounded up
     * to {@code alignment} (a qcow2 cluster: a new image's file ends inside its L1 table's cluster, whose unused rest
     * stays a hole as it never gets written).
     */
    public void allocateAheadOfEnd(long step, long alignment) throws IOException {
        if (step <= 0 || fd < 0 || blockDevice) {
            return;
        }
        if (alignment <= 0) {
            throw new IllegalArgumentException("allocateAheadOfEnd: alignment=" + alignment);
        }
        synchronized (this) {
            growthStep = step;
            long size = channel.size();
            allocatedEnd = Math.max(allocatedEnd, (size + alignment - 1) / alignment * alignment);
        }
    }

    private synchronized void growAllocation(long end) throws IOException {
        long from = allocatedEnd;
        if (from < 0 || end <= from) {
            return;
        }
        long to = (end + growthStep - 1) / growthStep * growthStep;
        try {
            NativeFiles.fallocate(fd, LibC.FALLOC_FL_KEEP_SIZE, from, to - from);
            allocatedEnd = to;
        } catch (NativeFiles.ErrnoException e) {
            if (!e.isUnsupported()) {
                throw e;
            }
            allocatedEnd = -1;
        }
    }

    /** Frees what {@link #allocateAheadOfEnd} allocated past the end of the file. */
    private void trimAllocation() throws IOException {
        long end = allocatedEnd;
        allocatedEnd = -1;
        if (end >= 0 && writable && end > channel.size()) {
            NativeFiles.ftruncate(fd, channel.size());
        }
    }

    private boolean isAligned(ByteBuffer buf, long position) {
        return buf.isDirect() && position % alignment == 0 && buf.remaining() % alignment == 0
                && buf.alignmentOffset(buf.position(), alignment) == 0;
    }

    private ByteBuffer bounce(long start, long end) {
        int len = Math.toIntExact(end - start);
        return ByteBuffer.allocateDirect(len + alignment).alignedSlice(alignment).limit(len);
    }

    private void bouncedRead(ByteBuffer dst, long position) throws IOException {
        long start = Math.floorDiv(position, alignment) * alignment;
        long end = roundUp(position + dst.remaining(), alignment);
        ByteBuffer tmp = bounce(start, end);
        read(tmp, start);
        tmp.position((int) (position - start)).limit((int) (position - start) + dst.remaining());
        dst.put(tmp);
    }

    private void bouncedWrite(ByteBuffer src, long position) throws IOException {
        long start = Math.floorDiv(position, alignment) * alignment;
        long end = roundUp(position + src.remaining(), alignment);
        ByteBuffer tmp = bounce(start, end);
        if (start != position || end != position + src.remaining()) {
            read(tmp, start);
            tmp.clear().limit((int) (end - start));
        }
        tmp.position((int) (position - start));
        tmp.put(src);
        tmp.clear().limit((int) (end - start));
        write(tmp, start);
    }

    private static long roundUp(long value, long unit) {
        return Math.floorDiv(value + unit - 1, unit) * unit;
    }

    /**
     * With {@code true}, {@link #sync()} does nothing until called with {@code false} again: for a file whose
     * contents only matter once it is complete (a conversion's new target, QEMU's {@code cache=unsafe}), the
     * ordering syncs of a metadata update cost a writeback of everything written so far and buy nothing.
     */
    public void deferSyncs(boolean value) {
        syncsDeferred = value;
    }

    /**
     * {@code fdatasync}: data and the metadata needed to find it are durable on return (a no-op while syncs are
     * {@linkplain #deferSyncs deferred}).
     */
    public void sync() throws IOException {
        if (syncsDeferred) {
            return;
        }
        channel.force(false);
        WriteObserver o = observer;
        if (o != null) {
            o.synced();
        }
    }

    /**
     * Deallocates the range, keeping the size ({@code FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE}); it then reads
     * as zeros. Returns false, changing nothing, when the file system, device or binding cannot.
     */
    public boolean punchHole(long offset, long length) throws IOException {
        return fallocate(LibC.FALLOC_FL_PUNCH_HOLE | LibC.FALLOC_FL_KEEP_SIZE, offset, length, true);
    }

    /** Zeroes the range without writing data ({@code FALLOC_FL_ZERO_RANGE}); false when unsupported. */
    public boolean zeroRange(long offset, long length) throws IOException {
        return fallocate(LibC.FALLOC_FL_ZERO_RANGE | LibC.FALLOC_FL_KEEP_SIZE, offset, length, true);
    }

    /**
     * Makes the range read as zeros and allocated within the file's size, growing the file if needed:
     * {@code FALLOC_FL_ZERO_RANGE} without {@code KEEP_SIZE}, else by writing zeros.
     */
    public void zeroFill(long offset, long length) throws IOException {
        if (length == 0 || fallocate(LibC.FALLOC_FL_ZERO_RANGE, offset, length, false)) {
            return;
        }
        int chunk = (int) Math.min(length, 1 << 20);
        ByteBuffer zeros = direct ? ByteBuffer.allocateDirect(chunk + alignment).alignedSlice(alignment)
                : ByteBuffer.allocate(chunk);
        for (long done = 0; done < length; ) {
            zeros.clear().limit((int) Math.min(chunk, length - done));
            int n = zeros.remaining();
            write(zeros, offset + done);
            done += n;
        }
    }

    /** Allocates the range ({@code fallocate} mode 0), growing the file; false when unsupported. */
    public boolean allocate(long offset, long length) throws IOException {
        if (fd < 0 || length == 0) {
            return length == 0;
        }
        // Mode 0 changes no contents; an observer sees it as zeros past the old end of file only.
        long end = size();
        WriteObserver o = observer;
        if (o != null && offset + length > end) {
            o.zeroed(Math.max(offset, end), offset + length - Math.max(offset, end), false);
        }
        try {
            NativeFiles.fallocate(fd, 0, offset, length);
            return true;
        } catch (NativeFiles.ErrnoException e) {
            if (e.isUnsupported()) {
                return false;
            }
            throw e;
        }
    }

    private boolean fallocate(int mode, long offset, long length, boolean keepSize) throws IOException {
        if (fd < 0 || length == 0) {
            return length == 0;
        }
        try {
            NativeFiles.fallocate(fd, mode, offset, length);
            WriteObserver o = observer;
            if (o != null) {
                o.zeroed(offset, length, keepSize);
            }
            return true;
        } catch (NativeFiles.ErrnoException e) {
            if (e.isUnsupported()) {
                return false;
            }
            throw e;
        }
    }

    /** Whether {@link #nextData}/{@link #nextHole} work. */
    public boolean canSeekData() {
        return fd >= 0 && !blockDevice;
    }

    /** {@code lseek(SEEK_DATA)}: the first data offset at or after {@code offset}, or -1 when there is none. */
    public long nextData(long offset) throws IOException {
        return NativeFiles.lseek(fd(), offset, LibC.SEEK_DATA);
    }

    /** {@code lseek(SEEK_HOLE)}: the first hole at or after {@code offset} (the end of file counts), or -1. */
    public long nextHole(long offset) throws IOException {
        return NativeFiles.lseek(fd(), offset, LibC.SEEK_HOLE);
    }

    @Override
    public void close() throws IOException {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        try {
            trimAllocation();
        } finally {
            closeChannels();
        }
    }

    private void closeChannels() throws IOException {
        try {
            channel.close();
        } finally {
            if (fd >= 0) {
                NativeFiles.close(fd);
            }
        }
    }

    @Override
    public String toString() {
        return "HostFile[" + path + (direct ? ", direct" : "") + "]";
    }
}
