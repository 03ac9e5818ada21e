package io.jtap.daemon;

import io.jtap.daemon.VbdToolstack.Device;
import io.jtap.daemon.VbdToolstack.Observed;
import io.jtap.daemon.VbdToolstack.ToolstackException;
import io.jtap.xen.XenStore;
import io.jtap.xen.XenbusState;
import io.jtap.xen.sim.SimulatedXen;

import java.io.PrintStream;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code jtap detach}: takes a disk away from a guest as libxl does for {@code xl block-detach}: the backend's
 * {@code online} = 0 and {@code state} = Closing, a wait for the backend to reach Closed ({@code jtap serve} answers
 * the requests in flight, unmaps the rings and closes), then both directories removed, upon which jtap serve closes
 * the image. With {@code --force} the directories are removed without waiting; when the wait times out they are
 * removed anyway and the command fails, saying so (libxl, too, forces the removal after its timeout).
 *
 * <p>The directories come from the options alone (backend domain, kind, guest, vdev), never from the guest's
 * frontend nodes, which the guest may write. A guest that no longer exists is fine: whatever is left is removed.
 */
@Command(name = "jtap detach", sortOptions = false,
        description = {"Detach a disk from a guest without a toolstack: take the backend offline, wait until it is"
                + " Closed, and remove the frontend and backend directories, as libxl does for xl block-detach."},
        footer = {"", "Example:", "  jtap detach --xen=linux --domid 5 --vdev xvdb"})
final class DetachCommand implements Callable<Integer> {
    @Mixin
    ToolstackOptions common;

    @Option(names = {"-h", "--help"}, order = 20, usageHelp = true, description = "show this help and exit")
    boolean help;

    @Option(names = "--vdev", order = 3, paramLabel = "xvdb|51728", required = true, description = "the guest's device")
    String vdev;

    @Option(names = "--force", order = 4,
            description = "remove the directories without waiting for the backend to close")
    boolean force;

    private final PrintStream out;
    private final SimulatedXen world;

    /** @param world the simulated Xen to use for {@code --xen=simulated} (in-process callers), or null */
    DetachCommand(PrintStream out, SimulatedXen world) {
        this.out = out;
        this.world = world;
    }

    @Override
    public Integer call() throws Exception {
        common.checkXen();
        Vdev v;
        try {
            v = Vdev.parse(vdev);
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage().replace("bad vdev:", "bad --vdev:"));
        }
        Device d = common.device(v);
        Duration timeout = common.timeout();
        String what = "domid=" + d.domid() + ", vdev=" + v.name() + ", devid=" + v.devid() + ", backend="
                + d.backendPath();
        try (ToolstackOptions.ToolstackConnection connection = common.connect(world)) {
            XenStore xs = connection.xs();
            if (!VbdToolstack.exists(xs, d)) {
                throw new ToolstackException("no such device: " + what + ", frontend=" + d.frontendPath()
                        + " (neither directory exists)");
            }
            Optional<XenbusState> before = VbdToolstack.backendState(xs, d);
            String how;
            boolean timedOut = false;
            if (before.isEmpty()) {
                how = "no backend directory, only the frontend's";
            } else if (before.get() == XenbusState.Closed) {
                how = "the backend was Closed already";
            } else if (before.get().value() < XenbusState.InitWait.value()) {
                how = "no backend had picked the device up (state=" + before.get() + ")";
            } else if (!VbdToolstack.setOffline(xs, d)) {
                how = "the backend directory vanished meanwhile";
            } else if (force) {
                how = "forced: removed without waiting for the backend to close (state was " + before.get() + ")";
            } else {
                Observed seen = VbdToolstack.awaitBackend(xs, d, s -> s == XenbusState.Closed, timeout);
                if (seen.reached()) {
                    how = "the backend closed: state=" + seen.describe() + ", waited_ms=" + seen.waited().toMillis();
                } else if (seen.state().isEmpty()) {
                    how = "the backend directory vanished while waiting, waited_ms=" + seen.waited().toMillis();
                } else {
                    timedOut = true;
                    how = "the backend did not reach Closed in " + timeout.toMillis() + " ms (state="
                            + seen.describe() + "), removed anyway";
                }
            }
            List<String> removed = VbdToolstack.remove(xs, d);
            String line = what + ", " + how + ", removed="
                    + (removed.isEmpty() ? "nothing" : String.join(" ", removed));
            if (timedOut) {
                throw new ToolstackException(line);
            }
            out.println("jtap detach: detached: " + line);
            return 0;
        }
    }
}
