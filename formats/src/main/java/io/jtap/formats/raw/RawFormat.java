package io.jtap.formats.raw;

import io.jtap.formats.CreateOptions;
import io.jtap.formats.HostFile;
import io.jtap.formats.Image;
import io.jtap.formats.ImageFormat;
import io.jtap.formats.OpenOptions;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The raw format: the virtual disk is the file (or block device) byte for byte. Sparse regular files keep holes;
 * {@code O_DIRECT} is available through {@link OpenOptions#direct()}.
 */
public final class RawFormat implements ImageFormat {
    /** Chunk for {@code preallocation=full}. */
    private static final int ZERO_CHUNK = 1 << 20;

    @Override
    public String name() {
        return "raw";
    }

    /** Raw claims anything, weakly: it is the fallback when no format recognises the header. */
    @Override
    public int probe(ByteBuffer header) {
        return 1;
    }

    @Override
    public Image open(Path path, OpenOptions options) throws IOException {
        if (options.snapshot().isPresent()) {
            throw new IOException("raw images have no snapshots: path=" + path + ", snapshot="
                    + options.snapshot().get());
        }
        HostFile file = HostFile.open(path, !options.readOnly(), options.direct());
        try {
            return new RawImage(file, options.readOnly());
        } catch (IOException | RuntimeException e) {
            file.close();
            throw e;
        }
    }

    @Override
    public void create(Path path, CreateOptions options) throws IOException {
        if (!options.formatOptions().isEmpty()) {
            throw new IOException("raw has no format options: options=" + options.formatOptions().keySet());
        }
        if (options.backing().isPresent()) {
            throw new IOException("raw images cannot have a backing file: path=" + path);
        }
        if (Files.exists(path)) {
            if (!Files.isRegularFile(path)) {
                try (HostFile dev = HostFile.open(path, true, false)) {
                    if (dev.isBlockDevice() && dev.size() >= options.size()) {
                        return;
                    }
                    throw new IOException("cannot create a raw image over this file: path=" + path + ", size="
                            + dev.size() + ", wanted=" + options.size());
                }
            }
            throw new FileAlreadyExistsException(path.toString());
        }
        Files.createFile(path);
        try {
            try (RandomAccessFile f = new RandomAccessFile(path.toFile(), "rw")) {
                f.setLength(options.size());
            }
            preallocate(path, options);
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(path);
            throw e;
        }
    }

    private static void preallocate(Path path, CreateOptions options) throws IOException {
        switch (options.preallocation()) {
            case OFF -> {
            }
            case FALLOC -> {
                try (HostFile f = HostFile.open(path, true, false)) {
                    if (!f.allocate(0, options.size())) {
                        throw new IOException("preallocation=falloc unsupported here: path=" + path);
                    }
                }
            }
            case FULL -> {
                try (HostFile f = HostFile.open(path, true, false)) {
                    ByteBuffer zeros = ByteBuffer.allocateDirect(ZERO_CHUNK);
                    for (long off = 0; off < options.size(); off += ZERO_CHUNK) {
                        zeros.clear().limit((int) Math.min(ZERO_CHUNK, options.size() - off));
                        f.write(zeros, off);
                    }
                    f.sync();
                }
            }
        }
    }
}
