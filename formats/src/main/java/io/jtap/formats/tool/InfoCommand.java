package io.jtap.formats.tool;

import io.jtap.formats.BackingReference;
import io.jtap.formats.Image;
import io.jtap.formats.OpenOptions;
import io.jtap.formats.qcow2.Qcow2Image;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Instant;
import java.time.ZoneId;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;

/**
 * {@code info [-f fmt] [--output=human|json] [--backing-chain] [-U] filename}: qemu-img's fields and field names
 * ({@code virtual-size}, {@code filename}, {@code format}, {@code actual-size}, {@code cluster-size},
 * {@code backing-filename}, {@code full-backing-filename}, {@code backing-filename-format}, {@code format-specific},
 * {@code dirty-flag}, {@code snapshots}).
 */
@Command(name = "info", description = "Show information about an image.")
final class InfoCommand implements Callable<Integer> {
    private static final DateTimeFormatter DATE = DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss")
            .withZone(ZoneId.systemDefault());

    @ParentCommand
    JtapImg tool;

    @Option(names = "-f", paramLabel = "fmt")
    String format;

    @Option(names = "--output", paramLabel = "human|json", defaultValue = "human")
    OutputFormat output;

    @Option(names = "--backing-chain", description = "show every image of the backing chain")
    boolean backingChain;

    @Option(names = {"-U", "--force-share"}, description = "accepted for compatibility (jtap takes no locks)")
    boolean forceShare;

    @Parameters(index = "0", paramLabel = "filename")
    String filename;

    @Override
    public Integer call() throws IOException {
        List<Map<String, Object>> infos = new ArrayList<>();
        OpenOptions o = OpenOptions.defaults().withReadOnly(true).withOpenBacking(backingChain);
        try (Image image = tool.opener.open(filename, format, o)) {
            ImageChain chain = ImageChain.of(image, filename);
            for (ImageChain.Layer layer : chain.layers()) {
                infos.add(describe(layer));
                if (!backingChain) {
                    break;
                }
            }
        }
        if (output == OutputFormat.json) {
            tool.out.println(Json.pretty(backingChain ? infos : infos.get(0)));
        } else {
            for (int i = 0; i < infos.size(); i++) {
                if (i > 0) {
                    tool.out.println();
                }
                tool.out.print(human(infos.get(i)));
            }
        }
        return 0;
    }

    private static Map<String, Object> describe(ImageChain.Layer layer) throws IOException {
        Image image = layer.image();
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("virtual-size", image.size());
        m.put("filename", layer.filename());
        Qcow2HeaderFields q = null;
        if (image instanceof Qcow2Image qi) {
            q = Qcow2HeaderFields.read(Path.of(layer.filename()));
            m.put("cluster-size", qi.clusterSize());
        }
        m.put("format", image.formatName());
        m.put("actual-size", DiskUsage.bytes(Path.of(layer.filename())));
        if (q != null) {
            Map<String, Object> data = new LinkedHashMap<>();
            data.put("compat", q.compat());
            data.put("compression-type", q.compressionName());
            if (q.version() >= 3) {
                data.put("lazy-refcounts", q.lazyRefcounts());
            }
            data.put("refcount-bits", q.refcountBits());
            if (q.version() >= 3) {
                data.put("corrupt", q.corrupt());
                data.put("extended-l2", q.extendedL2());
            }
            Map<String, Object> fs = new LinkedHashMap<>();
            fs.put("type", "qcow2");
            fs.put("data", data);
            m.put("format-specific", fs);
        }
        if (image.backing().isPresent()) {
            BackingReference b = image.backing().get();
            m.put("backing-filename", b.name());
            m.put("full-backing-filename", ImageChain.backingDisplayName(layer.filename(), b.name()));
            b.format().ifPresent(f -> m.put("backing-filename-format", f));
        }
        if (image instanceof Qcow2Image qi && !qi.snapshots().isEmpty()) {
            m.put("snapshots", SnapshotCommand.rows(qi.snapshots()));
        }
        m.put("dirty-flag", q != null && q.dirty());
        return m;
    }

    @SuppressWarnings("unchecked")
    private static String human(Map<String, Object> m) {
        StringBuilder sb = new StringBuilder();
        long size = (Long) m.get("virtual-size");
        sb.append("image: ").append(m.get("filename")).append('\n');
        sb.append("file format: ").append(m.get("format")).append('\n');
        sb.append("virtual size: ").append(ByteSizes.format(size)).append(" (").append(size).append(" bytes)\n");
        sb.append("disk size: ").append(ByteSizes.format((Long) m.get("actual-size"))).append('\n');
        if (m.containsKey("cluster-size")) {
            sb.append("cluster_size: ").append(m.get("cluster-size")).append('\n');
        }
        if (m.containsKey("backing-filename")) {
            sb.append("backing file: ").append(m.get("backing-filename"));
            if (!m.get("backing-filename").equals(m.get("full-backing-filename"))) {
                sb.append(" (actual path: ").append(m.get("full-backing-filename")).append(')');
            }
            sb.append('\n');
        }
        if (m.containsKey("backing-filename-format")) {
            sb.append("backing file format: ").append(m.get("backing-filename-format")).append('\n');
        }
        if (m.containsKey("snapshots")) {
            sb.append("Snapshot list:\n");
            sb.append(SnapshotCommand.table((List<Map<String, Object>>) m.get("snapshots")));
        }
        if (m.containsKey("format-specific")) {
            Map<String, Object> data = (Map<String, Object>) ((Map<String, Object>) m.get("format-specific"))
                    .get("data");
            sb.append("Format specific information:\n");
            for (Map.Entry<String, Object> e : data.entrySet()) {
                sb.append("    ").append(e.getKey().replace('-', ' ')).append(": ").append(e.getValue()).append('\n');
            }
        }
        return sb.toString();
    }

    static String date(long seconds) {
        return DATE.format(Instant.ofEpochSecond(seconds));
    }
}
