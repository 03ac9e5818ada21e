package io.jtap.formats.tool;

import io.jtap.formats.Image;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Optional;

/**
 * The seam for {@code convert -c}: writes data as compressed clusters. The qcow2 compressed-cluster writer is being
 * built in the format layer; until it is on main, {@link #forImage} finds none and {@code -c} reports that
 * compression is not supported yet. Wiring it is one branch in {@link #forImage}.
 */
public interface CompressedClusterWriter {

    /**
     * Writes {@code data} (whole clusters, cluster-aligned at {@code offset}, except a short last cluster at the end
     * of the disk) compressed into {@code image}. Called from the ordered write stage.
     */
    void write(Image image, long offset, ByteBuffer data) throws IOException;

    /** The compressed writer for this image's format, if the format layer provides one. */
    static Optional<CompressedClusterWriter> forImage(Image image) {
        return Optional.empty();
    }
}
