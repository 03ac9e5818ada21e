package io.jtap.formats;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.ServiceLoader;

/** A registry of format plugins by name. Immutable and thread-safe. */
public final class ImageFormats {
    /** How much of a file {@link #probe(Path)} reads. */
    private static final int PROBE_BYTES = 4096;

    private final Map<String, ImageFormat> byName;

    private ImageFormats(Map<String, ImageFormat> byName) {
        this.byName = byName;
    }

    /** A registry holding exactly these formats. */
    public static ImageFormats of(List<ImageFormat> formats) {
        Map<String, ImageFormat> m = new LinkedHashMap<>();
        for (ImageFormat f : formats) {
            if (m.put(f.name(), f) != null) {
                throw new IllegalArgumentException("format registered twice: name=" + f.name());
            }
        }
        return new ImageFormats(m);
    }

    /**
     * The formats registered as {@link ServiceLoader} providers of {@link ImageFormat} on the class path (this
     * module provides raw and qcow2), in class path order.
     */
    public static ImageFormats defaults() {
        return Defaults.INSTANCE;
    }

    private static final class Defaults {
        static final ImageFormats INSTANCE = of(ServiceLoader
                .load(ImageFormat.class, ImageFormats.class.getClassLoader())
                .stream().map(ServiceLoader.Provider::get).toList());
    }

    public Optional<ImageFormat> find(String name) {
        return Optional.ofNullable(byName.get(name));
    }

    /** The format called {@code name}, or an {@link IOException} naming the known ones. */
    public ImageFormat get(String name) throws IOException {
        ImageFormat f = byName.get(name);
        if (f == null) {
            throw new IOException("unknown image format: name=" + name + ", known=" + byName.keySet());
        }
        return f;
    }

    public List<String> names() {
        return List.copyOf(byName.keySet());
    }

    /**
     * The most likely format of the file at {@code path}, by {@link ImageFormat#probe}; raw when nothing claims it.
     * For tools only (see {@link ImageFormat#probe}).
     */
    public ImageFormat probe(Path path) throws IOException {
        ByteBuffer header = ByteBuffer.allocate(PROBE_BYTES);
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            while (header.hasRemaining() && ch.read(header) > 0) {
                // keep reading until the buffer is full or the file ends
            }
        }
        header.flip();
        ImageFormat best = null;
        int bestScore = 0;
        for (ImageFormat f : byName.values()) {
            int score = f.probe(header.duplicate());
            if (score > bestScore) {
                best = f;
                bestScore = score;
            }
        }
        return best != null ? best : get("raw");
    }
}
