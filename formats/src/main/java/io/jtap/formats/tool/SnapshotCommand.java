package io.jtap.formats.tool;

import io.jtap.formats.Image;
import io.jtap.formats.OpenOptions;
import io.jtap.formats.qcow2.Qcow2Image;
import io.jtap.formats.qcow2.Qcow2Snapshot;
import java.io.IOException;
import java.nio.file.FileAlreadyExistsException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;

/**
 * {@code snapshot [-l | -c name | -d name | -a name] [-f fmt] filename}, as qemu-img 7.2 (which, without an action,
 * opens the image and does nothing); errors exit 1 with qemu-img's messages ({@code Could not delete snapshot 'x':
 * snapshot not found}, ...). Images without internal snapshots (raw) list nothing and refuse the rest as qemu-img
 * does. The list is qemu-img's table (ID, TAG, VM SIZE, DATE, VM CLOCK, ICOUNT), byte for byte.
 *
 * <p>Lookups follow qemu-img: {@code -a} takes an id, else a name ({@code find_snapshot_by_id_or_name}); {@code -d}
 * takes a name, and jtap also accepts an id where no snapshot has that name (qemu-img reports "snapshot not found").
 * One deliberate difference: {@code -c} refuses a name that exists (qemu-img creates a second snapshot of that name,
 * after which {@code -a} and {@code -d} pick the first silently).
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
            // qemu-img 7.2 opens the image and does nothing
            tool.opener.open(filename, format, OpenOptions.defaults().withReadOnly(true).withOpenBacking(false))
                    .close();
            return 0;
        }
        if (action.list) {
            return list();
        }
        // Metadata only: the backing chain is not needed (qemu-img: BDRV_O_NO_BACKING).
        try (Image image = tool.opener.open(filename, format, OpenOptions.defaults().withOpenBacking(false))) {
            Qcow2Image q = image instanceof Qcow2Image qi ? qi : null;
            if (action.create != null) {
                create(q, action.create);
            } else if (action.delete != null) {
                delete(q, action.delete);
            } else {
                apply(q, action.apply);
            }
        }
        return 0;
    }

    private int list() throws IOException {
        try (Image image = tool.opener.open(filename, format, OpenOptions.defaults().withReadOnly(true)
                .withOpenBacking(false))) {
            if (image instanceof Qcow2Image q && !q.snapshots().isEmpty()) {
                tool.out.println("Snapshot list:");
                tool.out.print(table(rows(q.snapshots())));
            }
        }
        return 0;
    }

    private static void create(Qcow2Image image, String name) {
        if (image == null) {
            throw new ToolException(1, "Could not create snapshot '" + name + "': -95 (Operation not supported)");
        }
        try {
            image.createSnapshot(name);
        } catch (FileAlreadyExistsException e) {
            throw new ToolException(1, "Could not create snapshot '" + name + "': a snapshot named '" + name
                    + "' exists (id " + image.snapshots().stream().filter(s -> s.name().equals(name)).findFirst()
                    .map(Qcow2Snapshot::id).orElse("?") + ")", e);
        } catch (IOException | IllegalArgumentException e) {
            throw new ToolException(1, "Could not create snapshot '" + name + "': " + e.getMessage(), e);
        }
    }

    private static void delete(Qcow2Image image, String nameOrId) {
        Optional<Qcow2Snapshot> target = image == null ? Optional.empty()
                : image.snapshots().stream().filter(s -> s.name().equals(nameOrId)).findFirst()
                .or(() -> image.snapshots().stream().filter(s -> s.id().equals(nameOrId)).findFirst());
        if (target.isEmpty()) {
            throw new ToolException(1, "Could not delete snapshot '" + nameOrId + "': snapshot not found");
        }
        try {
            image.deleteSnapshot(target.get().id());
        } catch (IOException e) {
            throw new ToolException(1, "Could not delete snapshot '" + nameOrId + "': " + e.getMessage(), e);
        }
    }

    private static void apply(Qcow2Image image, String idOrName) {
        if (image == null) {
            throw new ToolException(1, "Could not apply snapshot '" + idOrName
                    + "': Block driver does not support snapshots");
        }
        Optional<Qcow2Snapshot> target = image.findSnapshot(idOrName);
        if (target.isEmpty()) {
            throw new ToolException(1, "Could not apply snapshot '" + idOrName
                    + "': Failed to load snapshot: No such file or directory");
        }
        try {
            image.applySnapshot(target.get().id());
        } catch (IOException e) {
            throw new ToolException(1, "Could not apply snapshot '" + idOrName + "': Failed to load snapshot: "
                    + e.getMessage(), e);
        }
    }

    /** The fields of {@code qemu-img info --output=json}'s snapshot entries. */
    static List<Map<String, Object>> rows(List<Qcow2Snapshot> snapshots) {
        List<Map<String, Object>> rows = new ArrayList<>();
        for (Qcow2Snapshot s : snapshots) {
            Map<String, Object> m = new LinkedHashMap<>();
            if (s.icount() != -1) {
                m.put("icount", s.icount());
            }
            m.put("vm-clock-nsec", s.vmClockNanos() % 1_000_000_000L);
            m.put("name", s.name());
            m.put("date-sec", s.dateSeconds());
            m.put("date-nsec", (long) s.dateNanos());
            m.put("vm-clock-sec", s.vmClockNanos() / 1_000_000_000L);
            m.put("id", s.id());
            m.put("vm-state-size", s.vmStateSize());
            rows.add(m);
        }
        return rows;
    }

    /** The snapshot table as qemu-img prints it ({@code bdrv_snapshot_dump}): ID, TAG, VM SIZE, DATE, VM CLOCK. */
    static String table(List<Map<String, Object>> rows) {
        StringBuilder sb = new StringBuilder(String.format("%-10s%-17s%8s%20s%13s%11s%n", "ID", "TAG", "VM SIZE",
                "DATE", "VM CLOCK", "ICOUNT"));
        for (Map<String, Object> r : rows) {
            long clockSeconds = (Long) r.get("vm-clock-sec");
            long clockMillis = (Long) r.get("vm-clock-nsec") / 1_000_000;
            String clock = String.format("%02d:%02d:%02d.%03d", clockSeconds / 3600, clockSeconds / 60 % 60,
                    clockSeconds % 60, clockMillis);
            Object icount = r.get("icount");
            sb.append(String.format("%-9s %-16s %8s%20s%13s%11s%n", r.get("id"), r.get("name"),
                    ByteSizes.format((Long) r.get("vm-state-size")), InfoCommand.date((Long) r.get("date-sec")),
                    clock, icount == null ? "" : icount));
        }
        return sb.toString();
    }
}
