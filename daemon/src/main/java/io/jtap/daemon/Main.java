package io.jtap.daemon;

import java.io.PrintStream;
import java.util.Arrays;

/**
 * {@code bin/jtap}: the daemon's command line. Subcommands:
 *
 * <ul>
 *   <li>{@code demo} — the main job without a hypervisor: runs on the embedded simulated Xen and reports what was
 *       served.</li>
 * </ul>
 */
public final class Main {
    private Main() {
    }

    public static void main(String[] args) {
        System.exit(run(args, System.out, System.err));
    }

    static int run(String[] args, PrintStream out, PrintStream err) {
        if (args.length == 0 || args[0].equals("-h") || args[0].equals("--help")) {
            usage(args.length == 0 ? err : out);
            return args.length == 0 ? 1 : 0;
        }
        String[] rest = Arrays.copyOfRange(args, 1, args.length);
        try {
            switch (args[0]) {
                case "demo":
                    return Demo.run(rest, out, err);
                default:
                    err.println("jtap: unknown command: " + args[0]);
                    usage(err);
                    return 1;
            }
        } catch (Exception e) {
            err.println("jtap " + args[0] + ": " + e.getMessage());
            return 2;
        }
    }

    private static void usage(PrintStream s) {
        s.println("usage: jtap <command> [options]");
        s.println("commands:");
        s.println("  demo [--requests=N]   run on the simulated Xen: a simulated guest's requests are served and reported");
    }
}
