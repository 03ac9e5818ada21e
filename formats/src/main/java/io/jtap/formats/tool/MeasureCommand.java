package io.jtap.formats.tool;

import io.jtap.formats.Image;
import java.io.IOException;
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
 * {@code measure [--output=human|json] [-O fmt] [-o options] (--size N | [-f fmt] filename)}: the file size a new
 * image needs ("required": metadata plus the clusters the source's data touches) and would need fully allocated,
 * computed as QEMU's {@code qcow2_measure} and {@code raw_measure} do.
 */
@Command(name = "measure", description = "Calculate the file size needed for a new image.")
final class MeasureCommand implements Callable<Integer> {
    @ParentCommand
    JtapImg tool;

    @Option(names = "--size", paramLabel = "size", description = "virtual size of a new image")
    String size;

    @Option(names = "-f", paramLabel = "fmt", description = "source image format")
    String format;

    @Option(names = "-O", paramLabel = "output_fmt", description = "target format (default raw)")
    String outputFormat = "raw";

    @Option(names = "-o", paramLabel = "options", description = "target format options")
    List<String> options = new ArrayList<>();

    @Option(names = "--output", paramLabel = "human|json", defaultValue = "human")
    OutputFormat output;

    @Option(names = {"-U", "--force-share"}, description = "accepted for compatibility (jtap takes no locks)")
    boolean forceShare;

    @Parameters(index = "0", arity = "0..1", paramLabel = "filename")
    String filename;

    @Override
    public Integer call() throws IOException {
        if ((size == null) == (filename == null)) {
            throw new ToolException(1, size == null ? "Either --size N or one filename must be specified."
                    : "--size N cannot be used together with a filename.");
        }
        tool.opener.format(outputFormat);
        Map<String, String> o = OptionList.parse(options);
        int clusterSize = (int) ByteSizes.parse("cluster_size", o.getOrDefault("cluster_size", "65536"));
        int refcountBits = Integer.parseInt(o.getOrDefault("refcount_bits", "16"));
        boolean extendedL2 = "on".equals(o.get("extended_l2"));
        String prealloc = o.getOrDefault("preallocation", "off");
        boolean fullPrealloc = prealloc.equals("full") || prealloc.equals("falloc");
        long virtualSize;
        long dataBytes;
        if (size != null) {
            virtualSize = roundUp(ByteSizes.parse("size", size), 512);
            dataBytes = 0;
        } else {
            try (Image image = tool.opener.openReadOnly(filename, format)) {
                virtualSize = roundUp(image.size(), 512);
                dataBytes = allocatedClusterBytes(ImageChain.of(image, filename), clusterSize);
            }
        }
        long required;
        long fully;
        if (outputFormat.equals("qcow2")) {
            fully = qcow2FullSize(virtualSize, clusterSize, Integer.numberOfTrailingZeros(refcountBits), extendedL2);
            long alignedSize = roundUp(virtualSize, clusterSize);
            required = fully - alignedSize + (fullPrealloc ? alignedSize : dataBytes);
        } else {
            required = virtualSize;
            fully = virtualSize;
        }
        if (output == OutputFormat.json) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("required", required);
            m.put("fully-allocated", fully);
            tool.out.println(Json.pretty(m));
        } else {
            tool.out.println("required size: " + required);
            tool.out.println("fully allocated size: " + fully);
        }
        return 0;
    }

    /** The data clusters the source touches: QEMU counts every cluster that holds any data byte. */
    private static long allocatedClusterBytes(ImageChain chain, long clusterSize) throws IOException {
        long size = chain.top().image().size();
        long required = 0;
        for (long off = 0; off < size; ) {
            ImageChain.Status s = chain.status(off, size - off);
            long n = s.length();
            if (s.data()) {
                n = roundUp(off + n, clusterSize) - off;
                required += off % clusterSize + n;
            }
            off += n;
        }
        return required;
    }

    /** {@code qcow2_calc_prealloc_size}: header, L2 tables, L1 table, refcount structures and the data. */
    static long qcow2FullSize(long totalSize, long clusterSize, int refcountOrder, boolean extendedL2) {
        long l2eSize = extendedL2 ? 16 : 8;
        long aligned = roundUp(totalSize, clusterSize);
        long meta = clusterSize;
        long nl2e = roundUp(aligned / clusterSize, clusterSize / l2eSize);
        meta += nl2e * l2eSize;
        long nl1e = roundUp(nl2e * l2eSize / clusterSize, clusterSize / 8);
        meta += nl1e * 8;
        meta += refcountMetadataSize((meta + aligned) / clusterSize, clusterSize, refcountOrder);
        return meta + aligned;
    }

    /** {@code qcow2_refcount_metadata_size} without the generous increase. */
    private static long refcountMetadataSize(long clusters, long clusterSize, int refcountOrder) {
        long perTableCluster = clusterSize / 8;
        long perBlock = clusterSize * 8 / (1L << refcountOrder);
        long table = 0;
        long blocks = 0;
        long n = 0;
        long last;
        do {
            last = n;
            blocks = ceilDiv(clusters + table + blocks, perBlock);
            table = ceilDiv(blocks, perTableCluster);
            n = clusters + blocks + table;
        } while (n != last);
        return (blocks + table) * clusterSize;
    }

    private static long ceilDiv(long a, long b) {
        return (a + b - 1) / b;
    }

    static long roundUp(long v, long unit) {
        return (v + unit - 1) / unit * unit;
    }
}
