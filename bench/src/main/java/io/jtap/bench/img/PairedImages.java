package io.jtap.bench.img;

import io.jtap.formats.Image;
import io.jtap.formats.ImageFormat;
import io.jtap.formats.ImageFormats;
import io.jtap.formats.OpenOptions;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The raw and qcow2 images holding the same data that a read benchmark compares: kept in
 * {@code ${jtap.bench.dir:-/var/tmp}} under a benchmark's name, written once (again when missing or of another size),
 * and opened read-only with every byte read through first, so that the timed reads hit the page cache.
 */
final class PairedImages {
    /** Writes the same data into both new images. */
    @FunctionalInterface
    interface Writer {
        void create(ImageFormat rawFormat, Path raw, ImageFormat qcow2Format, Path qcow2) throws IOException;
    }

    private PairedImages() {
    }

    /** Opens {@code jtap-bench-<name>-<format>} ({@code format}: raw or qcow2), read through. */
    static Image openWarm(String name, long size, String format, Writer writer) throws IOException {
        Path dir = Path.of(System.getProperty("jtap.bench.dir", "/var/tmp"));
        Path raw = dir.resolve("jtap-bench-" + name + "-raw");
        Path qcow2 = dir.resolve("jtap-bench-" + name + "-qcow2");
        ImageFormats formats = ImageFormats.defaults();
        if (!Files.exists(raw) || !Files.exists(qcow2) || Files.size(raw) != size) {
            Files.deleteIfExists(raw);
            Files.deleteIfExists(qcow2);
            writer.create(formats.get("raw"), raw, formats.get("qcow2"), qcow2);
        }
        Image image = formats.get(format).open(format.equals("raw") ? raw : qcow2,
                OpenOptions.defaults().withReadOnly(true));
        ByteBuffer buf = ByteBuffer.allocateDirect(1 << 20);
        for (long off = 0; off < size; off += buf.capacity()) {
            image.read(off, buf.clear().limit((int) Math.min(buf.capacity(), size - off)));
        }
        return image;
    }
}
