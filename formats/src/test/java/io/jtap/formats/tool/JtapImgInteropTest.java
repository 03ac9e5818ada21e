package io.jtap.formats.tool;

import static io.jtap.formats.QemuTools.run;
import static io.jtap.formats.QemuTools.runAllowingFailure;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.jtap.formats.QemuTools;
import io.jtap.formats.tool.JtapImgRunner.Run;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Iterator;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * jtap-img against qemu-img: what jtap-img creates, converts, resizes, rebases and commits passes
 * {@code qemu-img check} and {@code qemu-img compare}; {@code info}, {@code map}, {@code measure} and
 * {@code compare} report what qemu-img reports for the same images.
 */
class JtapImgInteropTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final long MIB = 1 << 20;
    private static final long SEED = Long.getLong("jtap.seed", System.nanoTime());

    @TempDir
    Path dir;

    @BeforeEach
    void requireQemuImg() {
        QemuTools.require("qemu-img");
        QemuTools.require("qemu-io");
    }

    private String p(String name) {
        return dir.resolve(name).toString();
    }

    /** A raw image of {@code size} bytes: seeded random data, text-like runs, zero blocks and holes. */
    private String mixedRaw(String name, long size, long seed) throws Exception {
        Random rnd = new Random(seed);
        try (FileChannel ch = FileChannel.open(dir.resolve(name), StandardOpenOption.CREATE_NEW,
                StandardOpenOption.WRITE)) {
            byte[] block = new byte[64 * 1024];
            for (long off = 0; off < size; off += block.length) {
                int kind = rnd.nextInt(4);
                if (kind == 0) {
                    continue;
                }
                if (kind == 1) {
                    rnd.nextBytes(block);
                } else if (kind == 2) {
                    java.util.Arrays.fill(block, (byte) 0);
                    block[rnd.nextInt(block.length)] = 1;
                } else {
                    java.util.Arrays.fill(block, (byte) 0);
                }
                ch.write(ByteBuffer.wrap(block), off);
            }
            ch.truncate(size);
            if (ch.size() < size) {
                ch.write(ByteBuffer.allocate(1), size - 1);
            }
        }
        return p(name);
    }

    private void assertIdentical(String a, String fa, String b, String fb) throws Exception {
        QemuTools.Result r = runAllowingFailure("qemu-img", "compare", "-f", fa, "-F", fb, a, b);
        assertEquals(0, r.exit(), "qemu-img compare " + a + " " + b + " (seed=" + SEED + "): " + r.output());
    }

    private void assertQemuCheckClean(String image) throws Exception {
        QemuTools.Result r = runAllowingFailure("qemu-img", "check", image);
        assertEquals(0, r.exit(), "qemu-img check " + image + ": " + r.output());
    }

    // ------------------------------------------------------------------ create and info

    static Stream<Arguments> createVariants() {
        return Stream.of(
                Arguments.of("raw", List.of(), "64M"),
                Arguments.of("qcow2", List.of(), "1G"),
                Arguments.of("qcow2", List.of("-o", "compat=0.10"), "100M"),
                Arguments.of("qcow2", List.of("-o", "cluster_size=4k,refcount_bits=1"), "10M"),
                Arguments.of("qcow2", List.of("-o", "cluster_size=2M,refcount_bits=64"), "1T"),
                Arguments.of("qcow2", List.of("-o", "lazy_refcounts=on,extended_l2=off"), "3G"),
                Arguments.of("qcow2", List.of("-o", "cluster_size=512", "-o", "compat=v3"), "1.5M"));
    }

    /** jtap-img create makes images qemu-img accepts, and info --output=json agrees with qemu-img's. */
    @ParameterizedTest(name = "{0} {1} {2}")
    @MethodSource("createVariants")
    void createdImagesPassQemuCheckAndInfoAgrees(String format, List<String> options, String size) throws Exception {
        String img = p("new." + format);
        String[] args = Stream.concat(Stream.concat(Stream.of("create", "-f", format), options.stream()),
                Stream.of(img, size)).toArray(String[]::new);
        JtapImgRunner.ok(args);
        if (format.equals("qcow2")) {
            assertQemuCheckClean(img);
        }
        assertInfoAgrees(img, false);
    }

    private void assertInfoAgrees(String img, boolean chain) throws Exception {
        String[] q = chain ? new String[] {"info", "--output=json", "--backing-chain", img}
                : new String[] {"info", "--output=json", img};
        JsonNode theirs = JSON.readTree(run("qemu-img", q));
        JsonNode ours = JSON.readTree(JtapImgRunner.ok(q).out());
        if (chain) {
            assertEquals(theirs.size(), ours.size(), "chain length: " + ours);
            for (int i = 0; i < theirs.size(); i++) {
                assertSameFields(theirs.get(i), ours.get(i), img);
            }
        } else {
            assertSameFields(theirs, ours, img);
        }
    }

    /** Every field both report has the same value (snapshots: every field qemu-img reports, entry by entry). */
    private static void assertSameFields(JsonNode theirs, JsonNode ours, String img) {
        int common = 0;
        for (Iterator<String> it = theirs.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!ours.has(f)) {
                continue;
            }
            common++;
            if (f.equals("snapshots")) {
                assertEquals(theirs.get(f).size(), ours.get(f).size(), img + " snapshots");
                for (int i = 0; i < theirs.get(f).size(); i++) {
                    for (Iterator<String> k = theirs.get(f).get(i).fieldNames(); k.hasNext(); ) {
                        String key = k.next();
                        assertEquals(theirs.get(f).get(i).get(key), ours.get(f).get(i).get(key),
                                img + " snapshot " + i + " field " + key);
                    }
                }
            } else {
                assertEquals(theirs.get(f), ours.get(f), img + ": field " + f);
            }
        }
        for (String f : List.of("virtual-size", "filename", "format", "actual-size", "dirty-flag")) {
            assertTrue(ours.has(f), "jtap-img info lacks " + f + ": " + ours);
        }
        assertTrue(common >= 5, "too few common fields: " + ours);
    }

    @Test
    void infoMatchesQemuForQemuMadeImages() throws Exception {
        run("qemu-img", "create", "-f", "raw", p("base.raw"), "16M");
        run("qemu-io", "-f", "raw", "-c", "write -P 0x11 0 1M", p("base.raw"));
        run("qemu-img", "create", "-f", "qcow2", "-o", "compat=0.10", p("v2.qcow2"), "16M");
        run("qemu-img", "create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", p("ov.qcow2"));
        run("qemu-io", "-c", "write -P 0x22 64k 64k", p("ov.qcow2"));
        run("qemu-img", "create", "-f", "qcow2", "-b", "ov.qcow2", "-F", "qcow2", p("top.qcow2"));
        run("qemu-img", "snapshot", "-c", "snap1", p("v2.qcow2"));
        for (String img : List.of("base.raw", "v2.qcow2", "ov.qcow2", "top.qcow2")) {
            assertInfoAgrees(p(img), false);
        }
        assertInfoAgrees(p("top.qcow2"), true);
        Run human = JtapImgRunner.ok("info", p("ov.qcow2"));
        assertTrue(human.out().contains("virtual size: 16 MiB (16777216 bytes)"), human.out());
        assertTrue(human.out().contains("backing file: base.raw"), human.out());
    }

    // ------------------------------------------------------------------ map

    @Test
    void mapJsonEqualsQemuImgs() throws Exception {
        mixedRaw("base.raw", 16 * MIB, SEED);
        run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=4k", p("base.raw"),
                p("base.qcow2"));
        run("qemu-img", "create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", p("ov.qcow2"));
        run("qemu-io", "-c", "write -P 0x22 1M 192k", "-c", "write -z 4M 1M", "-c", "discard 8M 64k",
                p("ov.qcow2"));
        for (String img : List.of("base.raw", "base.qcow2", "ov.qcow2")) {
            JsonNode theirs = JSON.readTree(run("qemu-img", "map", "--output=json", p(img)));
            JsonNode ours = JSON.readTree(JtapImgRunner.ok("map", "--output=json", p(img)).out());
            assertEquals(theirs, ours, img + " (seed=" + SEED + ")");
        }
        String theirs = run("qemu-img", "map", p("ov.qcow2"));
        assertEquals(theirs, JtapImgRunner.ok("map", p("ov.qcow2")).out());
    }

    // ------------------------------------------------------------------ convert

    static Stream<Arguments> conversions() {
        return Stream.of(
                Arguments.of("raw", "qcow2", List.of()),
                Arguments.of("raw", "qcow2", List.of("-W", "-m", "4")),
                Arguments.of("raw", "qcow2", List.of("-o", "cluster_size=4k,compat=0.10")),
                Arguments.of("raw", "qcow2", List.of("-o", "cluster_size=2M", "-m", "1")),
                Arguments.of("qcow2", "raw", List.of()),
                Arguments.of("qcow2", "raw", List.of("-S", "0")),
                Arguments.of("qcow2", "raw", List.of("-W", "-S", "64k")),
                Arguments.of("qcow2", "qcow2", List.of()),
                Arguments.of("qcow2", "qcow2", List.of("-W", "-o", "refcount_bits=1,cluster_size=16k")),
                Arguments.of("raw", "raw", List.of("-m", "16")));
    }

    /**
     * convert's output is identical to its source for qemu-img, passes qemu-img check, and (with sparse output) is
     * no larger on disk than qemu-img convert's output with the same options.
     */
    @ParameterizedTest(name = "{0} -> {1} {2}")
    @MethodSource("conversions")
    void convertIsIdenticalCheckedAndAsSparseAsQemu(String from, String to, List<String> options) throws Exception {
        String raw = mixedRaw("src.raw", 24 * MIB + 4096 * 3, SEED);
        String src = raw;
        if (from.equals("qcow2")) {
            src = p("src.qcow2");
            run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=16k", raw, src);
        }
        String ours = p("ours." + to);
        String theirs = p("theirs." + to);
        List<String> qemuOpts = options.stream().filter(o -> !o.equals("-m") && !o.matches("\\d+")).toList();
        runList("qemu-img", Stream.concat(Stream.concat(Stream.of("convert", "-f", from, "-O", to),
                options.stream()), Stream.of(src, theirs)).toList());
        JtapImgRunner.ok(Stream.concat(Stream.concat(Stream.of("convert", "-f", from, "-O", to), options.stream()),
                Stream.of(src, ours)).toArray(String[]::new));
        assertIdentical(src, from, ours, to);
        if (to.equals("qcow2")) {
            assertQemuCheckClean(ours);
        }
        // Both written back first: a file in delayed allocation (qemu-img's, unsynced with -t unsafe) counts its
        // data blocks but not yet the extent-tree blocks that jtap's allocated file already has.
        for (String out : List.of(ours, theirs)) {
            try (FileChannel ch = FileChannel.open(Path.of(out), StandardOpenOption.WRITE)) {
                ch.force(true);
            }
        }
        long ourSize = DiskUsage.bytes(Path.of(ours));
        long theirSize = DiskUsage.bytes(Path.of(theirs));
        assertTrue(ourSize <= theirSize, "jtap output " + ourSize + " bytes on disk, qemu-img's "
                + theirSize + " (seed=" + SEED + ", options=" + options + ", ignored " + qemuOpts + ")");
    }

    private static void runList(String tool, List<String> args) throws Exception {
        run(tool, args.toArray(String[]::new));
    }

    /** convert -B: the target is an overlay of the given backing file holding only what the source's top adds. */
    @Test
    void convertWithBackingFileKeepsOnlyTheTopLayer() throws Exception {
        String base = mixedRaw("base.raw", 8 * MIB, SEED);
        run("qemu-img", "create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", p("ov.qcow2"));
        run("qemu-io", "-c", "write -P 0x33 100k 300k", "-c", "write -z 2M 64k", p("ov.qcow2"));
        JtapImgRunner.ok("convert", "-f", "qcow2", "-O", "qcow2", "-B", "base.raw", "-F", "raw", p("ov.qcow2"),
                p("out.qcow2"));
        assertQemuCheckClean(p("out.qcow2"));
        assertIdentical(p("ov.qcow2"), "qcow2", p("out.qcow2"), "qcow2");
        JsonNode info = JSON.readTree(run("qemu-img", "info", "--output=json", p("out.qcow2")));
        assertEquals("base.raw", info.get("backing-filename").asText());
        assertTrue(DiskUsage.bytes(Path.of(p("out.qcow2"))) < 2 * MIB, "only the overlay's clusters are copied");
        assertTrue(Files.exists(Path.of(base)));
    }

    /** convert -n into an existing image: zeros are written where the target had data, unless --target-is-zero. */
    @Test
    void convertIntoExistingTarget() throws Exception {
        String src = mixedRaw("src.raw", 8 * MIB, SEED);
        run("qemu-img", "create", "-f", "qcow2", p("dst.qcow2"), "8M");
        run("qemu-io", "-c", "write -P 0x55 0 8M", p("dst.qcow2"));
        JtapImgRunner.ok("convert", "-n", "-f", "raw", "-O", "qcow2", src, p("dst.qcow2"));
        assertIdentical(src, "raw", p("dst.qcow2"), "qcow2");
        assertQemuCheckClean(p("dst.qcow2"));
        run("qemu-img", "create", "-f", "qcow2", p("empty.qcow2"), "8M");
        JtapImgRunner.ok("convert", "-n", "--target-is-zero", "-f", "raw", "-O", "qcow2", src, p("empty.qcow2"));
        assertIdentical(src, "raw", p("empty.qcow2"), "qcow2");
    }

    static Stream<Arguments> compressedVariants() {
        return Stream.of(
                Arguments.of("raw", "compression_type=zlib"),
                Arguments.of("raw", "compression_type=zstd"),
                Arguments.of("raw", "compression_type=zstd,cluster_size=4k"),
                Arguments.of("qcow2-4k", "compression_type=zlib"),
                Arguments.of("qcow2-4k", "compression_type=zstd,cluster_size=2M"));
    }

    /**
     * convert -c: the output passes qemu-img check, compares identical to the source, and is at most a few percent
     * larger on disk than qemu-img's own -c output. A 4 KiB-cluster qcow2 source ends its data runs inside the
     * target's clusters, which compressed writes must round out to whole clusters.
     */
    @ParameterizedTest(name = "{0} -o {1}")
    @MethodSource("compressedVariants")
    void convertCompressedPassesQemuCheckAndIsAsSmallAsQemuImgs(String source, String options) throws Exception {
        String src = mixedRaw("src.raw", 12 * MIB + 4096, SEED);
        String from = "raw";
        if (source.equals("qcow2-4k")) {
            run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=4k", src, p("src.qcow2"));
            src = p("src.qcow2");
            from = "qcow2";
        }
        run("qemu-img", "convert", "-c", "-f", from, "-O", "qcow2", "-o", options, src, p("theirs.qcow2"));
        JtapImgRunner.ok("convert", "-c", "-f", from, "-O", "qcow2", "-o", options, src, p("ours.qcow2"));
        assertQemuCheckClean(p("ours.qcow2"));
        assertIdentical(src, from, p("ours.qcow2"), "qcow2");
        JsonNode check = JSON.readTree(run("qemu-img", "check", "--output=json", p("ours.qcow2")));
        assertTrue(check.path("compressed-clusters").asLong() > 0, "no compressed clusters: " + check);
        long ours = Files.size(Path.of(p("ours.qcow2")));
        long theirs = Files.size(Path.of(p("theirs.qcow2")));
        assertTrue(ours <= theirs + theirs / 20 + 64 * 1024, "jtap -c output " + ours + " bytes, qemu-img's "
                + theirs + " (seed=" + SEED + ", options=" + options + ")");
        Run raw = JtapImgRunner.run("convert", "-c", "-f", from, "-O", "raw", src, p("c.raw"));
        assertEquals(1, raw.exit(), raw.toString());
        assertTrue(raw.err().contains("Compression is not supported"), raw.toString());
    }

    // ------------------------------------------------------------------ compare

    @Test
    void compareExitCodesAndMessagesMatchQemuImg() throws Exception {
        String a = mixedRaw("a.raw", 4 * MIB, SEED);
        Files.copy(Path.of(a), dir.resolve("same.raw"));
        run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", a, p("a.qcow2"));
        Files.copy(Path.of(a), dir.resolve("diff.raw"));
        run("qemu-io", "-f", "raw", "-c", "write -P 0x77 1000001 3", p("diff.raw"));
        Files.copy(Path.of(a), dir.resolve("longer.raw"));
        try (FileChannel ch = FileChannel.open(dir.resolve("longer.raw"), StandardOpenOption.WRITE)) {
            ch.truncate(5 * MIB);
            ch.write(ByteBuffer.allocate(1), 5 * MIB - 1);
        }
        String[][] pairs = {{a, "same.raw"}, {a, "a.qcow2"}, {a, "diff.raw"}, {a, "longer.raw"}};
        for (String[] pair : pairs) {
            String b = pair[1].startsWith("/") ? pair[1] : p(pair[1]);
            QemuTools.Result theirs = runAllowingFailure("qemu-img", "compare", a, b);
            Run ours = JtapImgRunner.run("compare", a, b);
            assertEquals(theirs.exit(), ours.exit(), "compare " + pair[1] + ": " + theirs.output() + " / " + ours);
            assertEquals(theirs.output().strip(), ours.out().strip(), "compare " + pair[1]);
        }
        QemuTools.Result strictTheirs = runAllowingFailure("qemu-img", "compare", "-s", a, p("longer.raw"));
        Run strictOurs = JtapImgRunner.run("compare", "-s", a, p("longer.raw"));
        assertEquals(strictTheirs.exit(), strictOurs.exit(), strictOurs.toString());
        Run missing = JtapImgRunner.run("compare", a, p("nothere.raw"));
        assertEquals(2, missing.exit(), missing.toString());
        assertTrue(missing.err().contains("nothere.raw"), missing.toString());
    }

    // ------------------------------------------------------------------ check

    /**
     * A qcow2 image with a leaked cluster (a refcount block entry set for a cluster appended at the end of the file
     * and referenced by nothing, written surgically) and, separately, a corruption (a data cluster's refcount
     * dropped to 0): jtap-img check exits as qemu-img check does, its --output=json has qemu-img's fields and counts,
     * and check -r leaks / -r all repairs to an image qemu-img finds clean.
     */
    @Test
    void checkOnALeakyImage() throws Exception {
        run("qemu-img", "create", "-f", "qcow2", p("leaky.qcow2"), "16M");
        run("qemu-io", "-c", "write -P 0x11 0 192k", p("leaky.qcow2"));
        long leaked;
        try (FileChannel ch = FileChannel.open(dir.resolve("leaky.qcow2"), StandardOpenOption.READ,
                StandardOpenOption.WRITE)) {
            long block = firstRefcountBlock(ch);
            leaked = ch.size() / 65536;
            ch.write(ByteBuffer.allocate(65536), ch.size());
            ch.write(ByteBuffer.allocate(2).putShort(0, (short) 1), block + 2 * leaked);
        }
        assertCheckAgrees(p("leaky.qcow2"), 3);
        QemuTools.Result theirs = runAllowingFailure("qemu-img", "check", p("leaky.qcow2"));
        Run ours = JtapImgRunner.run("check", p("leaky.qcow2"));
        assertTrue(theirs.output().contains("Leaked cluster " + leaked + " refcount=1 reference=0"), theirs.output());
        assertTrue(ours.err().contains("Leaked cluster " + leaked + " refcount=1 reference=0"), ours.toString());
        assertTrue(ours.out().contains("1 leaked clusters were found on the image."), ours.toString());

        Run repaired = JtapImgRunner.run("check", "--output=json", "-r", "leaks", p("leaky.qcow2"));
        assertEquals(0, repaired.exit(), repaired.toString());
        assertEquals(1, JSON.readTree(repaired.out()).get("leaks-fixed").asLong(), repaired.toString());
        assertQemuCheckClean(p("leaky.qcow2"));
        assertCheckAgrees(p("leaky.qcow2"), 0);

        // A data cluster's refcount set to 0 while its L2 entry still points to it: a corruption (exit 2).
        JsonNode map = JSON.readTree(run("qemu-img", "map", "--output=json", p("leaky.qcow2")));
        long host = map.get(0).get("offset").asLong();
        try (FileChannel ch = FileChannel.open(dir.resolve("leaky.qcow2"), StandardOpenOption.READ,
                StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.allocate(2), firstRefcountBlock(ch) + 2 * (host / 65536));
        }
        assertCheckAgrees(p("leaky.qcow2"), 2);
        Run fixed = JtapImgRunner.run("check", "-r", "all", p("leaky.qcow2"));
        assertEquals(0, fixed.exit(), fixed.toString());
        assertQemuCheckClean(p("leaky.qcow2"));
        run("qemu-io", "-c", "read -P 0x11 0 192k", p("leaky.qcow2"));

        run("qemu-img", "create", "-f", "raw", p("plain.raw"), "1M");
        assertEquals(63, JtapImgRunner.run("check", "-f", "raw", p("plain.raw")).exit());
        assertEquals(63, runAllowingFailure("qemu-img", "check", "-f", "raw", p("plain.raw")).exit());
    }

    /** The refcount block of clusters 0.., through the header's refcount_table_offset (byte 48). */
    private static long firstRefcountBlock(FileChannel ch) throws java.io.IOException {
        ByteBuffer b = ByteBuffer.allocate(8);
        ch.read(b, 48);
        ch.read(b.clear(), b.getLong(0));
        return b.getLong(0);
    }

    /** qemu-img check and jtap-img check exit with {@code exit} and report the same JSON fields and values. */
    private void assertCheckAgrees(String image, int exit) throws Exception {
        QemuTools.Result theirs = runAllowingFailure("qemu-img", "check", "--output=json", image);
        Run ours = JtapImgRunner.run("check", "--output=json", image);
        assertEquals(exit, theirs.exit(), theirs.output());
        assertEquals(exit, ours.exit(), ours.toString());
        String json = theirs.output().substring(theirs.output().indexOf('{'), theirs.output().lastIndexOf('}') + 1);
        JsonNode t = JSON.readTree(json);
        JsonNode o = JSON.readTree(ours.out());
        java.util.Set<String> theirFields = new java.util.TreeSet<>();
        t.fieldNames().forEachRemaining(theirFields::add);
        java.util.Set<String> ourFields = new java.util.TreeSet<>();
        o.fieldNames().forEachRemaining(ourFields::add);
        assertEquals(theirFields, ourFields, "check --output=json fields: " + json + " / " + ours.out());
        for (String f : theirFields) {
            if (!f.equals("filename")) {
                assertEquals(t.get(f), o.get(f), "check --output=json field " + f + ": " + json + " / " + ours.out());
            }
        }
    }

    // ------------------------------------------------------------------ measure

    @Test
    void measureMatchesQemuImg() throws Exception {
        String raw = mixedRaw("src.raw", 20 * MIB + 512, SEED);
        run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=4k", raw, p("src.qcow2"));
        List<List<String>> cases = List.of(
                List.of("--size", "1G", "-O", "qcow2"),
                List.of("--size", "10T", "-O", "qcow2", "-o", "cluster_size=2M,refcount_bits=64"),
                List.of("--size", "100M", "-O", "qcow2", "-o", "cluster_size=512,refcount_bits=1"),
                List.of("--size", "1G", "-O", "raw"),
                List.of("-f", "raw", "-O", "qcow2", raw),
                List.of("-f", "raw", "-O", "qcow2", "-o", "cluster_size=4k", raw),
                List.of("-f", "qcow2", "-O", "qcow2", p("src.qcow2")),
                List.of("-f", "qcow2", "-O", "raw", p("src.qcow2")));
        for (List<String> c : cases) {
            List<String> args = Stream.concat(Stream.of("measure", "--output=json"), c.stream()).toList();
            JsonNode theirs = JSON.readTree(run("qemu-img", args.toArray(String[]::new)));
            JsonNode ours = JSON.readTree(JtapImgRunner.ok(args.toArray(String[]::new)).out());
            assertEquals(theirs.get("required"), ours.get("required"), "required for " + c);
            assertEquals(theirs.get("fully-allocated"), ours.get("fully-allocated"), "fully-allocated for " + c);
        }
    }

    // ------------------------------------------------------------------ resize, rebase, commit

    @Test
    void resizeMatchesQemuImg() throws Exception {
        String raw = mixedRaw("src.raw", 8 * MIB, SEED);
        run("qemu-io", "-f", "raw", "-c", "write -P 0x5a 5M 1M", raw);
        run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, p("ours.qcow2"));
        run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, p("theirs.qcow2"));
        Run refused = JtapImgRunner.run("resize", p("ours.qcow2"), "-1M");
        assertEquals(1, refused.exit(), refused.toString());
        assertTrue(refused.err().contains("--shrink"), refused.toString());
        // 6M - 2.5K is not a multiple of the 64 KiB cluster: the rest of its last cluster keeps its bytes, and they
        // read back after the grow to 20M, in qemu-img's image and in jtap's alike.
        for (String[] step : new String[][] {{"+3M"}, {"--shrink", "-5M"}, {"--shrink", "6288896"}, {"20M"}}) {
            List<String> args = Stream.concat(Stream.of("resize"), Stream.concat(
                    Stream.of(step).filter(s -> s.startsWith("--")), Stream.of(p("ours.qcow2"),
                            step[step.length - 1]))).toList();
            Run r = JtapImgRunner.ok(args.toArray(String[]::new));
            assertTrue(r.out().contains("Image resized."), r.toString());
            List<String> q = Stream.concat(Stream.of("resize"), Stream.concat(
                    Stream.of(step).filter(s -> s.startsWith("--")), Stream.of(p("theirs.qcow2"), "--",
                            step[step.length - 1]))).toList();
            run("qemu-img", q.toArray(String[]::new));
            assertQemuCheckClean(p("ours.qcow2"));
            assertIdentical(p("theirs.qcow2"), "qcow2", p("ours.qcow2"), "qcow2");
            QemuTools.Result strict = runAllowingFailure("qemu-img", "compare", "-s", p("theirs.qcow2"),
                    p("ours.qcow2"));
            assertFalse(strict.output().contains("size mismatch"), strict.output());
        }
    }

    @Test
    void safeRebaseKeepsTheGuestViewAndUnsafeOnlyChangesTheReference() throws Exception {
        mixedRaw("base1.raw", 8 * MIB, SEED);
        mixedRaw("base2.raw", 6 * MIB, SEED + 1);
        run("qemu-img", "create", "-f", "qcow2", "-b", "base1.raw", "-F", "raw", p("ov.qcow2"));
        run("qemu-io", "-c", "write -P 0x44 1M 200k", "-c", "write -z 3M 64k", p("ov.qcow2"));
        run("qemu-img", "convert", "-O", "raw", p("ov.qcow2"), p("before.raw"));
        JtapImgRunner.ok("rebase", "-b", "base2.raw", "-F", "raw", p("ov.qcow2"));
        assertQemuCheckClean(p("ov.qcow2"));
        JsonNode info = JSON.readTree(run("qemu-img", "info", "--output=json", p("ov.qcow2")));
        assertEquals("base2.raw", info.get("backing-filename").asText());
        assertEquals("raw", info.get("backing-filename-format").asText());
        assertIdentical(p("before.raw"), "raw", p("ov.qcow2"), "qcow2");

        JtapImgRunner.ok("rebase", "-u", "-b", "base1.raw", "-F", "raw", p("ov.qcow2"));
        info = JSON.readTree(run("qemu-img", "info", "--output=json", p("ov.qcow2")));
        assertEquals("base1.raw", info.get("backing-filename").asText());
        assertQemuCheckClean(p("ov.qcow2"));

        JtapImgRunner.ok("rebase", "-b", "", p("ov.qcow2"));
        info = JSON.readTree(run("qemu-img", "info", "--output=json", p("ov.qcow2")));
        assertFalse(info.has("backing-filename"), info.toString());
        assertQemuCheckClean(p("ov.qcow2"));
    }

    @Test
    void commitWritesTheOverlayIntoItsBackingFileAndEmptiesIt() throws Exception {
        String raw = mixedRaw("base.raw", 8 * MIB, SEED);
        run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, p("base.qcow2"));
        run("qemu-img", "create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", p("ov.qcow2"));
        run("qemu-io", "-c", "write -P 0x66 512k 1M", "-c", "write -z 5M 128k", "-c", "write -P 1 7M 4k",
                p("ov.qcow2"));
        run("qemu-img", "convert", "-O", "raw", p("ov.qcow2"), p("expected.raw"));
        Run r = JtapImgRunner.ok("commit", p("ov.qcow2"));
        assertTrue(r.out().contains("Image committed."), r.toString());
        assertQemuCheckClean(p("base.qcow2"));
        assertQemuCheckClean(p("ov.qcow2"));
        assertIdentical(p("expected.raw"), "raw", p("base.qcow2"), "qcow2");
        assertIdentical(p("expected.raw"), "raw", p("ov.qcow2"), "qcow2");
        JsonNode map = JSON.readTree(run("qemu-img", "map", "--output=json", p("ov.qcow2")));
        for (JsonNode e : map) {
            assertEquals(1, e.get("depth").asInt(), "overlay is empty after commit: " + map);
        }
    }

    // ------------------------------------------------------------------ snapshot

    /**
     * Two identical directories, theirs/ and ours/, each with a qcow2 image with data and two snapshots taken by
     * qemu-img ("first" id 1, "second" id 2), and a raw image.
     */
    private void snapshotImages() throws Exception {
        Path d = Files.createDirectories(dir.resolve("theirs"));
        String img = d.resolve("s.qcow2").toString();
        run("qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=4096", img, "4M");
        run("qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 1M", img);
        run("qemu-img", "snapshot", "-c", "first", img);
        run("qemu-io", "-f", "qcow2", "-c", "write -P 0x22 512k 1M", img);
        run("qemu-img", "snapshot", "-c", "second", img);
        run("qemu-io", "-f", "qcow2", "-c", "write -P 0x33 3M 64k", img);
        run("qemu-img", "create", "-f", "raw", d.resolve("r.raw").toString(), "1M");
        Path ours = Files.createDirectories(dir.resolve("ours"));
        for (String f : List.of("s.qcow2", "r.raw")) {
            Files.copy(d.resolve(f), ours.resolve(f));
        }
    }

    static Stream<Arguments> snapshotCases() {
        return Stream.of(
                Arguments.of("list", "s.qcow2", List.of("-l")),
                Arguments.of("no action", "s.qcow2", List.of()),
                Arguments.of("list raw", "r.raw", List.of("-l")),
                Arguments.of("create", "s.qcow2", List.of("-c", "third")),
                Arguments.of("create with an empty name", "s.qcow2", List.of("-c", "")),
                Arguments.of("delete by name", "s.qcow2", List.of("-d", "first")),
                Arguments.of("delete unknown", "s.qcow2", List.of("-d", "nope")),
                Arguments.of("apply by name", "s.qcow2", List.of("-a", "first")),
                Arguments.of("apply by id", "s.qcow2", List.of("-a", "2")),
                Arguments.of("apply unknown", "s.qcow2", List.of("-a", "nope")),
                Arguments.of("create raw", "r.raw", List.of("-c", "s1")),
                Arguments.of("delete raw", "r.raw", List.of("-d", "s1")),
                Arguments.of("apply raw", "r.raw", List.of("-a", "s1")),
                Arguments.of("missing file", "missing.qcow2", List.of("-l")),
                Arguments.of("two actions", "s.qcow2", List.of("-l", "-c", "x")));
    }

    /**
     * The same snapshot command by qemu-img and by jtap-img on copies of the same image: the same exit code, the
     * same output and error message (but for the tool's name and qemu-img's format-probing warning; for usage errors
     * the exit code only), and, after a change, images that list the same snapshots, read the same, and pass
     * qemu-img check.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("snapshotCases")
    void snapshotCommandMatchesQemuImg(String name, String file, List<String> action) throws Exception {
        snapshotImages();
        String theirsImg = dir.resolve("theirs").resolve(file).toString();
        String oursImg = dir.resolve("ours").resolve(file).toString();
        List<String> qemuArgs = new java.util.ArrayList<>(List.of("snapshot"));
        qemuArgs.addAll(action);
        qemuArgs.add(theirsImg);
        QemuTools.Result theirs = runAllowingFailure("qemu-img", qemuArgs.toArray(String[]::new));
        List<String> jtapArgs = new java.util.ArrayList<>(List.of("snapshot"));
        jtapArgs.addAll(action);
        jtapArgs.add(oursImg);
        Run ours = JtapImgRunner.run(jtapArgs.toArray(String[]::new));
        String context = name + ": qemu-img said (exit " + theirs.exit() + "):\n" + theirs.output() + "\njtap-img: "
                + ours;
        assertEquals(theirs.exit(), ours.exit(), context);
        if (!name.equals("two actions")) {
            String qemuSays = theirs.output().lines()
                    .filter(l -> !l.startsWith("WARNING:") && !l.startsWith("         "))
                    .map(l -> l.replace(theirsImg, "IMG")).collect(java.util.stream.Collectors.joining("\n"));
            String jtapSays = (ours.out() + ours.err()).lines().map(l -> l.replace("jtap-img: ", "qemu-img: "))
                    .map(l -> l.replace(oursImg, "IMG")).collect(java.util.stream.Collectors.joining("\n"));
            if (name.equals("missing file")) {
                // qemu-img names the file twice ("Could not open 'x': Could not open 'x': No such file ...")
                qemuSays = qemuSays.replace("Could not open 'IMG': Could not open", "Could not open");
            }
            assertEquals(qemuSays, jtapSays, context);
        }
        if (file.endsWith(".qcow2") && ours.exit() == 0) {
            assertQemuCheckClean(oursImg);
            assertEquals(snapshotIdsAndNames(theirsImg), snapshotIdsAndNames(oursImg), context);
            assertIdentical(theirsImg, "qcow2", oursImg, "qcow2");
        }
    }

    /** The ID and TAG columns of qemu-img snapshot -l (the dates of snapshots made in each copy differ). */
    private static List<String> snapshotIdsAndNames(String img) throws Exception {
        return run("qemu-img", "snapshot", "-l", img).lines().skip(2)
                .map(l -> l.substring(0, Math.min(l.length(), 27)).strip()).toList();
    }

    /**
     * Where jtap-img differs on purpose: it refuses a second snapshot of the same name (qemu-img 7.2 makes one, and
     * -a/-d then pick the first silently), and -d also takes an id where no snapshot has that name (qemu-img looks
     * up names only).
     */
    @Test
    void snapshotDifferencesFromQemuImg() throws Exception {
        snapshotImages();
        String theirsImg = dir.resolve("theirs").resolve("s.qcow2").toString();
        String oursImg = dir.resolve("ours").resolve("s.qcow2").toString();
        assertEquals(0, runAllowingFailure("qemu-img", "snapshot", "-c", "first", theirsImg).exit());
        assertEquals(List.of("1         first", "2         second", "3         first"), snapshotIdsAndNames(theirsImg));
        Run dup = JtapImgRunner.run("snapshot", "-c", "first", oursImg);
        assertEquals(1, dup.exit(), dup.toString());
        assertEquals("jtap-img: Could not create snapshot 'first': a snapshot named 'first' exists (id 1)\n",
                dup.err(), dup.toString());
        assertEquals(List.of("1         first", "2         second"), snapshotIdsAndNames(oursImg));

        QemuTools.Result byId = runAllowingFailure("qemu-img", "snapshot", "-d", "2", theirsImg);
        assertEquals(1, byId.exit(), byId.output());
        assertTrue(byId.output().contains("Could not delete snapshot '2': snapshot not found"), byId.output());
        JtapImgRunner.ok("snapshot", "-d", "2", oursImg);
        assertEquals(List.of("1         first"), snapshotIdsAndNames(oursImg));
        assertQemuCheckClean(oursImg);
    }

    /**
     * jtap-img takes snapshots between writes, qemu-img lists exactly what jtap-img lists and reads each snapshot as
     * it was; jtap-img deletes and applies, qemu-img agrees after each step.
     */
    @Test
    void jtapImgSnapshotsAreQemuSnapshots() throws Exception {
        String img = p("j.qcow2");
        JtapImgRunner.ok("create", "-f", "qcow2", img, "4M");
        run("qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 1M", img);
        run("qemu-img", "convert", "-O", "raw", img, p("at-a.raw"));
        JtapImgRunner.ok("snapshot", "-c", "a", img);
        run("qemu-io", "-f", "qcow2", "-c", "write -P 0x22 256k 1M", img);
        run("qemu-img", "convert", "-O", "raw", img, p("at-b.raw"));
        JtapImgRunner.ok("snapshot", "-c", "b", img);
        run("qemu-io", "-f", "qcow2", "-c", "write -P 0x33 2M 1M", img);
        run("qemu-img", "convert", "-O", "raw", img, p("now.raw"));
        assertEquals(run("qemu-img", "snapshot", "-l", img), JtapImgRunner.ok("snapshot", "-l", img).out());
        assertCheckAgrees(img, 0);
        assertInfoAgrees(img, false);
        run("qemu-img", "convert", "-l", "snapshot.name=a", "-O", "raw", img, p("a.raw"));
        assertIdentical(p("at-a.raw"), "raw", p("a.raw"), "raw");
        run("qemu-img", "convert", "-l", "snapshot.name=b", "-O", "raw", img, p("b.raw"));
        assertIdentical(p("at-b.raw"), "raw", p("b.raw"), "raw");
        assertIdentical(p("now.raw"), "raw", img, "qcow2");

        JtapImgRunner.ok("snapshot", "-d", "a", img);
        assertQemuCheckClean(img);
        assertEquals(List.of("2         b"), snapshotIdsAndNames(img));
        JtapImgRunner.ok("snapshot", "-a", "b", img);
        assertQemuCheckClean(img);
        assertIdentical(p("at-b.raw"), "raw", img, "qcow2");
        JtapImgRunner.ok("snapshot", "-c", "c", img);
        assertEquals(List.of("2         b", "3         c"), snapshotIdsAndNames(img));
        assertCheckAgrees(img, 0);
        assertInfoAgrees(img, false);
    }
}
