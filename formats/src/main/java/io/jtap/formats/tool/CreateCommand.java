package io.jtap.formats.tool;

import io.jtap.formats.BackingReference;
import io.jtap.formats.CreateOptions;
import io.jtap.formats.Image;
import io.jtap.formats.ImageFormat;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;

/** {@code create [-f fmt] [-o options] [-b backing [-F backing_fmt]] [-u] [-q] filename [size]}. */
@Command(name = "create", description = "Create a new image.")
final class CreateCommand implements Callable<Integer> {
    @ParentCommand
    JtapImg tool;

    @Option(names = "-f", paramLabel = "fmt", description = "image format (default raw)")
    String format = "raw";

    @Option(names = "-o", paramLabel = "options", description = "format options, key=value[,...]; -o help lists them")
    List<String> options = new ArrayList<>();

    @Option(names = "-b", paramLabel = "backing_file", description = "backing file")
    String backing;

    @Option(names = "-F", paramLabel = "backing_fmt", description = "backing file format")
    String backingFormat;

    @Option(names = "-u", description = "do not open the backing file (the size must be given)")
    boolean unsafe;

    @Option(names = "-q", description = "quiet")
    boolean quiet;

    @Parameters(index = "0", paramLabel = "filename")
    String filename;

    @Parameters(index = "1", arity = "0..1", paramLabel = "size", description = "size with optional suffix k, M, "
            + "G, T, P, E")
    String size;

    @Override
    public Integer call() throws IOException {
        ImageFormat f = tool.opener.format(format);
        if (options.contains("help")) {
            tool.out.println(optionHelp(f.name()));
            return 0;
        }
        long bytes = size == null ? -1 : ByteSizes.parse("image size", size);
        CreateOptions c = OptionList.toCreateOptions(OptionList.parse(options), bytes, backing, backingFormat);
        if (bytes < 0 && !OptionList.parse(options).containsKey("size")) {
            if (c.backing().isEmpty()) {
                throw new ToolException(1, "Image creation needs a size parameter");
            }
            if (unsafe) {
                throw new ToolException(1, "Image creation with -u needs a size parameter");
            }
            c = new CreateOptions(backingSize(c.backing().get()), c.backing(), c.preallocation(), c.formatOptions());
        } else if (c.backing().isPresent() && !unsafe) {
            backingSize(c.backing().get());
        }
        create(tool, f, Path.of(filename), c);
        if (!quiet) {
            StringBuilder sb = new StringBuilder("Formatting '" + filename + "', fmt=" + f.name());
            for (Map.Entry<String, String> e : c.formatOptions().entrySet()) {
                sb.append(' ').append(e.getKey()).append('=').append(e.getValue());
            }
            sb.append(" size=").append(c.size());
            c.backing().ifPresent(b -> sb.append(" backing_file=").append(b.name())
                    .append(b.format().map(x -> " backing_fmt=" + x).orElse("")));
            tool.out.println(sb);
        }
        return 0;
    }

    private long backingSize(BackingReference ref) {
        Path overlay = Path.of(filename);
        String resolved = ref.resolveAgainst(overlay).toString();
        try (Image b = tool.opener.openReadOnly(resolved, ref.format().orElse(null))) {
            return b.size();
        } catch (ToolException e) {
            throw new ToolException(1, "Could not open backing file: " + e.getMessage()
                    + " (use -u and give a size to create the image anyway)");
        } catch (IOException e) {
            throw new ToolException(1, "Could not close backing file: " + e.getMessage());
        }
    }

    /** Creates the image, replacing an existing regular file as qemu-img does. */
    static void create(JtapImg tool, ImageFormat f, Path path, CreateOptions c) {
        try {
            if (Files.isRegularFile(path)) {
                Files.delete(path);
            }
            f.create(path, c);
        } catch (IOException | IllegalArgumentException e) {
            throw new ToolException(1, path + ": " + e.getMessage());
        }
    }

    static String optionHelp(String format) {
        String common = "Supported options:\n  size=<size>           virtual disk size\n";
        return switch (format) {
            case "qcow2" -> common
                    + "  backing_file=<file>   file name of a base image\n"
                    + "  backing_fmt=<fmt>     format of the base image\n"
                    + "  cluster_size=<size>   qcow2 cluster size (512 to 2M, default 64k)\n"
                    + "  compat=<0.10|1.1>     qcow2 compatibility level (v2, v3; default 1.1)\n"
                    + "  lazy_refcounts=<on|off> postpone refcount updates (compat=1.1)\n"
                    + "  refcount_bits=<bits>  width of a reference count entry (1..64, default 16)\n"
                    + "  extended_l2=<off>     extended L2 entries: reading only in jtap\n"
                    + "  preallocation=<off>   preallocation mode";
            default -> common + "  preallocation=<off|falloc|full> preallocation mode";
        };
    }
}
