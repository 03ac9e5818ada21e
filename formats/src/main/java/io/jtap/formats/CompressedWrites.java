package io.jtap.formats;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Optional;

/**
 * An image that can store whole compressed units (qcow2: clusters, with the image's compression type); optional,
 * so {@link Image} stays small. For {@code convert -c}: tools test {@code image instanceof CompressedWrites}.
 *
 * <p>Compression is split from storing so that a converter can compress many units in parallel ({@link #compress}
 * is thread-safe and takes no lock) ahead of an ordered write stage ({@link #writeCompressed(long, ByteBuffer)}
 * or {@link #writeCompressedData}).
 */
public interface CompressedWrites {

    /** The unit in bytes (qcow2: the cluster size); offsets passed here are multiples of it. */
    int compressionUnit();

    /**
     * Compresses one unit ({@code unit.remaining()} bytes: the unit size, or less for the last unit of the disk,
     * which is padded with zeros). Empty when compression does not make it smaller; the caller then writes the
     * unit with {@link Image#write}. Thread-safe; reads {@code unit} without moving its position.
     */
    Optional<ByteBuffer> compress(ByteBuffer unit) throws IOException;

    /**
     * Stores what {@link #compress} returned as the contents of the unit at {@code offset}, replacing what was
     * there. Not durable until {@link Image#flush()}.
     */
    void writeCompressedData(long offset, ByteBuffer compressed) throws IOException;

    /** Compresses and stores one unit, or writes it uncompressed when compression does not help. */
    default void writeCompressed(long offset, ByteBuffer unit) throws IOException {
        Optional<ByteBuffer> c = compress(unit);
        if (c.isPresent()) {
            writeCompressedData(offset, c.get());
        } else {
            ((Image) this).write(offset, unit.duplicate());
        }
    }
}
