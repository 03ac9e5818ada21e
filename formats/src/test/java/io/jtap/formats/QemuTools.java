package io.jtap.formats;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;

/**
 * Runs the reference tools (qemu-img, qemu-io). Missing tools fail the test when {@code CI=true} and skip it
 * (printing why) otherwise.
 */
public final class QemuTools {
    /** A tool run that takes longer than this hangs (qemu-img hangs on some backing loops). */
    private static final long TIMEOUT_SECONDS = 120;

    private QemuTools() {
    }

    /** The tool's path, or a failure (CI) / skip (elsewhere) naming what is missing. */
    public static String require(String tool) {
        for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
            Path p = Path.of(dir, tool);
            if (Files.isExecutable(p)) {
                return p.toString();
            }
        }
        String why = tool + " not found on PATH (Debian: apt-get install qemu-utils); the qcow2 interop tests "
                + "need it as the reference";
        if ("true".equalsIgnoreCase(System.getenv("CI"))) {
            fail(why);
        }
        System.out.println("SKIPPED: " + why);
        Assumptions.abort(why);
        return null;
    }

    /** Runs the tool with arguments, returns stdout+stderr; fails on a non-zero exit unless allowed. */
    public static String run(String tool, String... args) throws IOException, InterruptedException {
        Result r = runAllowingFailure(tool, args);
        if (r.exit != 0) {
            fail(tool + " failed: exit=" + r.exit + ", args=" + String.join(" ", args) + ", output=" + r.output);
        }
        return r.output;
    }

    /** The outcome of a tool run. */
    public record Result(int exit, String output) {
    }

    public static Result runAllowingFailure(String tool, String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>();
        cmd.add(require(tool));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            fail(tool + " timed out: args=" + String.join(" ", args));
        }
        return new Result(p.exitValue(), new String(out, StandardCharsets.UTF_8));
    }
}
