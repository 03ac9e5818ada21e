package io.jtap.formats.tool;

import io.jtap.formats.BackingReference;
import io.jtap.formats.BlockStatus;
import io.jtap.formats.Image;
import io.jtap.formats.OpenOptions;
import io.jtap.formats.qcow2.Qcow2BackingFile;
import io.jtap.formats.qcow2.Qcow2Image;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;

/**
 * {@code rebase [-f fmt] [-u] -b backing_file [-F backing_fmt] [-p | --progress=jsonl] [-q] filename}: changes the
 * overlay's backing file. Safe mode (the default) keeps the guest's view: wherever the overlay leaves a range to its
 * backing file and the old and new backing chains differ, it copies the old content into the overlay first.
 * {@code -u} only rewrites the reference. {@code -b ""} removes the backing file (in safe mode the overlay then holds
 * everything the old chain supplied).
 */
@Command(name = "rebase", description = "Change the backing file of an image.")
final class RebaseCommand implements Callable<Integer> {
    private static final int CHUNK = 2 << 20;

    @ParentCommand
    JtapImg tool;

    @Option(names = "-f", paramLabel = "fmt")
    String format;

    @Option(names = "-u", description = "unsafe: only change the reference, copy nothing")
    boolean unsafe;

    @Option(names = "-b", paramLabel = "backing_file", required = true, description = "new backing file (\"\" for "
            + "none)")
    String backing;

    @Option(names = "-F", paramLabel = "backing_fmt", description = "format of the new backing file")
    String backingFormat;

    @Mixin
    ProgressOptions progressOptions;

    @Option(names = "-q", description = "quiet")
    boolean quiet;

    @Parameters(index = "0", paramLabel = "filename")
    String filename;

    @Override
    public Integer call() throws IOException {
        Progress.Mode mode = progressOptions.mode();
        Path overlayPath = Path.of(filename);
        Optional<BackingReference> newRef = Optional.empty();
        if (!backing.isEmpty()) {
            Path resolved = new BackingReference(backing, Optional.empty()).resolveAgainst(overlayPath);
            String fmt = backingFormat;
            if (fmt == null) {
                fmt = tool.opener.formatOf(resolved.toString(), null).name();
            }
            newRef = Optional.of(new BackingReference(backing, Optional.of(fmt)));
        }
        OpenOptions rw = OpenOptions.defaults().withOpenBacking(!unsafe);
        try (Image overlay = tool.opener.open(filename, format, rw)) {
            if (!(overlay instanceof Qcow2Image)) {
                throw new ToolException(1, "Format " + overlay.formatName() + " has no backing files to rebase");
            }
            if (!unsafe) {
                Image newBase = null;
                try {
                    if (newRef.isPresent()) {
                        newBase = tool.opener.openReadOnly(newRef.get().resolveAgainst(overlayPath).toString(),
                                newRef.get().format().orElse(null));
                    }
                    try (Progress progress = Progress.start(mode, overlay.size(), tool.out, tool.err)) {
                        copyDifferences(overlay, newBase, progress);
                    }
                } finally {
                    if (newBase != null) {
                        newBase.close();
                    }
                }
                overlay.flush();
            }
        }
        try {
            Qcow2BackingFile.change(overlayPath, newRef);
        } catch (IOException e) {
            throw new ToolException(1, "Could not change the backing file to '" + backing + "': " + e.getMessage());
        }
        return 0;
    }

    /**
     * Where the overlay reads from its old backing chain, compares that with the new backing image (zeros beyond its
     * end, or everywhere when there is none) and writes the old content into the overlay where they differ.
     */
    private static void copyDifferences(Image overlay, Image newBase, Progress progress) throws IOException {
        ByteBuffer oldBuf = ByteBuffer.allocateDirect(CHUNK);
        ByteBuffer newBuf = ByteBuffer.allocateDirect(CHUNK);
        Optional<Image> oldBase = overlay.backingImage();
        long size = overlay.size();
        int unit = overlay instanceof Qcow2Image q ? q.clusterSize() : 512;
        for (long off = 0; off < size; ) {
            BlockStatus s = overlay.blockStatus(off, size - off);
            long len = s.length();
            if (s.kind() == BlockStatus.Kind.UNALLOCATED) {
                for (long done = 0; done < len; ) {
                    int n = (int) Math.min(CHUNK - (off + done) % CHUNK, len - done);
                    long at = off + done;
                    oldBuf.clear().limit(n);
                    readOrZero(oldBase.orElse(null), at, oldBuf);
                    newBuf.clear().limit(n);
                    readOrZero(newBase, at, newBuf);
                    oldBuf.flip();
                    newBuf.flip();
                    for (int p = 0; p < n; ) {
                        int q = (int) Math.min(n, ((at + p) / unit + 1) * unit - at);
                        if (oldBuf.slice(p, q - p).mismatch(newBuf.slice(p, q - p)) >= 0) {
                            overlay.write(at + p, oldBuf.slice(p, q - p));
                        }
                        p = q;
                    }
                    done += n;
                }
            }
            progress.advance(len);
            off += len;
        }
    }

    private static void readOrZero(Image image, long offset, ByteBuffer dst) throws IOException {
        long avail = image == null ? 0 : Math.max(0, Math.min(dst.remaining(), image.size() - offset));
        if (avail > 0) {
            ByteBuffer part = dst.slice(dst.position(), (int) avail);
            image.read(offset, part);
        }
        for (int i = dst.position() + (int) avail; i < dst.limit(); i++) {
            dst.put(i, (byte) 0);
        }
        dst.position(dst.limit());
    }
}
