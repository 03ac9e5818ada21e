package io.jtap.formats.tool;

import io.jtap.formats.Extent;
import io.jtap.formats.Image;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;

/**
 * {@code map [-f fmt] [--output=human|json] filename}: where each range of the virtual disk comes from, with
 * qemu-img's fields {@code start}, {@code length}, {@code depth}, {@code present}, {@code zero}, {@code data} and
 * {@code offset} (the byte in the layer's file, when the data sits there unchanged). Adjacent ranges with the same
 * fields and contiguous offsets are merged, as qemu-img does.
 */
@Command(name = "map", description = "Show how the virtual disk maps to files of the backing chain.")
final class MapCommand implements Callable<Integer> {
    /** Status queries stop here so that mapping a huge data run does not build one huge extent list. */
    private static final long QUERY_BYTES = 1L << 30;

    @ParentCommand
    JtapImg tool;

    @Option(names = "-f", paramLabel = "fmt")
    String format;

    @Option(names = "--output", paramLabel = "human|json", defaultValue = "human")
    OutputFormat output;

    @Option(names = {"-U", "--force-share"}, description = "accepted for compatibility (jtap takes no locks)")
    boolean forceShare;

    @Parameters(index = "0", paramLabel = "filename")
    String filename;

    /** One mapped range; {@code offset} is -1 when not valid. */
    record Entry(long start, long length, int depth, boolean present, boolean zero, boolean data, long offset,
                 String file) {
        Entry mergeWith(Entry n) {
            boolean same = n.depth == depth && n.present == present && n.zero == zero && n.data == data
                    && n.start == start + length && java.util.Objects.equals(n.file, file)
                    && (offset < 0 ? n.offset < 0 : n.offset == offset + length);
            return same ? new Entry(start, length + n.length, depth, present, zero, data, offset, file) : null;
        }
    }

    @Override
    public Integer call() throws IOException {
        List<Entry> entries;
        try (Image image = tool.opener.openReadOnly(filename, format)) {
            entries = map(ImageChain.of(image, filename));
        }
        if (output == OutputFormat.json) {
            StringBuilder sb = new StringBuilder("[");
            for (int i = 0; i < entries.size(); i++) {
                Entry e = entries.get(i);
                sb.append(i == 0 ? "" : ",\n").append(String.format("{ \"start\": %d, \"length\": %d, \"depth\": %d,"
                        + " \"present\": %b, \"zero\": %b, \"data\": %b", e.start, e.length, e.depth, e.present,
                        e.zero, e.data));
                if (e.offset >= 0) {
                    sb.append(", \"offset\": ").append(e.offset);
                }
                sb.append('}');
            }
            tool.out.println(sb.append(']'));
        } else {
            tool.out.printf("%-16s%-16s%-16s%s%n", "Offset", "Length", "Mapped to", "File");
            for (Entry e : entries) {
                if (e.data && e.offset >= 0) {
                    tool.out.printf("%-16s%-16s%-16s%s%n", ByteSizes.hex(e.start), ByteSizes.hex(e.length),
                            ByteSizes.hex(e.offset), e.file);
                }
            }
        }
        return 0;
    }

    static List<Entry> map(ImageChain chain) throws IOException {
        List<Entry> out = new ArrayList<>();
        long size = chain.top().image().size();
        for (long off = 0; off < size; ) {
            ImageChain.Status s = chain.status(off, Math.min(QUERY_BYTES, size - off));
            Image layer = s.layer().image();
            String file = s.layer().filename();
            if (s.data()) {
                for (Extent e : layer.mapForRead(off, s.length())) {
                    long offset = e.kind() == Extent.Kind.DATA ? e.hostOffset() : -1;
                    add(out, new Entry(e.offset(), e.length(), s.depth(), true, false, true, offset, file));
                }
            } else {
                boolean raw = "raw".equals(layer.formatName()) && s.present();
                add(out, new Entry(off, s.length(), s.depth(), s.present(), true, false, raw ? off : -1,
                        raw ? file : null));
            }
            off += s.length();
        }
        return out;
    }

    private static void add(List<Entry> out, Entry e) {
        if (!out.isEmpty()) {
            Entry merged = out.get(out.size() - 1).mergeWith(e);
            if (merged != null) {
                out.set(out.size() - 1, merged);
                return;
            }
        }
        out.add(e);
    }
}
