package io.jtap.tap;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/**
 * A network namespace of a test's own ({@code ip netns add jtap-test-<random>}), and the processes run inside it. All
 * traffic of the TAP tests stays inside such namespaces. {@link #close()} kills what it started and deletes the
 * namespace; it is idempotent and safe to call from {@code @AfterAll} after a failure.
 */
public final class Netns implements AutoCloseable {
    static final Duration COMMAND_TIMEOUT = Duration.ofSeconds(20);

    final String name;
    private final List<NsProcess> started = Collections.synchronizedList(new ArrayList<>());
    private boolean closed;

    private Netns(String name) {
        this.name = name;
    }

    /** A short random hex suffix for names that must not collide between concurrent runs (namespaces, links). */
    public static String randomSuffix() {
        byte[] random = new byte[3];
        new SecureRandom().nextBytes(random);
        return HexFormat.of().formatHex(random);
    }

    /** Whether {@code command} runs and exits 0 on the host (for example {@code ip -V}). */
    public static boolean commandWorks(String... command) {
        try {
            run(command);
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    public static Netns create() throws IOException {
        byte[] random = new byte[4];
        new SecureRandom().nextBytes(random);
        Netns ns = new Netns("jtap-test-" + HexFormat.of().formatHex(random));
        run("ip", "netns", "add", ns.name);
        return ns;
    }

    /** Moves interface {@code link} from the caller's namespace into this one. */
    public void adopt(String link) throws IOException {
        run("ip", "link", "set", "dev", link, "netns", name);
    }

    /** Runs {@code command} inside this namespace and returns its output; fails on a non-zero exit or a timeout. */
    public String exec(String... command) throws IOException {
        return run(prepend(command));
    }

    /** Starts {@code command} inside this namespace; {@link #close()} kills it if it is still running. */
    public NsProcess start(String... command) throws IOException {
        NsProcess process = new NsProcess(String.join(" ", command), new ProcessBuilder(prepend(command))
                .redirectErrorStream(true).start());
        started.add(process);
        return process;
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

    /** Runs a command on the host with a bounded wait; returns stdout+stderr, fails on a non-zero exit. */
    public static String run(String... command) throws IOException {
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        try {
            if (!process.waitFor(COMMAND_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)) {
                process.destroyForcibly();
                throw new IOException("command timed out: timeout=" + COMMAND_TIMEOUT + ", command="
                        + Arrays.toString(command));
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
            for (NsProcess process : started) {
                process.kill();
            }
        }
        run("ip", "netns", "del", name);
    }

    /** A process inside the namespace whose output lines are collected as they come. */
    public static final class NsProcess {
        private final String description;
        private final Process process;
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

        /** The next output line starting with {@code prefix} (others are skipped but kept in the transcript). */
        public String awaitLine(String prefix, Duration timeout) {
            long deadline = System.nanoTime() + timeout.toNanos();
            Predicate<String> matches = line -> line.startsWith(prefix);
            try {
                while (true) {
                    long leftNs = deadline - System.nanoTime();
                    String line = leftNs <= 0 ? null : lines.poll(leftNs, TimeUnit.NANOSECONDS);
                    if (line == null) {
                        throw new AssertionError("no line starting with \"" + prefix + "\" within " + timeout + ": "
                                + this);
                    }
                    if (matches.test(line)) {
                        return line;
                    }
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new UncheckedIOException(new IOException("interrupted waiting for " + prefix, e));
            }
        }

        /** Waits for the process to end and returns its exit code. */
        public int awaitExit(Duration timeout) throws InterruptedException {
            if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                throw new AssertionError("process did not exit within " + timeout + ": " + this);
            }
            return process.exitValue();
        }

        public void kill() {
            process.destroyForcibly();
        }

        @Override
        public String toString() {
            return "NsProcess{" + description + ", alive=" + process.isAlive() + ", output=" + transcript + "}";
        }
    }
}
