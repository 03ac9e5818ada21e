package io.jtap.formats.tool;

import io.jtap.formats.ImageFormat;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;

/**
 * {@code check [-f fmt] [-r leaks|all] [--output=human|json] [-q] filename}, through {@link ImageChecker}. Exit codes
 * as qemu-img documents: 0 no inconsistencies, 1 the check did not complete (error), 2 corruptions, 3 leaks (and no
 * corruptions), 63 the format does not support checks.
 */
@Command(name = "check", description = "Check an image for consistency; -r repairs.")
final class CheckCommand implements Callable<Integer> {
    static final int EXIT_OK = 0;
    static final int EXIT_NOT_COMPLETED = 1;
    static final int EXIT_CORRUPT = 2;
    static final int EXIT_LEAKS = 3;
    static final int EXIT_NOT_SUPPORTED = 63;

    @ParentCommand
    JtapImg tool;

    @Option(names = "-f", paramLabel = "fmt")
    String format;

    @Option(names = "-r", paramLabel = "leaks|all", description = "repair leaks, or all inconsistencies")
    String repair;

    @Option(names = "--output", paramLabel = "human|json", defaultValue = "human")
    OutputFormat output;

    @Option(names = "-q", description = "quiet")
    boolean quiet;

    @Option(names = {"-U", "--force-share"}, description = "accepted for compatibility (jtap takes no locks)")
    boolean forceShare;

    @Parameters(index = "0", paramLabel = "filename")
    String filename;

    @Override
    public Integer call() {
        ImageChecker.Repair mode = repair == null ? ImageChecker.Repair.NONE : switch (repair) {
            case "leaks" -> ImageChecker.Repair.LEAKS;
            case "all" -> ImageChecker.Repair.ALL;
            default -> throw new ToolException(1, "Unknown option value for -r (expecting 'leaks' or 'all'): "
                    + repair);
        };
        Optional<ImageChecker.CheckReport> report;
        ImageFormat f;
        try {
            f = tool.opener.formatOf(filename, format);
            if (!Files.exists(Path.of(filename))) {
                throw new ToolException(1, "Could not open '" + filename + "': No such file or directory");
            }
            report = tool.checker.check(Path.of(filename), f, mode);
        } catch (ToolException e) {
            throw e;
        } catch (IOException e) {
            tool.err.println("jtap-img: Check failed: " + e.getMessage());
            return EXIT_NOT_COMPLETED;
        }
        if (report.isEmpty()) {
            tool.err.println("jtap-img: This image format does not support checks: format=" + f.name());
            return EXIT_NOT_SUPPORTED;
        }
        ImageChecker.CheckReport r = report.get();
        for (String m : r.messages()) {
            tool.err.println(m);
        }
        if (output == OutputFormat.json) {
            tool.out.println(Json.pretty(json(r, f.name())));
        } else if (!quiet) {
            tool.out.print(human(r));
        }
        if (r.checkErrors() > 0) {
            return EXIT_NOT_COMPLETED;
        }
        if (r.corruptions() > 0) {
            return EXIT_CORRUPT;
        }
        return r.leaks() > 0 ? EXIT_LEAKS : EXIT_OK;
    }

    private Map<String, Object> json(ImageChecker.CheckReport r, String formatName) {
        Map<String, Object> m = new LinkedHashMap<>();
        putKnown(m, "image-end-offset", r.imageEndOffset());
        putKnown(m, "total-clusters", r.totalClusters());
        m.put("check-errors", r.checkErrors());
        if (r.corruptions() > 0) {
            m.put("corruptions", r.corruptions());
        }
        if (r.leaks() > 0) {
            m.put("leaks", r.leaks());
        }
        if (r.corruptionsFixed() > 0) {
            m.put("corruptions-fixed", r.corruptionsFixed());
        }
        if (r.leaksFixed() > 0) {
            m.put("leaks-fixed", r.leaksFixed());
        }
        putKnown(m, "allocated-clusters", r.allocatedClusters());
        if (r.fragmentedClusters() > 0) {
            m.put("fragmented-clusters", r.fragmentedClusters());
        }
        if (r.compressedClusters() > 0) {
            m.put("compressed-clusters", r.compressedClusters());
        }
        m.put("filename", filename);
        m.put("format", formatName);
        return m;
    }

    /** qemu-img leaves out the optional counts that are 0 (QAPI {@code has_*} is {@code value != 0}). */
    private static void putKnown(Map<String, Object> m, String key, long value) {
        if (value > 0) {
            m.put(key, value);
        }
    }

    private static String human(ImageChecker.CheckReport r) {
        StringBuilder sb = new StringBuilder();
        if (r.leaksFixed() > 0 || r.corruptionsFixed() > 0) {
            sb.append(String.format("The following inconsistencies were found and repaired:%n%n"
                    + "    %d leaked clusters%n    %d corruptions%n%n"
                    + "Double checking the fixed image now...%n", r.leaksFixed(), r.corruptionsFixed()));
        }
        if (r.corruptions() == 0 && r.leaks() == 0 && r.checkErrors() == 0) {
            sb.append(String.format("No errors were found on the image.%n"));
        } else {
            if (r.corruptions() > 0) {
                sb.append(String.format("%n%d errors were found on the image.%n"
                        + "Data may be corrupted, or further writes to the image may corrupt it.%n", r.corruptions()));
            }
            if (r.leaks() > 0) {
                sb.append(String.format("%n%d leaked clusters were found on the image.%n"
                        + "This means waste of disk space, but no harm to data.%n", r.leaks()));
            }
            if (r.checkErrors() > 0) {
                sb.append(String.format("%n%d internal errors have occurred during the check.%n", r.checkErrors()));
            }
        }
        if (r.totalClusters() > 0 && r.allocatedClusters() >= 0) {
            double t = r.totalClusters();
            sb.append(String.format(Locale.ROOT, "%d/%d = %.2f%% allocated, %.2f%% fragmented, %.2f%% compressed "
                    + "clusters%n", r.allocatedClusters(), r.totalClusters(), r.allocatedClusters() * 100 / t,
                    Math.max(r.fragmentedClusters(), 0) * 100 / t, Math.max(r.compressedClusters(), 0) * 100 / t));
        }
        if (r.imageEndOffset() >= 0) {
            sb.append(String.format("Image end offset: %d%n", r.imageEndOffset()));
        }
        return sb.toString();
    }
}
