package io.jtap.xen;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.jtap.xen.linux.IntroducedDomain;
import io.jtap.xen.linux.WireXenStore;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;

/**
 * {@link XenStoreContract} against Xen's own C xenstored (Debian's xen-utils-4.17), through {@link WireXenStore} over
 * its unix socket. xenstored runs in the foreground with its run directory in a temporary directory, under the
 * LD_PRELOAD shim of {@code native/src/test/c/xenstored-shim.c} that stands in for the hypervisor at start-up;
 * {@code scripts/fetch-xenstored.sh} unpacks the binary and builds the shim.
 *
 * <p>A socket connection is always dom0, so {@link #connectAs} makes a real domain connection: the shim maps a page
 * file of the run directory when xenstored maps a domain's interface and carries the event channel over FIFOs there;
 * the test introduces the domain (XS_INTRODUCE) and plays the guest's xenbus driver on the rings ({@link
 * IntroducedDomain}). So the contract's permission cases run against xenstored's own permission checks.
 *
 * <p>With CI=true a missing prerequisite fails the test; elsewhere it skips with the reason.
 */
class RealXenstoredTest extends XenStoreContract {
    private static Process xenstored;
    private static Path runDir;
    private static Path socket;
    private final List<WireXenStore> connections = new ArrayList<>();
    private final List<IntroducedDomain> domains = new ArrayList<>();

    @BeforeAll
    static void startXenstored() throws Exception {
        Map<String, String> found;
        try {
            found = fetch();
        } catch (IOException e) {
            unavailable(e.getMessage());
            return;
        }
        runDir = Files.createTempDirectory("jtap-xenstored-");
        socket = runDir.resolve("socket");
        Path log = runDir.resolve("xenstored.log");
        ProcessBuilder pb = new ProcessBuilder(found.get("XENSTORED"), "--no-fork",
                "--pid-file", runDir.resolve("xenstored.pid").toString(),
                "--trace-file", runDir.resolve("trace").toString());
        pb.environment().put("XENSTORED_RUNDIR", runDir.toString());
        pb.environment().put("XENSTORED_PATH", socket.toString()); // xenstored binds its socket here
        pb.environment().put("LD_PRELOAD", found.get("SHIM"));
        pb.environment().put("JTAP_XENSTORED_DOMAINS", runDir.toString()); // domain pages and event FIFOs, see shim
        pb.redirectErrorStream(true).redirectOutput(log.toFile());
        xenstored = pb.start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!Files.exists(socket) && xenstored.isAlive() && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        if (!Files.exists(socket) || !xenstored.isAlive()) {
            String output = Files.exists(log) ? Files.readString(log) : "";
            stopXenstored();
            throw new IllegalStateException("xenstored did not start: socket=" + socket + ", output:\n" + output);
        }
        System.out.println("RealXenstoredTest: xenstored " + found.get("XENSTORED") + " serving " + socket);
    }

    @AfterAll
    static void stopXenstored() throws Exception {
        if (xenstored != null) {
            xenstored.destroy();
            if (!xenstored.waitFor(5, TimeUnit.SECONDS)) {
                xenstored.destroyForcibly().waitFor();
            }
            xenstored = null;
        }
        if (runDir != null) {
            try (var files = Files.walk(runDir)) {
                files.sorted((a, b) -> b.compareTo(a)).forEach(p -> p.toFile().delete());
            }
        }
    }

    /** Runs scripts/fetch-xenstored.sh; its exit status 2 means "cannot here". */
    private static Map<String, String> fetch() throws IOException, InterruptedException {
        Path dir = Path.of("").toAbsolutePath();
        while (dir != null && !Files.exists(dir.resolve("scripts/fetch-xenstored.sh"))) {
            dir = dir.getParent();
        }
        if (dir == null) {
            throw new IOException("scripts/fetch-xenstored.sh not found above " + Path.of("").toAbsolutePath());
        }
        Process p = new ProcessBuilder("bash", dir.resolve("scripts/fetch-xenstored.sh").toString())
                .redirectError(ProcessBuilder.Redirect.INHERIT).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        int status = p.waitFor();
        if (status != 0) {
            throw new IOException("fetch-xenstored.sh exited " + status + " (reason on stderr above)");
        }
        Map<String, String> found = new HashMap<>();
        for (String line : out.split("\n")) {
            int eq = line.indexOf('=');
            if (eq > 0) {
                found.put(line.substring(0, eq), line.substring(eq + 1));
            }
        }
        if (!found.containsKey("XENSTORED") || !found.containsKey("SHIM")) {
            throw new IOException("fetch-xenstored.sh printed no XENSTORED/SHIM: output=" + out);
        }
        return found;
    }

    private static void unavailable(String reason) {
        if ("true".equals(System.getenv("CI"))) {
            throw new IllegalStateException("RealXenstoredTest must run in CI, but: " + reason);
        }
        System.out.println("RealXenstoredTest skipped: " + reason);
        Assumptions.abort(reason);
    }

    @Override
    protected XenStore connectPrivileged() throws IOException {
        WireXenStore c = WireXenStore.connectSocket(socket);
        connections.add(c);
        return c;
    }

    @Override
    protected Optional<XenStore> connectAs(int domid) throws IOException {
        IntroducedDomain d = IntroducedDomain.introduce(socket, runDir, domid);
        domains.add(d);
        connections.add(d.connection());
        return Optional.of(d.connection());
    }

    /** Releases the domains introduced for this case (their connections are closed by now). */
    @Override
    protected void afterCase() {
        try {
            for (IntroducedDomain d : domains) {
                d.close();
            }
        } catch (IOException e) {
            throw new IllegalStateException("releasing a domain failed", e);
        } finally {
            domains.clear();
        }
    }

    @Override
    protected void assertNoLeaks() {
        for (WireXenStore c : connections) {
            assertEquals(0, c.openWatchCount(), "open watches on " + c.describe());
            assertEquals(0, c.openTransactionCount(), "open transactions on " + c.describe());
        }
        assertEquals(true, xenstored.isAlive(), "xenstored died");
        connections.clear();
    }
}
