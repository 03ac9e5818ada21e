package io.jtap.formats.raw;

import io.jtap.formats.BackingReference;
import io.jtap.formats.BlockStatus;
import io.jtap.formats.Extent;
import io.jtap.formats.HostFile;
import io.jtap.formats.Image;
import io.jtap.formats.WriteMapping;
import io.jtap.formats.internal.RangeCheck;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * An open raw image: guest offset = host offset. Every range maps to one DATA extent; writes need no second phase.
 * Holes are reported by {@code lseek(SEEK_DATA/SEEK_HOLE)}; discard punches holes, zeroing punches or uses
 * {@code FALLOC_FL_ZERO_RANGE} before falling back to writing zeros.
 */
public final class RawImage implements Image {
    /** Chunk for writing zeros when the file system cannot punch. */
    private static final int ZERO_CHUNK = 1 << 20;

    private final HostFile file;
    private final boolean readOnly;
    private volatile long size;
    private final AtomicBoolean closed = new AtomicBoolean();

    RawImage(HostFile file, boolean readOnly) throws IOException {
        this.file = file;
        this.readOnly = readOnly;
        this.size = file.size();
    }

    /** The host file, borrowed. */
    public HostFile file() {
        return file;
    }

    @Override
    public String formatName() {
        return "raw";
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public int alignment() {
        return file.alignment();
    }

    @Override
    public boolean isReadOnly() {
        return readOnly;
    }

    @Override
    public void read(long offset, ByteBuffer dst) throws IOException {
        RangeCheck.check("read", offset, dst.remaining(), size, alignment());
        file.read(dst, offset);
    }

    @Override
    public void write(long offset, ByteBuffer src) throws IOException {
        RangeCheck.checkWritable(readOnly, this);
        RangeCheck.check("write", offset, src.remaining(), size, alignment());
        file.write(src, offset);
    }

    @Override
    public void disableSyncs() {
        if (!readOnly) {
            file.deferSyncs(true);
        }
    }

    @Override
    public void allocateBeforeWrites() {
        if (!readOnly) {
            file.allocateBeforeWrites(true);
        }
    }

    @Override
    public void flush() throws IOException {
        if (!readOnly) {
            file.sync();
        }
    }

    /** Punches a hole; a no-op where the file system or device cannot. */
    @Override
    public void discard(long offset, long length) throws IOException {
        RangeCheck.checkWritable(readOnly, this);
        RangeCheck.check("discard", offset, length, size, 1);
        file.punchHole(offset, length);
    }

    @Override
    public void writeZeroes(long offset, long length) throws IOException {
        RangeCheck.checkWritable(readOnly, this);
        RangeCheck.check("writeZeroes", offset, length, size, 1);
        if (length == 0 || file.punchHole(offset, length) || file.zeroRange(offset, length)) {
            return;
        }
        ByteBuffer zeros = ByteBuffer.allocateDirect((int) Math.min(ZERO_CHUNK, length));
        for (long done = 0; done < length; ) {
            zeros.clear().limit((int) Math.min(zeros.capacity(), length - done));
            int n = zeros.remaining();
            file.write(zeros, offset + done);
            done += n;
        }
    }

    @Override
    public BlockStatus blockStatus(long offset, long length) throws IOException {
        RangeCheck.check("blockStatus", offset, length, size, 1);
        if (length == 0 || offset >= size) {
            throw new IllegalArgumentException("blockStatus of an empty range: offset=" + offset + ", length="
                    + length + ", size=" + size);
        }
        if (!file.canSeekData()) {
            return new BlockStatus(BlockStatus.Kind.DATA, length);
        }
        long end = offset + length;
        long data = file.nextData(offset);
        if (data < 0 || data >= end) {
            return new BlockStatus(BlockStatus.Kind.ZERO, length);
        }
        if (data > offset) {
            return new BlockStatus(BlockStatus.Kind.ZERO, data - offset);
        }
        long hole = file.nextHole(offset);
        long dataEnd = hole < 0 ? end : Math.min(hole, end);
        return new BlockStatus(BlockStatus.Kind.DATA, Math.max(dataEnd - offset, 1));
    }

    @Override
    public void resize(long newSize) throws IOException {
        RangeCheck.checkWritable(readOnly, this);
        if (file.isBlockDevice()) {
            throw new IOException("cannot resize a raw block device: path=" + file.path() + ", size=" + size
                    + ", newSize=" + newSize);
        }
        if (newSize < 0 || newSize % alignment() != 0) {
            throw new IllegalArgumentException("bad size: newSize=" + newSize + ", alignment=" + alignment());
        }
        try (RandomAccessFile f = new RandomAccessFile(file.path().toFile(), "rw")) {
            f.setLength(newSize);
        }
        size = newSize;
    }

    @Override
    public Optional<BackingReference> backing() {
        return Optional.empty();
    }

    @Override
    public Optional<Image> backingImage() {
        return Optional.empty();
    }

    @Override
    public List<Extent> mapForRead(long offset, long length) throws IOException {
        RangeCheck.check("mapForRead", offset, length, size, alignment());
        return length == 0 ? List.of() : List.of(Extent.data(offset, length, file, offset));
    }

    @Override
    public WriteMapping mapForWriteNow(long offset, long length) throws IOException {
        // Raw maps by arithmetic and reserves nothing: its mapping never waits.
        return mapForWrite(offset, length);
    }

    @Override
    public WriteMapping mapForWrite(long offset, long length) throws IOException {
        RangeCheck.checkWritable(readOnly, this);
        RangeCheck.check("mapForWrite", offset, length, size, alignment());
        List<Extent> extents = length == 0 ? List.of() : List.of(Extent.data(offset, length, file, offset));
        return new WriteMapping() {
            @Override
            public List<Extent> extents() {
                return extents;
            }

            @Override
            public void complete() {
                // raw writes in place: nothing to link
            }

            @Override
            public void abort() {
                // nothing was reserved
            }

            @Override
            public void close() {
                // nothing was reserved
            }
        };
    }

    @Override
    public void close() throws IOException {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        try {
            flush();
        } finally {
            file.close();
        }
    }

    @Override
    public String toString() {
        return "RawImage[" + file.path() + "]";
    }
}
