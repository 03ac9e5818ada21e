package io.jtap.blkback;

import io.jtap.formats.Extent;
import io.jtap.formats.Image;
import io.jtap.formats.WriteMapping;
import io.jtap.formats.internal.Zeros;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * Moves a request's data between its buffers (guest pages mapped into this process, or a bounce buffer) and an
 * image, through the image's extent map: DATA extents are read and written by the backend itself with positional
 * IO straight into and out of the buffers (no copy; one vectored call per extent), ZERO extents are filled, BACKING
 * extents are resolved in the backing image the same way, and TRANSFORMED extents go through
 * {@link Image#read}/{@link Image#write}. Writes use the two-phase {@link Image#mapForWrite}: data IO, then
 * {@link WriteMapping#complete()}.
 *
 * <p>Blocking: runs on the worker pool, never on a ring thread. Stateless.
 */
final class ImageIo {
    private ImageIo() {
    }

    /** Reads {@code sum(pieces.remaining())} bytes at {@code offset} into the pieces, in order. */
    static void read(Image image, long offset, ByteBuffer[] pieces) throws IOException {
        long length = total(pieces);
        if (length == 0) {
            return;
        }
        Cursor cursor = new Cursor(pieces);
        for (Extent e : image.mapForRead(offset, length)) {
            if (e.kind() == Extent.Kind.DATA) {
                // One vectored read for the extent, however many pieces it spans.
                e.file().read(cursor.take(e.length()), e.hostOffset());
                continue;
            }
            long done = 0;
            while (done < e.length()) {
                ByteBuffer chunk = cursor.next(e.length() - done);
                int n = chunk.remaining();
                switch (e.kind()) {
                    case DATA -> e.file().read(chunk, e.hostOffset() + done);
                    case ZERO -> Zeros.fill(chunk);
                    case BACKING -> read(image.backingImage().orElseThrow(() -> new IOException(
                            "BACKING extent without an open backing image: offset=" + e.offset())),
                            e.offset() + done, new ByteBuffer[] {chunk});
                    case TRANSFORMED -> image.read(e.offset() + done, chunk);
                    default -> throw new IOException("unexpected extent kind: kind=" + e.kind());
                }
                done += n;
            }
        }
    }

    /** Writes {@code sum(pieces.remaining())} bytes at {@code offset} from the pieces, in order. */
    static void write(Image image, long offset, ByteBuffer[] pieces) throws IOException {
        long length = total(pieces);
        if (length == 0) {
            return;
        }
        writeMapped(image, image.mapForWrite(offset, length), pieces);
    }

    /**
     * Phase two of a write whose phase one ({@link Image#mapForWrite}) is done: the data IO into the mapping's
     * extents, then {@link WriteMapping#complete()}; on failure {@link WriteMapping#abort()}.
     */
    static void writeMapped(Image image, WriteMapping mapping, ByteBuffer[] pieces) throws IOException {
        Cursor cursor = new Cursor(pieces);
        try {
            List<Extent> extents = mapping.extents();
            for (Extent e : extents) {
                if (e.kind() == Extent.Kind.DATA) {
                    e.file().write(cursor.take(e.length()), e.hostOffset());
                    continue;
                }
                long done = 0;
                while (done < e.length()) {
                    ByteBuffer chunk = cursor.next(e.length() - done);
                    int n = chunk.remaining();
                    switch (e.kind()) {
                        case DATA -> e.file().write(chunk, e.hostOffset() + done);
                        case TRANSFORMED -> image.write(e.offset() + done, chunk);
                        default -> throw new IOException("unexpected write extent kind: kind=" + e.kind());
                    }
                    done += n;
                }
            }
            mapping.complete();
        } catch (IOException | RuntimeException ex) {
            try {
                mapping.abort();
            } catch (IOException | RuntimeException suppressed) {
                ex.addSuppressed(suppressed);
            }
            throw ex;
        }
    }

    static long total(ByteBuffer[] pieces) {
        long n = 0;
        for (ByteBuffer b : pieces) {
            n += b.remaining();
        }
        return n;
    }

    /** Walks the pieces, handing out slices of at most a given length. */
    private static final class Cursor {
        private final ByteBuffer[] pieces;
        private int index;
        private int position;

        Cursor(ByteBuffer[] pieces) {
            this.pieces = pieces;
        }

        /** Slices covering the next {@code length} bytes, in order. */
        ByteBuffer[] take(long length) {
            List<ByteBuffer> out = new ArrayList<>();
            for (long left = length; left > 0; ) {
                ByteBuffer b = next(left);
                out.add(b);
                left -= b.remaining();
            }
            return out.toArray(new ByteBuffer[0]);
        }

        ByteBuffer next(long max) {
            while (pieces[index].position() + position >= pieces[index].limit()) {
                index++;
                position = 0;
            }
            ByteBuffer p = pieces[index];
            int start = p.position() + position;
            int n = (int) Math.min(max, p.limit() - start);
            position += n;
            return p.slice(start, n);
        }
    }
}
