package io.jtap.formats;

import java.util.Objects;

/**
 * One piece of a mapped guest range: {@code length} bytes from guest {@code offset}.
 *
 * @param kind       how to move the bytes
 * @param offset     guest offset in bytes
 * @param length     length in bytes, positive
 * @param file       the host file for {@link Kind#DATA}, else {@code null}; borrowed from the image
 * @param hostOffset the byte offset in {@code file} for {@link Kind#DATA}, else -1
 */
public record Extent(Kind kind, long offset, long length, HostFile file, long hostOffset) {

    /** How the caller moves an extent's bytes. */
    public enum Kind {
        /** Plain data at {@code hostOffset} in {@code file}: the caller may do the IO itself. */
        DATA,
        /** Reads as zeros (reads only). */
        ZERO,
        /** Not in this layer: read the same guest range from {@link Image#backingImage()} (reads only). */
        BACKING,
        /** Stored transformed (compressed, encrypted): go through {@link Image#read}/{@link Image#write}. */
        TRANSFORMED
    }

    public Extent {
        Objects.requireNonNull(kind, "kind");
        if (length <= 0 || offset < 0) {
            throw new IllegalArgumentException("bad extent: offset=" + offset + ", length=" + length);
        }
        if ((kind == Kind.DATA) != (file != null) || (kind == Kind.DATA) != (hostOffset >= 0)) {
            throw new IllegalArgumentException("file and hostOffset are for DATA extents only: kind=" + kind
                    + ", hostOffset=" + hostOffset);
        }
    }

    public static Extent data(long offset, long length, HostFile file, long hostOffset) {
        return new Extent(Kind.DATA, offset, length, file, hostOffset);
    }

    public static Extent zero(long offset, long length) {
        return new Extent(Kind.ZERO, offset, length, null, -1);
    }

    public static Extent backing(long offset, long length) {
        return new Extent(Kind.BACKING, offset, length, null, -1);
    }

    public static Extent transformed(long offset, long length) {
        return new Extent(Kind.TRANSFORMED, offset, length, null, -1);
    }

    /** The guest offset just past this extent. */
    public long end() {
        return offset + length;
    }

    /**
     * This extent extended by {@code next} when they are adjacent, of one kind and (for DATA) contiguous in the
     * same host file; else {@code null}.
     */
    public Extent mergeWith(Extent next) {
        if (next.kind != kind || next.offset != end()) {
            return null;
        }
        if (kind == Kind.DATA && (next.file != file || next.hostOffset != hostOffset + length)) {
            return null;
        }
        return new Extent(kind, offset, length + next.length, file, hostOffset);
    }
}
