package io.jtap.formats.tool;

import io.jtap.formats.BackingReference;
import io.jtap.formats.BlockStatus;
import io.jtap.formats.Image;
import io.jtap.formats.OpenOptions;
import io.jtap.formats.qcow2.Qcow2Image;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;

/**
 * {@code commit [-f fmt] [-d] [-p | --progress=jsonl] [-q] filename}: writes everything the overlay allocates (data
 * and zeroed ranges) into its backing file, then empties the overlay (every cluster unallocated again) unless
 * {@code -d}, as qemu-img does. A backing file shorter than the overlay is grown first.
 */
@Command(name = "commit", description = "Commit an overlay's changes into its backing file.")
final class CommitCommand implements Callable<Integer> {
    private static final int CHUNK = 2 << 20;

    @ParentCommand
    JtapImg tool;

    @Option(names = "-f", paramLabel = "fmt")
    String format;

    @Option(names = "-d", description = "do not empty the overlay afterwards")
    boolean keep;

    @Mixin
    ProgressOptions progressOptions;

    @Option(names = "-q", description = "quiet")
    boolean quiet;

    @Parameters(index = "0", paramLabel = "filename")
    String filename;

    @Override
    public Integer call() throws IOException {
        Progress.Mode mode = progressOptions.mode();
        String formatName;
        try (Image overlay = tool.opener.open(filename, format, OpenOptions.defaults().withReadOnly(true)
                .withOpenBacking(false))) {
            formatName = overlay.formatName();
            BackingReference ref = overlay.backing().orElseThrow(() -> new ToolException(1, "Image '" + filename
                    + "' does not have a backing file to commit into"));
            String backingName = ImageChain.backingDisplayName(filename, ref.name());
            try (Image base = tool.opener.open(ref.resolveAgainst(Path.of(filename)).toString(),
                    ref.format().orElse(null), OpenOptions.defaults());
                 Progress progress = Progress.start(mode, overlay.size(), tool.out, tool.err)) {
                if (base.size() < overlay.size()) {
                    base.resize(overlay.size());
                }
                copyAllocated(overlay, base, progress);
                base.flush();
            } catch (ToolException e) {
                throw new ToolException(1, "Could not open backing file '" + backingName + "' for writing: "
                        + e.getMessage());
            }
        }
        if (!keep) {
            try (Image overlay = tool.opener.open(filename, formatName, OpenOptions.defaults()
                    .withOpenBacking(false))) {
                if (!(overlay instanceof Qcow2Image q)) {
                    throw new ToolException(1, "Emptying is not supported for format " + overlay.formatName()
                            + " (use -d)");
                }
                q.makeEmpty();
                q.flush();
            }
        }
        if (!quiet) {
            tool.out.println("Image committed.");
        }
        return 0;
    }

    private static void copyAllocated(Image overlay, Image base, Progress progress) throws IOException {
        ByteBuffer buf = ByteBuffer.allocateDirect(CHUNK);
        long size = overlay.size();
        for (long off = 0; off < size; ) {
            BlockStatus s = overlay.blockStatus(off, size - off);
            long len = s.length();
            switch (s.kind()) {
                case UNALLOCATED -> {
                }
                case ZERO -> base.writeZeroes(off, len);
                case DATA -> {
                    for (long done = 0; done < len; ) {
                        int n = (int) Math.min(CHUNK, len - done);
                        buf.clear().limit(n);
                        overlay.read(off + done, buf);
                        base.write(off + done, buf.flip());
                        done += n;
                        progress.advance(n);
                    }
                    off += len;
                    continue;
                }
            }
            progress.advance(len);
            off += len;
        }
    }
}
