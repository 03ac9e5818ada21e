package io.jtap.formats.tool;

import io.jtap.formats.CorruptImageException;
import io.jtap.formats.Image;
import io.jtap.formats.ImageFormat;
import io.jtap.formats.ImageFormats;
import io.jtap.formats.OpenOptions;
import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

/**
 * Opens images for jtap-img: the format given with {@code -f}, else probed (tools may probe; see
 * {@link ImageFormat#probe}), with errors that name the file and say what was wrong.
 */
final class ImageOpener {
    /** Metadata cache per image for tool runs: large enough that a multi-GiB convert never evicts an L2 table. */
    static final long TOOL_CACHE_BYTES = 32L << 20;

    private final ImageFormats formats;

    ImageOpener(ImageFormats formats) {
        this.formats = formats;
    }

    ImageFormats formats() {
        return formats;
    }

    /** The named format, or a usage error listing the known ones. */
    ImageFormat format(String name) {
        return formats.find(name).orElseThrow(() -> new ToolException(1, "Unknown file format '" + name
                + "' (known: " + String.join(", ", formats.names()) + ")"));
    }

    /** The format {@code -f} names, or the probed one. */
    ImageFormat formatOf(String filename, String formatName) throws IOException {
        if (formatName != null) {
            return format(formatName);
        }
        Path p = Path.of(filename);
        requireExists(filename, p);
        return formats.probe(p);
    }

    Image open(String filename, String formatName, OpenOptions options) {
        try {
            ImageFormat f = formatOf(filename, formatName);
            return f.open(Path.of(filename), options.withFormats(formats).withCacheBytes(TOOL_CACHE_BYTES));
        } catch (ToolException e) {
            throw e;
        } catch (NoSuchFileException e) {
            throw new ToolException(1, "Could not open '" + filename + "': No such file or directory"
                    + (e.getFile() != null && !e.getFile().equals(filename) ? " (" + e.getFile() + ")" : ""));
        } catch (AccessDeniedException e) {
            throw new ToolException(1, "Could not open '" + filename + "': Permission denied");
        } catch (CorruptImageException e) {
            throw new ToolException(1, "Could not open '" + filename + "': image is corrupt: " + e.getMessage());
        } catch (IOException | RuntimeException e) {
            throw new ToolException(1, "Could not open '" + filename + "': " + e.getMessage());
        }
    }

    Image openReadOnly(String filename, String formatName) {
        return open(filename, formatName, OpenOptions.defaults().withReadOnly(true));
    }

    private static void requireExists(String filename, Path p) {
        if (!Files.exists(p)) {
            throw new ToolException(1, "Could not open '" + filename + "': No such file or directory");
        }
    }
}
