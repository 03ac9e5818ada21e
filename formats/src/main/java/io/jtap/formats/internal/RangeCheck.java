package io.jtap.formats.internal;

import java.nio.file.AccessDeniedException;

/** The argument checks every {@link io.jtap.formats.Image} makes, with messages in the house style. */
public final class RangeCheck {
    private RangeCheck() {
    }

    /** {@code [offset, offset+length)} lies in {@code [0, size)} and both are multiples of {@code alignment}. */
    public static void check(String what, long offset, long length, long size, int alignment) {
        if (offset < 0 || length < 0 || offset > size || length > size - offset) {
            throw new IllegalArgumentException(what + " outside the image: offset=" + offset + ", length=" + length
                    + ", size=" + size);
        }
        if (offset % alignment != 0 || length % alignment != 0) {
            throw new IllegalArgumentException(what + " not aligned: offset=" + offset + ", length=" + length
                    + ", alignment=" + alignment);
        }
    }

    /** Throws {@link AccessDeniedException} when {@code readOnly}. */
    public static void checkWritable(boolean readOnly, Object image) throws AccessDeniedException {
        if (readOnly) {
            throw new AccessDeniedException(String.valueOf(image), null, "image is open read-only");
        }
    }
}
