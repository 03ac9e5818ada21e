package io.jtap.netback;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;

/**
 * A network namespace of the test's own and the processes run in it, plus the CI rule: with {@code CI=true} a missing
 * prerequisite fails the test, elsewhere it skips with the reason. {@link #close()} kills what it started and deletes
 * the namespace.
 */
final class NetnsSupport implements AutoCloseable {
    static final Duration COMMAND_TIMEOUT = Duration.ofSeconds(20);

    final String name;
    private final List<NsProcess> started = Collections.synchronizedList(new ArrayList<>());
    private boolean closed;

    private NetnsSupport(String name) {
        this.name = name;
    }

    static String randomSuffix() {
        byte[] r = new byte[3];
        new SecureRandom().nextBytes(r);
        return HexFormat.of().formatHex(r);
    }

    static NetnsSupport create() throws IOException {
        NetnsSupport ns = new NetnsSupport("jtap-nb-" + randomSuffix());
        run("ip", "netns", "add", ns.name);
        return ns;
    }

    static void require(boolean satisfied, String reason) {
        if (satisfied) {
            return;
        }
        if ("true".equalsIgnoreCase(System.getenv("CI"))) {
            fail("prerequisite missing in CI (CI=true): " + reason);
        }
        System.out.println("SKIPPED (not in CI): " + reason);
        Assumptions.assumeTrue(false, reason);
    }

    static boolean isRoot() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("Uid:")) {
                    return line.substring(4).trim().split("\\s+")[1].equals("0");
                }
            }
        } catch (IOException e) {
            return false;
        }
        return false;
    }

    static boolean commandWorks(String... command) {
        try {
            run(command);
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    void adopt(String link) throws IOException {
        run("ip", "link", "set", "dev", link, "netns", name);
    }

    String exec(String... command) throws IOException {
        return run(prepend(command));
    }

    NsProcess start(String... command) throws IOException {
        NsProcess p = new NsProcess(String.join(" ", command), new ProcessBuilder(prepend(command))
                .redirectErrorStream(true).start());
        started.add(p);
        return p;
    }

    private String[] prepend(String... command) {
        String[] full = new String[command.length + 4];
        full[0] = "ip";
        full[1] = "netns";
        full[2] = "exec";
        full[3] = name;
        System.arraycopy(command, 0, full, 4, command.length);
        return full;
    }

    static String run(String... command) throws IOException {
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        try {
            if (!process.waitFor(COMMAND_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)) {
                process.destroyForcibly();
                throw new IOException("command timed out: command=" + Arrays.toString(command));
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new IOException("interrupted: command=" + Arrays.toString(command), e);
        }
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (process.exitValue() != 0) {
            throw new IOException("command failed: exit=" + process.exitValue() + ", command="
                    + Arrays.toString(command) + ", output=" + output.trim());
        }
        return output;
    }

    @Override
    public synchronized void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        synchronized (started) {
            for (NsProcess p : started) {
                p.process.destroyForcibly();
                try {
                    p.process.waitFor(5, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        }
        run("ip", "netns", "del", name);
    }

    /** A process in the namespace whose output lines are collected as they come. */
    static final class NsProcess {
        private final String description;
        final Process process;
        private final LinkedBlockingQueue<String> lines = new LinkedBlockingQueue<>();
        private final List<String> transcript = Collections.synchronizedList(new ArrayList<>());

        NsProcess(String description, Process process) {
            this.description = description;
            this.process = process;
            Thread reader = new Thread(() -> {
                try (BufferedReader in = new BufferedReader(new InputStreamReader(process.getInputStream(),
                        StandardCharsets.UTF_8))) {
                    for (String line = in.readLine(); line != null; line = in.readLine()) {
                        transcript.add(line);
                        lines.add(line);
                    }
                } catch (IOException e) {
                    transcript.add("(output reader failed: " + e + ")");
                }
            }, "netns-output");
            reader.setDaemon(true);
            reader.start();
        }

        String awaitLine(String prefix, Duration timeout) throws InterruptedException {
            long deadline = System.nanoTime() + timeout.toNanos();
            while (true) {
                long leftNs = deadline - System.nanoTime();
                String line = leftNs <= 0 ? null : lines.poll(leftNs, TimeUnit.NANOSECONDS);
                if (line == null) {
                    throw new AssertionError("no line starting with \"" + prefix + "\" within " + timeout + ": "
                            + this);
                }
                if (line.startsWith(prefix)) {
                    return line;
                }
            }
        }

        int awaitExit(Duration timeout) throws InterruptedException {
            if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                throw new AssertionError("process did not exit within " + timeout + ": " + this);
            }
            return process.exitValue();
        }

        @Override
        public String toString() {
            return "NsProcess{" + description + ", alive=" + process.isAlive() + ", output=" + transcript + "}";
        }
    }
}
