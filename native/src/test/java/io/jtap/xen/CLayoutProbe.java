package io.jtap.xen;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;

/**
 * Evaluates C expressions (sizes, offsets, constants) against real headers: writes a program that prints each
 * expression's value, compiles it with gcc and runs it. The layout tests compare what it returns with the Java
 * descriptors, so a layout is proven against the C definitions, not a transcription of them.
 *
 * <p>When gcc or a header is missing the test fails in CI ({@code CI=true}) and is skipped elsewhere, with the
 * reason either way.
 */
public final class CLayoutProbe {
    private CLayoutProbe() {
    }

    /**
     * @param dir         a scratch directory for the source and the binary
     * @param name        the program's name, for file names and messages
     * @param headers     header files that must exist (checked before compiling)
     * @param includes    the program's {@code #include} (and {@code #define}) lines
     * @param expressions C expressions, each printed as a {@code long long}
     * @param installHint what to install when something is missing, e.g. "gcc and linux-libc-dev"
     * @return each expression's value, in the order given
     */
    public static Map<String, Long> evaluate(Path dir, String name, List<String> headers, String includes,
                                             Collection<String> expressions, String installHint) throws Exception {
        List<String> missing = new ArrayList<>();
        for (String header : headers) {
            if (!Files.isReadable(Path.of(header))) {
                missing.add(header);
            }
        }
        String gcc = findOnPath("gcc");
        if (gcc == null) {
            missing.add("gcc on PATH");
        }
        if (!missing.isEmpty()) {
            String reason = "cannot run " + name + ", missing: " + missing + " (install " + installHint + ")";
            if ("true".equalsIgnoreCase(System.getenv("CI"))) {
                fail(reason);
            }
            Assumptions.abort(reason);
        }
        StringBuilder c = new StringBuilder(includes).append("int main(void) {\n");
        for (String expr : expressions) {
            c.append("    printf(\"%lld\\t%s\\n\", (long long) (").append(expr).append("), \"")
                    .append(expr.replace("\"", "\\\"")).append("\");\n");
        }
        c.append("    return 0;\n}\n");
        Path source = dir.resolve(name + ".c");
        Path binary = dir.resolve(name);
        Files.writeString(source, c);
        String compileOutput = run(List.of(gcc, "-Wall", "-Werror", "-o", binary.toString(), source.toString()));
        String output = run(List.of(binary.toString()));
        Map<String, Long> actual = new LinkedHashMap<>();
        for (String line : output.split("\n")) {
            if (line.isEmpty()) {
                continue;
            }
            int tab = line.indexOf('\t');
            actual.put(line.substring(tab + 1), Long.parseLong(line.substring(0, tab)));
        }
        if (actual.isEmpty()) {
            fail(name + " printed nothing; compiler said: " + compileOutput);
        }
        return actual;
    }

    private static String run(List<String> command) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(60, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            fail("timed out: " + command);
        }
        if (p.exitValue() != 0) {
            fail("command failed: " + command + ", exit=" + p.exitValue() + ", output:\n" + out);
        }
        return out;
    }

    private static String findOnPath(String name) {
        String path = System.getenv("PATH");
        if (path == null) {
            return null;
        }
        for (String d : path.split(":")) {
            Path candidate = Path.of(d, name);
            if (Files.isExecutable(candidate)) {
                return candidate.toString();
            }
        }
        return null;
    }
}
