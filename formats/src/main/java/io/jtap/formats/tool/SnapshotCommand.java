package io.jtap.formats.tool;

import io.jtap.formats.Image;
import io.jtap.formats.OpenOptions;
import io.jtap.formats.qcow2.Qcow2Image;
import io.jtap.formats.qcow2.Qcow2Snapshot;
import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;

/**
 * {@code snapshot [-l | -c name | -d name | -a name] [-f fmt] filename}. Listing works for qcow2; creating,
 * deleting and applying internal snapshots needs snapshot writing in the format layer, which jtap does not have yet:
 * those report so and exit 1.
 */
@Command(name = "snapshot", description = "List, create, apply or delete internal snapshots.")
final class SnapshotCommand implements Callable<Integer> {
    @ParentCommand
    JtapImg tool;

    static final class Action {
        @Option(names = "-l", description = "list snapshots")
        boolean list;
        @Option(names = "-c", paramLabel = "snapshot", description = "create a snapshot")
        String create;
        @Option(names = "-d", paramLabel = "snapshot", description = "delete a snapshot")
        String delete;
        @Option(names = "-a", paramLabel = "snapshot", description = "apply (revert to) a snapshot")
        String apply;
    }

    @ArgGroup(exclusive = true, multiplicity = "0..1")
    Action action;

    @Option(names = "-f", paramLabel = "fmt")
    String format;

    @Option(names = "-q", description = "quiet")
    boolean quiet;

    @Option(names = {"-U", "--force-share"}, description = "accepted for compatibility (jtap takes no locks)")
    boolean forceShare;

    @Parameters(index = "0", paramLabel = "filename")
    String filename;

    @Override
    public Integer call() throws IOException {
        if (action == null) {
            throw new ToolException(1, "snapshot needs one of -l, -c, -d, -a");
        }
        if (!action.list) {
            String what = action.create != null ? "create" : action.delete != null ? "delete" : "apply";
            String name = action.create != null ? action.create : action.delete != null ? action.delete
                    : action.apply;
            throw new ToolException(1, "Could not " + what + " snapshot '" + name + "': writing internal snapshots "
                    + "is not supported by jtap yet (listing is: snapshot -l)");
        }
        try (Image image = tool.opener.open(filename, format, OpenOptions.defaults().withReadOnly(true)
                .withOpenBacking(false))) {
            List<Map<String, Object>> rows = new ArrayList<>();
            if (image instanceof Qcow2Image q) {
                for (Qcow2Snapshot s : q.snapshots()) {
                    Map<String, Object> m = new LinkedHashMap<>();
                    m.put("id", s.id());
                    m.put("name", s.name());
                    m.put("date-sec", s.dateSeconds());
                    if (s.diskSize() >= 0) {
                        m.put("disk-size", s.diskSize());
                    }
                    rows.add(m);
                }
            } else {
                throw new ToolException(1, "Could not list snapshots of '" + filename + "': format "
                        + image.formatName() + " has no internal snapshots");
            }
            if (!rows.isEmpty()) {
                tool.out.println("Snapshot list:");
                tool.out.print(table(rows));
            }
        }
        return 0;
    }

    /** The snapshot table: ID, TAG, DATE and the disk size at snapshot time (jtap does not read VM state). */
    static String table(List<Map<String, Object>> rows) {
        StringBuilder sb = new StringBuilder(String.format("%-10s%-18s%19s %12s%n", "ID", "TAG", "DATE",
                "DISK SIZE"));
        for (Map<String, Object> r : rows) {
            Object disk = r.get("disk-size");
            sb.append(String.format("%-10s%-18s%19s %12s%n", r.get("id"), r.get("name"),
                    InfoCommand.date((Long) r.get("date-sec")), disk == null ? "-" : ByteSizes.format((Long) disk)));
        }
        return sb.toString();
    }
}
