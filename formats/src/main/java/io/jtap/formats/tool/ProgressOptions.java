package io.jtap.formats.tool;

import picocli.CommandLine.Option;

/**
 * The progress options of the commands that copy or walk a whole image (convert, compare, commit, rebase), mixed
 * into each: {@code -p} draws a bar on a terminal, {@code --progress=jsonl|bar|none} chooses explicitly.
 */
final class ProgressOptions {
    @Option(names = "-p", description = "show a progress bar")
    boolean progressBar;

    @Option(names = "--progress", paramLabel = "jsonl", description = "print progress as JSON lines on stdout")
    String progressMode;

    /** The mode the options ask for; {@code --progress} wins over {@code -p}. */
    Progress.Mode mode() {
        if (progressMode != null) {
            return switch (progressMode) {
                case "jsonl" -> Progress.Mode.JSONL;
                case "bar" -> Progress.Mode.BAR;
                case "none" -> Progress.Mode.NONE;
                default -> throw new ToolException(1, "Invalid --progress value '" + progressMode
                        + "' (expecting jsonl, bar or none)");
            };
        }
        return progressBar ? Progress.Mode.BAR : Progress.Mode.NONE;
    }
}
