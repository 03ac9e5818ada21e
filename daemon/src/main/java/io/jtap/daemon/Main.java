package io.jtap.daemon;

import io.jtap.xen.XenPlatform;
import io.jtap.xen.linux.LinuxXenPlatform;
import io.jtap.xen.sim.SimulatedXen;

import java.io.PrintStream;
import java.util.Arrays;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * {@code bin/jtap}: the daemon's command line. Subcommands:
 *
 * <ul>
 *   <li>{@code demo} — the main job without a hypervisor: runs on the embedded simulated Xen and reports what was
 *       served.</li>
 *   <li>{@code serve} — the block backend for every device the toolstack creates under this domain's
 *       {@code backend/<kind>}, until the process is stopped ({@link ServeOptions}).</li>
 * </ul>
 */
public final class Main {
    private Main() {
    }

    public static void main(String[] args) {
        System.exit(run(args, System.out, System.err, new CountDownLatch(1)));
    }

    static int run(String[] args, PrintStream out, PrintStream err) {
        return run(args, out, err, new CountDownLatch(1));
    }

    /** Runs a command; {@code stop} ends {@code serve} (so does the JVM's shutdown, e.g. SIGTERM). */
    static int run(String[] args, PrintStream out, PrintStream err, CountDownLatch stop) {
        if (args.length == 0 || args[0].equals("-h") || args[0].equals("--help")) {
            usage(args.length == 0 ? err : out);
            return args.length == 0 ? 1 : 0;
        }
        String[] rest = Arrays.copyOfRange(args, 1, args.length);
        try {
            switch (args[0]) {
                case "demo":
                    return Demo.run(rest, out, err);
                case "serve":
                    return serve(ServeOptions.parse(Arrays.asList(rest)), out, stop);
                default:
                    err.println("jtap: unknown command: " + args[0]);
                    usage(err);
                    return 1;
            }
        } catch (UsageException e) {
            err.println("jtap " + args[0] + ": " + e.getMessage());
            err.println(ServeOptions.USAGE);
            return 2;
        } catch (Exception | LinkageError e) {
            err.println("jtap " + args[0] + ": " + e.getMessage());
            return 2;
        }
    }

    /** Serves every device under this domain's {@code backend/<kind>} until {@code stop}. */
    private static int serve(ServeOptions options, PrintStream out, CountDownLatch stop) throws Exception {
        SimulatedXen simulated = options.xen().equals("simulated") ? new SimulatedXen() : null;
        XenPlatform platform = simulated != null ? simulated.platform(SimulatedXen.DOM0)
                : options.domid().isPresent() ? LinuxXenPlatform.open(options.domid().getAsInt())
                : LinuxXenPlatform.open();
        CountDownLatch closed = new CountDownLatch(1);
        Thread hook = new Thread(() -> {
            stop.countDown();
            try {
                closed.await(60, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "jtap-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        try (Backends backends = Backends.start(platform, options, simulated != null)) {
            for (String line : backends.describe(platform, options)) {
                out.println("jtap serve: " + line);
            }
            stop.await();
            out.println("jtap serve: stopping, devices=" + (backends.blkback() == null ? 0
                    : backends.blkback().devices().size()) + ", vifs=" + (backends.netback() == null ? 0
                    : backends.netback().vifs().size()));
        } finally {
            if (simulated != null) {
                simulated.close();
            }
            closed.countDown();
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException e) {
                // the JVM is shutting down and the hook is running
            }
        }
        return 0;
    }

    private static void usage(PrintStream s) {
        s.println("usage: jtap <command> [options]");
        s.println("commands:");
        s.println("  demo [--disk-mib=N] [--frames=N] [--image=PATH]");
        s.println("                        the main job on the simulated Xen: a guest gets a qcow2 disk and a NIC from");
        s.println("                        jtap, does verified IO over both, and jtap reports what it served");
        s.println("  serve [options]       serve every block and network device the toolstack creates for this");
        s.println("                        domain (backend/<kind> and backend/vif) until stopped; see below");
        s.println(ServeOptions.USAGE);
    }
}
