package io.jtap.daemon;

import io.jtap.formats.ImageFormats;
import io.jtap.xen.XenPlatform;
import io.jtap.xen.linux.LinuxXenPlatform;
import io.jtap.xen.sim.SimulatedXen;

import java.io.PrintStream;
import java.io.PrintWriter;
import java.util.Arrays;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine;

/**
 * {@code bin/jtap}: the daemon's command line. Subcommands:
 *
 * <ul>
 *   <li>{@code demo} — the main job without a hypervisor: runs on the embedded simulated Xen and reports what was
 *       served.</li>
 *   <li>{@code serve} — the block backend for every device the toolstack creates under this domain's
 *       {@code backend/<kind>}, until the process is stopped ({@link ServeOptions}).</li>
 *   <li>{@code attach}, {@code detach} — the toolstack's part for a disk of a running guest, for use without a
 *       toolstack ({@link AttachCommand}, {@link DetachCommand}).</li>
 * </ul>
 *
 * <p>Exit codes of attach and detach: 0 done, 1 failed (the message on stderr names what), 2 usage.
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
        return run(args, out, err, stop, null);
    }

    /**
     * Runs a command in-process; with {@code --xen=simulated}, {@code serve}, {@code attach} and {@code detach} use
     * {@code world} (when not null, and without closing it) instead of a simulated Xen of their own, so that a test
     * can run the daemon and the commands in one world.
     */
    static int run(String[] args, PrintStream out, PrintStream err, CountDownLatch stop, SimulatedXen world) {
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
                    return serve(ServeOptions.parse(Arrays.asList(rest)), out, stop, world);
                case "attach":
                    return picocli("attach", new AttachCommand(out, err, world, ImageFormats.defaults()), rest, out,
                            err);
                case "detach":
                    return picocli("detach", new DetachCommand(out, world), rest, out, err);
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

    /**
     * Runs a picocli command: a bad option or value is a usage error (2, followed by a pointer to --help), a failure
     * is 1, each as one line {@code jtap <name>: what went wrong} on stderr.
     */
    private static int picocli(String name, Callable<Integer> command, String[] args, PrintStream out,
                               PrintStream err) {
        CommandLine cl = new CommandLine(command);
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        cl.setParameterExceptionHandler((ex, a) -> {
            err.println("jtap " + name + ": " + ex.getMessage());
            err.println("Try 'jtap " + name + " --help' for more information");
            return 2;
        });
        cl.setExecutionExceptionHandler((ex, c, parsed) -> {
            err.println("jtap " + name + ": " + ex.getMessage());
            if (ex instanceof UsageException) {
                err.println("Try 'jtap " + name + " --help' for more information");
                return 2;
            }
            return 1;
        });
        return cl.execute(args);
    }

    /** Serves every device under this domain's {@code backend/<kind>} until {@code stop}. */
    private static int serve(ServeOptions options, PrintStream out, CountDownLatch stop, SimulatedXen world)
            throws Exception {
        boolean ownWorld = options.xen().equals("simulated") && world == null;
        SimulatedXen simulated = !options.xen().equals("simulated") ? null : ownWorld ? new SimulatedXen() : world;
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
            if (ownWorld) {
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
        s.println("                        the main job on the simulated Xen: a guest gets a qcow2 disk and a NIC");
        s.println("                        from jtap, does verified IO over both, and jtap reports what it served");
        s.println("  serve [options]       serve every block and network device the toolstack creates for this");
        s.println("                        domain (backend/<kind> and backend/vif) until stopped; see below");
        s.println("  attach --domid D --target FORMAT:PATH [--vdev xvdb] [options]");
        s.println("                        give a running guest a disk served by jtap serve, without a toolstack");
        s.println("  detach --domid D --vdev xvdb [--force] [options]");
        s.println("                        take it away again (jtap attach --help, jtap detach --help)");
        s.println(ServeOptions.USAGE);
    }
}
