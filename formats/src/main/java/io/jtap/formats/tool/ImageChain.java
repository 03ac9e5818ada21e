package io.jtap.formats.tool;

import io.jtap.formats.BackingReference;
import io.jtap.formats.BlockStatus;
import io.jtap.formats.Image;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * An open image and its backing layers, each with the file name qemu-img would print for it, and block status
 * resolved through the whole chain (QEMU: {@code bdrv_block_status_above}). Borrows the image: closing the chain
 * closes nothing.
 */
public final class ImageChain {
    /** One layer: depth 0 is the top image. */
    public record Layer(Image image, String filename, int depth) {
    }

    /**
     * The state of a run of bytes through the chain.
     *
     * @param length  bytes from the queried offset with this state, positive
     * @param present allocated (data or zero) in some layer; false when every layer leaves it unallocated
     * @param data    reads data (not known to be zeros)
     * @param depth   the layer that decided it (the bottom layer when none did)
     * @param layer   that layer
     */
    public record Status(long length, boolean present, boolean data, int depth, Layer layer) {
        public boolean zero() {
            return !data;
        }
    }

    private final List<Layer> layers;

    private ImageChain(List<Layer> layers) {
        this.layers = List.copyOf(layers);
    }

    /** The chain below {@code top}, which was opened from {@code filename} (as the user typed it). */
    public static ImageChain of(Image top, String filename) {
        List<Layer> layers = new ArrayList<>();
        Image image = top;
        String name = filename;
        for (int depth = 0; image != null; depth++) {
            layers.add(new Layer(image, name, depth));
            Optional<BackingReference> ref = image.backing();
            name = ref.isPresent() ? backingDisplayName(name, ref.get().name()) : null;
            image = image.backingImage().orElse(null);
        }
        return new ImageChain(layers);
    }

    /** qemu's {@code bdrv_get_full_backing_filename} for display: the backing name relative to the overlay's dir. */
    static String backingDisplayName(String overlay, String backing) {
        if (backing.startsWith("/")) {
            return backing;
        }
        int slash = overlay.lastIndexOf('/');
        return slash < 0 ? backing : overlay.substring(0, slash + 1) + backing;
    }

    public List<Layer> layers() {
        return layers;
    }

    public Layer top() {
        return layers.get(0);
    }

    /**
     * The state at {@code offset} for at most {@code length} bytes, looking through unallocated ranges into the
     * backing layers. {@code 0 <= offset < size}, {@code length > 0}.
     */
    public Status status(long offset, long length) throws IOException {
        long len = Math.min(length, top().image().size() - offset);
        for (Layer layer : layers) {
            Image image = layer.image();
            if (offset >= image.size()) {
                // Beyond a shorter backing image: zeros, decided by the layer above.
                return new Status(len, false, false, layer.depth(), layer);
            }
            len = Math.min(len, image.size() - offset);
            BlockStatus bs = image.blockStatus(offset, len);
            len = Math.min(len, bs.length());
            switch (bs.kind()) {
                case DATA -> {
                    return new Status(len, true, true, layer.depth(), layer);
                }
                case ZERO -> {
                    return new Status(len, true, false, layer.depth(), layer);
                }
                case UNALLOCATED -> {
                    if (image.backingImage().isEmpty()) {
                        return new Status(len, false, false, layer.depth(), layer);
                    }
                }
            }
        }
        throw new IllegalStateException("unreachable: chain without a bottom layer");
    }
}
