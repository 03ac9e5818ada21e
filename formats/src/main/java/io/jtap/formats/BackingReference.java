package io.jtap.formats;

import java.nio.file.Path;
import java.util.Objects;
import java.util.Optional;

/**
 * A backing file as recorded in an image header.
 *
 * @param name   the file name as written (relative names are relative to the overlay's directory)
 * @param format the recorded format name, if the image records one (qcow2's backing format extension)
 */
public record BackingReference(String name, Optional<String> format) {

    public BackingReference {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(format, "format");
    }

    /** Where the backing file is, for an overlay at {@code overlay}. */
    public Path resolveAgainst(Path overlay) {
        Path p = Path.of(name);
        if (p.isAbsolute()) {
            return p;
        }
        Path dir = overlay.toAbsolutePath().getParent();
        return dir == null ? p : dir.resolve(p);
    }
}
