package io.jtap.formats.tool;

import io.jtap.formats.Image;
import io.jtap.formats.OpenOptions;
import java.io.IOException;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;

/**
 * {@code resize [-f fmt] [--shrink] [-q] filename [+|-]size}: an absolute size, or a change. Shrinking needs
 * {@code --shrink}, because it drops data, as qemu-img requires.
 */
@Command(name = "resize", description = "Change the virtual size of an image.")
final class ResizeCommand implements Callable<Integer> {
    @ParentCommand
    JtapImg tool;

    @Option(names = "-f", paramLabel = "fmt")
    String format;

    @Option(names = "--shrink", description = "allow shrinking (drops the data beyond the new size)")
    boolean shrink;

    @Option(names = "-q", description = "quiet")
    boolean quiet;

    @Parameters(index = "0", paramLabel = "filename")
    String filename;

    @Parameters(index = "1", paramLabel = "[+|-]size")
    String size;

    @Override
    public Integer call() throws IOException {
        String text = size;
        int sign = 0;
        if (text.startsWith("+") || text.startsWith("-")) {
            sign = text.charAt(0) == '+' ? 1 : -1;
            text = text.substring(1);
        }
        long amount = ByteSizes.parse("image size", text);
        try (Image image = tool.opener.open(filename, format, OpenOptions.defaults())) {
            long old = image.size();
            long target = sign == 0 ? amount : old + sign * amount;
            if (target < 0) {
                throw new ToolException(1, "New image size must be positive: size=" + target);
            }
            if (target < old && !shrink) {
                throw new ToolException(1, "Use the --shrink option to perform a shrink operation: current size="
                        + old + ", new size=" + target);
            }
            if ("qcow2".equals(image.formatName()) && target % 512 != 0) {
                throw new ToolException(1, "The new size must be a multiple of 512: size=" + target);
            }
            if (target != old) {
                image.resize(target);
            }
            image.flush();
        }
        if (!quiet) {
            tool.out.println("Image resized.");
        }
        return 0;
    }
}
