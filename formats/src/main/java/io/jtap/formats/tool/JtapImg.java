package io.jtap.formats.tool;

import io.jtap.formats.ImageFormats;
import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.function.Supplier;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * {@code jtap-img}: jtap's image tool, with qemu-img's subcommands, flag names, output formats and exit codes where
 * they exist. Results go to stdout, errors to stderr as one line {@code jtap-img: what went wrong}; a usage error
 * (unknown flag, missing or bad argument) exits 1 as qemu-img does.
 *
 * <p>Runs in-process for tests: {@link #run(String...)} with the streams and format registry given to the
 * constructor; {@link #main} is the launcher's entry point ({@code bin/jtap-img}).
 *
 * <p>Start-up: picocli builds a command's model by reflection over its annotations, which is most of a short run's
 * cost, so a command line that starts with a subcommand's name registers only that subcommand; anything else (no
 * command, a top-level option, an unknown name) registers all of them, so that help and usage errors list them.
 */
@Command(name = "jtap-img", mixinStandardHelpOptions = true, version = "jtap-img 0.1 (qemu-img compatible)",
        description = "Create, inspect, convert and modify disk images (raw, qcow2).")
public final class JtapImg implements Callable<Integer> {
    /** The subcommands, in the order help lists them. */
    private static final Map<String, Supplier<Object>> COMMANDS = new LinkedHashMap<>();

    static {
        COMMANDS.put("create", CreateCommand::new);
        COMMANDS.put("info", InfoCommand::new);
        COMMANDS.put("check", CheckCommand::new);
        COMMANDS.put("convert", ConvertCommand::new);
        COMMANDS.put("compare", CompareCommand::new);
        COMMANDS.put("map", MapCommand::new);
        COMMANDS.put("measure", MeasureCommand::new);
        COMMANDS.put("resize", ResizeCommand::new);
        COMMANDS.put("rebase", RebaseCommand::new);
        COMMANDS.put("commit", CommitCommand::new);
        COMMANDS.put("snapshot", SnapshotCommand::new);
    }

    final PrintStream out;
    final PrintStream err;
    final ImageOpener opener;
    final ImageChecker checker;

    public JtapImg(PrintStream out, PrintStream err, ImageFormats formats, ImageChecker checker) {
        this.out = out;
        this.err = err;
        this.opener = new ImageOpener(formats);
        this.checker = checker;
    }

    public static void main(String[] args) {
        installProgressSignal();
        int code = new JtapImg(System.out, System.err, ImageFormats.defaults(), ImageChecker.installed()).run(args);
        System.out.flush();
        System.exit(code);
    }

    /** SIGUSR1 prints one progress line, as it does for qemu-img. */
    private static void installProgressSignal() {
        try {
            sun.misc.Signal.handle(new sun.misc.Signal("USR1"), sig -> {
                Progress p = Progress.current();
                if (p != null) {
                    p.report();
                }
            });
        } catch (IllegalArgumentException | UnsupportedOperationException e) {
            // no SIGUSR1 on this platform, or the JVM reserves it: progress stays available through -p
        }
    }

    /** Parses and runs one command line; returns the exit code. */
    public int run(String... args) {
        CommandLine cl = new CommandLine(this);
        if (args.length > 0 && COMMANDS.containsKey(args[0])) {
            cl.addSubcommand(args[0], COMMANDS.get(args[0]).get());
        } else {
            COMMANDS.forEach((name, command) -> cl.addSubcommand(name, command.get()));
        }
        CommandLine resize = cl.getSubcommands().get("resize");
        if (resize != null) {
            // "resize img -1G": a negative size is an argument, not an option.
            resize.setUnmatchedOptionsArePositionalParams(true);
        }
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        cl.setParameterExceptionHandler((ex, a) -> {
            err.println("jtap-img: " + ex.getMessage());
            String name = ex.getCommandLine().getCommandName();
            err.println("Try 'jtap-img " + ("jtap-img".equals(name) ? "" : name + " ") + "--help' for more "
                    + "information");
            return 1;
        });
        cl.setExecutionExceptionHandler((ex, cmd, parsed) -> {
            if (ex instanceof ToolException t) {
                err.println("jtap-img: " + t.getMessage());
                return t.exitCode();
            }
            if (ex instanceof IllegalArgumentException || ex instanceof IOException) {
                err.println("jtap-img: " + ex.getMessage());
                return 1;
            }
            err.println("jtap-img: internal error: " + ex);
            ex.printStackTrace(err);
            return 1;
        });
        return cl.execute(args);
    }

    @Override
    public Integer call() {
        err.println("jtap-img: Not enough arguments: a command is required");
        err.println("Try 'jtap-img --help' for more information");
        return 1;
    }
}
