package io.jtap.formats;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;

/**
 * A format plugin: stateless, thread-safe, registered in {@link ImageFormats} under {@link #name()}.
 */
public interface ImageFormat {

    /** The registry name, as qemu-img spells it: {@code "raw"}, {@code "qcow2"}. */
    String name();

    /**
     * How sure this format is that {@code header} (the first bytes of a file, at least 512 when the file has them;
     * position to limit) is one of its images: 0 = no, 100 = magic matched. For tools only: a backend opens the
     * format it was configured with, because probing a guest-writable raw image is a security hole (a guest can
     * write a qcow2 header into it).
     */
    int probe(ByteBuffer header);

    /** Opens an existing image. The caller owns the result. */
    Image open(Path path, OpenOptions options) throws IOException;

    /**
     * Creates an image (a new file, or over an existing block device for raw). Fails if a regular file exists at
     * {@code path}. Does not open it.
     */
    void create(Path path, CreateOptions options) throws IOException;
}
