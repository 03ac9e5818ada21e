package io.jtap.formats.tool;

import io.jtap.formats.BackingReference;
import io.jtap.formats.CompressedWrites;
import io.jtap.formats.CreateOptions;
import io.jtap.formats.Image;
import io.jtap.formats.ImageFormat;
import io.jtap.formats.OpenOptions;
import io.jtap.formats.qcow2.Qcow2Image;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;

/**
 * {@code convert [-f fmt] [-O output_fmt] [-o options] [-B backing [-F backing_fmt]] [-S sparse_size] [-n]
 * [--target-is-zero] [-m num] [-W] [-c] [-p | --progress=jsonl] [-q] filename output_filename}: copies the guest's
 * view of an image (its whole backing chain, or with {@code -B} only what differs from the new backing file) into a
 * new or ({@code -n}) existing image, through {@link ConvertPipeline}.
 */
@Command(name = "convert", description = "Convert an image to another format, or copy it.")
final class ConvertCommand implements Callable<Integer> {
    /** qemu-img's default for {@code -m}. */
    private static final int DEFAULT_PARALLEL = 8;
    /** qemu-img's default for {@code -S}: 4 KiB. */
    private static final String DEFAULT_SPARSE = "4k";

    @ParentCommand
    JtapImg tool;

    @Option(names = "-f", paramLabel = "fmt", description = "source format (probed when absent)")
    String format;

    @Option(names = "-O", paramLabel = "output_fmt", description = "target format (default raw)")
    String outputFormat = "raw";

    @Option(names = "-o", paramLabel = "options", description = "target format options")
    List<String> options = new ArrayList<>();

    @Option(names = "-B", paramLabel = "backing_file", description = "make the target an overlay of this file")
    String backing;

    @Option(names = "-F", paramLabel = "backing_fmt", description = "format of the -B backing file")
    String backingFormat;

    @Option(names = "-S", paramLabel = "sparse_size", description = "zero runs at least this long stay sparse "
            + "(default 4k; 0 writes everything)")
    String sparseSize = DEFAULT_SPARSE;

    @Option(names = "-n", description = "do not create the target; it must exist")
    boolean noCreate;

    @Option(names = "--target-is-zero", description = "the existing target (-n) reads as zeros")
    boolean targetIsZero;

    @Option(names = "-m", paramLabel = "num", description = "parallel requests (default 8)")
    int parallel = DEFAULT_PARALLEL;

    @Option(names = "-W", description = "allow out-of-order writes")
    boolean outOfOrder;

    @Option(names = "-c", description = "compress the target's data clusters")
    boolean compress;

    @Mixin
    ProgressOptions progressOptions;

    @Option(names = "-q", description = "quiet")
    boolean quiet;

    @Option(names = {"-U", "--force-share"}, description = "accepted for compatibility (jtap takes no locks)")
    boolean forceShare;

    @Option(names = "-t", paramLabel = "cache", description = "target cache mode: writeback (default; jtap uses "
            + "the page cache and flushes once at the end; none, writethrough and directsync do the same) or unsafe "
            + "(no sync at all: qemu-img convert's default)")
    String cache = "writeback";

    @Option(names = "-T", paramLabel = "src_cache", description = "accepted for compatibility (jtap reads through "
            + "the page cache)")
    String sourceCache;

    @Parameters(index = "0", paramLabel = "filename")
    String source;

    @Parameters(index = "1", paramLabel = "output_filename")
    String target;

    @Override
    public Integer call() throws IOException {
        if (parallel < 1 || parallel > 64) {
            throw new ToolException(1, "Invalid number of coroutines: -m " + parallel + " (allowed: 1 to 64)");
        }
        if (targetIsZero && !noCreate) {
            throw new ToolException(1, "--target-is-zero requires use of -n flag");
        }
        if (noCreate && (!options.isEmpty() || backing != null)) {
            throw new ToolException(1, "-n cannot be combined with -o or -B: the target exists already");
        }
        long sparse = ByteSizes.parse("sparse size (-S)", sparseSize);
        if (sparse != 0 && (sparse % 512 != 0 || sparse > ConvertPipeline.CHUNK_BYTES)) {
            throw new ToolException(1, "Invalid buffer size for sparse output specified: -S " + sparseSize
                    + " (a multiple of 512 up to 2M, or 0)");
        }
        boolean unsafe = switch (cache) {
            case "unsafe" -> true;
            case "writeback", "none", "writethrough", "directsync" -> false;
            default -> throw new ToolException(1, "Invalid cache option: -t " + cache
                    + " (expecting none, writeback, writethrough, directsync or unsafe)");
        };
        ImageFormat targetFormat = tool.opener.format(outputFormat);
        Progress.Mode mode = progressOptions.mode();
        OpenOptions sourceOptions = OpenOptions.defaults().withReadOnly(true);
        try (Image src = tool.opener.open(source, format, sourceOptions)) {
            ImageChain chain = ImageChain.of(src, source);
            Image dst = openTarget(src, targetFormat);
            try (dst) {
                if (dst.size() < src.size()) {
                    throw new ToolException(1, "Target '" + target + "' is smaller than the source: target size="
                            + dst.size() + ", source size=" + src.size());
                }
                Optional<CompressedWrites> compressor = Optional.empty();
                if (compress) {
                    if (!(dst instanceof CompressedWrites cw)) {
                        throw new ToolException(1, "Compression is not supported for this image format: format="
                                + dst.formatName());
                    }
                    compressor = Optional.of(cw);
                }
                int unit = dst instanceof Qcow2Image q ? q.clusterSize() : 1;
                int granularity = (int) Math.max(sparse == 0 ? 512 : sparse, unit);
                boolean fresh = !noCreate && dst.backing().isEmpty() || targetIsZero;
                ConvertPipeline.Settings s = new ConvertPipeline.Settings(parallel, outOfOrder, sparse != 0,
                        Integer.highestOneBit(granularity), fresh, backing != null, compressor);
                if (compressor.isEmpty()) {
                    dst.allocateBeforeWrites(); // each range is written once
                }
                if (unsafe) {
                    dst.disableSyncs();
                } else if (dst instanceof Qcow2Image q && !noCreate) {
                    q.deferSyncsUntilFlush(); // a new target: ordered, durable at the flush below
                }
                try (Progress progress = Progress.start(mode, src.size(), tool.out, tool.err)) {
                    new ConvertPipeline(chain, dst, s, progress).run();
                }
                if (!unsafe) {
                    dst.flush();
                }
            }
        }
        return 0;
    }

    private Image openTarget(Image src, ImageFormat targetFormat) throws IOException {
        if (!noCreate) {
            Map<String, String> o = OptionList.parse(options);
            long size = src.size();
            if (targetFormat.name().equals("qcow2")) {
                size = MeasureCommand.roundUp(size, 512);
            }
            CreateOptions c = OptionList.toCreateOptions(o, size, backing, backingFormat);
            if (c.backing().isPresent() && c.backing().get().format().isEmpty()) {
                BackingReference b = c.backing().get();
                Path resolved = b.resolveAgainst(Path.of(target));
                c = c.withBacking(b.name(), tool.opener.formatOf(resolved.toString(), null).name());
            }
            CreateCommand.create(tool, targetFormat, Path.of(target), c);
        }
        return tool.opener.open(target, targetFormat.name(), OpenOptions.defaults());
    }
}
