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
 * descriptors ({@link #assertSameAsC}), so a layout is proven against the C definitions, not a transcription of
 * them. Shared through native's test-jar with ring's Xen header test.
 *
 * <p>When gcc or a header is missing the test fails in CI ({@code CI=true}) and is skipped elsewhere, with the
 * reason either way.
 */
public final class CLayoutProbe {
    private CLayoutProbe() {
    }

    /**
     * {@link #evaluate(Path, String, List, String, Collection, Collection, List, String)} with no optional
     * expressions and gcc's default target.
     */
    public static Map<String, Long> evaluate(Path dir, String name, List<String> headers, String includes,
                                             Collection<String> expressions, String installHint) throws Exception {
        return evaluate(dir, name, headers, includes, expressions, List.of(), List.of(), installHint);
    }

    /**
     * @param dir         a scratch directory for the source and the binary
     * @param name        the program's name, for file names and messages
     * @param headers     header files that must exist (checked before compiling)
     * @param includes    the program's {@code #include} (and {@code #define}) lines
     * @param expressions C expressions, each printed as a {@code long long}
     * @param optional    those of {@code expressions} that are macros newer than some headers: each is compiled
     *                    under {@code #ifdef} and missing from the result when the installed header lacks it
     * @param gccFlags    extra gcc flags, e.g. {@code -m32} for the x86_32 ABI
     * @param installHint what to install when something is missing, e.g. "gcc and linux-libc-dev"
     * @return each expression's value, in the order given (an expression given twice appears once)
     */
    public static Map<String, Long> evaluate(Path dir, String name, List<String> headers, String includes,
                                             Collection<String> expressions, Collection<String> optional,
                                             List<String> gccFlags, String installHint) throws Exception {
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
            boolean guarded = optional.contains(expr);
            if (guarded) {
                c.append("#ifdef ").append(expr).append('\n');
            }
            c.append("    printf(\"%lld\\t%s\\n\", (long long) (").append(expr).append("), \"")
                    .append(expr.replace("\"", "\\\"")).append("\");\n");
            if (guarded) {
                c.append("#endif\n");
            }
        }
        c.append("    return 0;\n}\n");
        Path source = dir.resolve(name + ".c");
        Path binary = dir.resolve(name);
        Files.writeString(source, c);
        List<String> compile = new ArrayList<>(List.of(gcc, "-Wall", "-Werror"));
        compile.addAll(gccFlags);
        compile.addAll(List.of("-o", binary.toString(), source.toString()));
        String compileOutput = run(compile);
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

    /**
     * Fails, naming each one, unless every expression of {@code java} has the same value in {@code c}; an optional
     * expression that {@code c} lacks (the installed header predates it) is printed as not compared instead.
     *
     * @param java     C expression → the value the Java code has for it
     * @param c        what {@link #evaluate} returned
     * @param optional expressions that older headers may lack
     * @param what     the headers compared, for the message
     */
    public static void assertSameAsC(Map<String, Long> java, Map<String, Long> c, Collection<String> optional,
                                     String what) {
        List<String> mismatches = new ArrayList<>();
        List<String> absent = new ArrayList<>();
        for (Map.Entry<String, Long> e : java.entrySet()) {
            Long value = c.get(e.getKey());
            if (value == null && optional.contains(e.getKey())) {
                absent.add(e.getKey());
            } else if (!e.getValue().equals(value)) {
                mismatches.add(e.getKey() + ": java=" + e.getValue() + ", c=" + value);
            }
        }
        if (!absent.isEmpty()) {
            System.out.println("not in the installed " + what + ", not compared: " + absent);
        }
        if (!mismatches.isEmpty()) {
            fail("Java values that differ from " + what + " (" + mismatches.size() + " of " + java.size() + "): "
                    + mismatches);
        }
    }

    /** Runs {@code command} to completion and returns its output (stdout and stderr); fails naming it otherwise. */
    public static String run(List<String> command) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        try {
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(60, TimeUnit.SECONDS)) {
                fail("timed out: " + command);
            }
            if (p.exitValue() != 0) {
                fail("command failed: " + command + ", exit=" + p.exitValue() + ", output:\n" + out);
            }
            return out;
        } finally {
            p.destroyForcibly();
        }
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
