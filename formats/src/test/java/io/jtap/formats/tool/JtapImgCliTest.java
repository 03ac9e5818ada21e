package io.jtap.formats.tool;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.jtap.formats.tool.JtapImgRunner.Run;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;

/** jtap-img's command line without the reference tool: argument errors, check's exit codes, progress output. */
class JtapImgCliTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource({"0,0", "512,512", "1k,1024", "1K,1024", "4k,4096", "1M,1048576", "1.5M,1572864", "1G,1073741824",
        "2T,2199023255552", "100b,100", "1e,1152921504606846976"})
    void parsesQemuSizes(String text, long bytes) {
        assertEquals(bytes, ByteSizes.parse("size", text));
    }

    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource({"0,0 B", "999,999 B", "331776,324 KiB", "8388608,8 MiB", "1073741824,1 GiB", "1610612736,1.5 GiB",
        "1048575000,1000 MiB"})
    void printsSizesAsQemu(long bytes, String text) {
        assertEquals(text, ByteSizes.format(bytes));
    }

    static Stream<Arguments> badArguments() {
        return Stream.of(
                Arguments.of(new String[] {"create", "-f", "raw", "x.img", "12Q"}, "invalid image size: '12Q'"),
                Arguments.of(new String[] {"create", "-f", "raw", "x.img", "-5"}, "'-5' is negative"),
                Arguments.of(new String[] {"create", "-f", "vhdx", "x.img", "1M"}, "Unknown file format 'vhdx'"),
                Arguments.of(new String[] {"create", "-f", "qcow2", "-o", "cluster_size=3000", "x.img", "1M"},
                        "bad cluster size: cluster_size=3000"),
                Arguments.of(new String[] {"create", "-f", "qcow2", "-o", "colour=blue", "x.img", "1M"},
                        "unknown qcow2 option: option=colour"),
                Arguments.of(new String[] {"create", "-f", "qcow2", "-o", "preallocation=sometimes", "x.img", "1M"},
                        "Invalid value for preallocation: 'sometimes'"),
                Arguments.of(new String[] {"create", "-f", "qcow2", "x.img"}, "needs a size"),
                Arguments.of(new String[] {"info", "missing.img"}, "missing.img': No such file or directory"),
                Arguments.of(new String[] {"convert", "missing.img", "out.img"}, "missing.img': No such file"),
                Arguments.of(new String[] {"convert", "-O", "nope", "a", "b"}, "Unknown file format 'nope'"),
                Arguments.of(new String[] {"convert", "-m", "0", "a", "b"}, "Invalid number of coroutines"),
                Arguments.of(new String[] {"convert", "-S", "1000", "a", "b"}, "Invalid buffer size for sparse"),
                Arguments.of(new String[] {"convert", "--target-is-zero", "a", "b"}, "requires use of -n"),
                Arguments.of(new String[] {"convert", "-t", "bogus", "a", "b"}, "Invalid cache option"),
                Arguments.of(new String[] {"check", "-r", "some", "a"}, "expecting 'leaks' or 'all'"),
                Arguments.of(new String[] {"info", "--output=xml", "a"}, "Invalid value for option '--output'"),
                Arguments.of(new String[] {"frobnicate"}, "Unmatched argument"),
                Arguments.of(new String[] {}, "a command is required"),
                Arguments.of(new String[] {"measure", "-O", "qcow2"}, "Either --size N or one filename"),
                Arguments.of(new String[] {"snapshot", "-l", "-c", "s1", "a"}, "are mutually exclusive"),
                Arguments.of(new String[] {"snapshot", "-c", "s1", "missing.img"}, "No such file or directory"));
    }

    @ParameterizedTest(name = "{1}")
    @MethodSource("badArguments")
    void badArgumentsExitOneWithAClearMessage(String[] args, String message) {
        String[] inDir = args.clone();
        for (int i = 0; i < inDir.length; i++) {
            if (inDir[i].matches("(x|a|b|out|missing)\\.?(img)?") && i > 0) {
                inDir[i] = dir.resolve(inDir[i]).toString();
            }
        }
        Run r = JtapImgRunner.run(inDir);
        assertEquals(1, r.exit(), r.toString());
        assertTrue(r.err().contains(message), "stderr should contain '" + message + "': " + r);
        assertTrue(r.err().startsWith("jtap-img: "), r.toString());
        assertEquals("", r.out(), "nothing on stdout on error: " + r);
    }

    static Stream<Arguments> checkOutcomes() {
        return Stream.of(
                Arguments.of("clean", new ImageChecker.CheckReport(0, 0, 0, 0, 0, 393216, 128, 1, 0, 0), 0),
                Arguments.of("leaks", new ImageChecker.CheckReport(0, 3, 0, 0, 0, 393216, 128, 1, 0, 0), 3),
                Arguments.of("corrupt", new ImageChecker.CheckReport(2, 3, 0, 0, 0, 393216, 128, 1, 0, 0), 2),
                Arguments.of("not-completed", new ImageChecker.CheckReport(0, 0, 1, 0, 0, -1, -1, -1, -1, -1), 1),
                Arguments.of("repaired", new ImageChecker.CheckReport(0, 0, 0, 0, 3, 393216, 128, 1, 0, 0), 0));
    }

    /** The exit codes qemu-img documents for check, with a checker behind the seam reporting each outcome. */
    @ParameterizedTest(name = "{0} -> exit {2}")
    @MethodSource("checkOutcomes")
    void checkExitCodesFollowQemuImg(String name, ImageChecker.CheckReport report, int exit) throws Exception {
        Path img = dir.resolve("a.img");
        Files.write(img, new byte[4096]);
        ImageChecker fake = (path, format, repair) -> Optional.of(report);
        Run r = JtapImgRunner.run(fake, "check", "-f", "raw", img.toString());
        assertEquals(exit, r.exit(), r.toString());
        Run j = JtapImgRunner.run(fake, "check", "--output=json", "-f", "raw", img.toString());
        assertEquals(exit, j.exit(), j.toString());
        JsonNode n = JSON.readTree(j.out());
        assertEquals(report.checkErrors(), n.get("check-errors").asLong());
        assertEquals(report.leaks(), n.path("leaks").asLong(0));
        assertEquals(report.corruptions(), n.path("corruptions").asLong(0));
        assertEquals("raw", n.get("format").asText());
    }

    @Test
    void checkOfAFormatWithoutCheckerExits63() throws Exception {
        Path img = dir.resolve("a.img");
        Files.write(img, new byte[4096]);
        Run r = JtapImgRunner.run("check", "-f", "raw", img.toString());
        assertEquals(63, r.exit(), r.toString());
        assertTrue(r.err().contains("does not support checks"), r.toString());
    }

    @Test
    void checkRepairModeReachesTheChecker() throws Exception {
        Path img = dir.resolve("a.img");
        Files.write(img, new byte[4096]);
        ImageChecker.Repair[] seen = new ImageChecker.Repair[1];
        ImageChecker fake = (path, format, repair) -> {
            seen[0] = repair;
            return Optional.of(new ImageChecker.CheckReport(0, 0, 0, 0, 0, -1, -1, -1, -1, -1));
        };
        assertEquals(0, JtapImgRunner.run(fake, "check", "-r", "leaks", img.toString()).exit());
        assertEquals(ImageChecker.Repair.LEAKS, seen[0]);
        assertEquals(0, JtapImgRunner.run(fake, "check", "-r", "all", img.toString()).exit());
        assertEquals(ImageChecker.Repair.ALL, seen[0]);
    }

    /** --progress=jsonl: every stdout line is a JSON object; done grows to total; percent ends at 100. */
    @Test
    void progressJsonlParses() throws Exception {
        Path src = dir.resolve("src.raw");
        Path dst = dir.resolve("dst.qcow2");
        byte[] data = new byte[8 << 20];
        for (int i = 0; i < data.length; i += 4096) {
            data[i] = (byte) (i >> 12 | 1);
        }
        Files.write(src, data);
        Run r = JtapImgRunner.ok("convert", "--progress=jsonl", "-f", "raw", "-O", "qcow2", src.toString(),
                dst.toString());
        String[] lines = r.out().strip().split("\n");
        assertTrue(lines.length >= 2, r.toString());
        long lastDone = -1;
        double lastPercent = -1;
        for (String line : lines) {
            JsonNode n = JSON.readTree(line);
            assertEquals(data.length, n.get("total").asLong(), line);
            assertTrue(n.get("done").asLong() >= lastDone, "done never decreases: " + r.out());
            assertTrue(n.get("percent").asDouble() >= lastPercent, "percent never decreases: " + r.out());
            lastDone = n.get("done").asLong();
            lastPercent = n.get("percent").asDouble();
        }
        assertEquals(data.length, lastDone);
        assertEquals(100.0, lastPercent);
    }

    /** -t unsafe (no sync) and -t writeback (deferred syncs, one flush) both produce the source's contents. */
    @Test
    void convertCacheModesCopyEverything() throws Exception {
        Path src = dir.resolve("src.raw");
        byte[] data = new byte[12 << 20];
        for (int i = 0; i < data.length; i += 4096) {
            data[i] = (byte) (i >> 12 | 1);
        }
        Files.write(src, data);
        for (String mode : new String[] {"unsafe", "writeback"}) {
            Path q = dir.resolve(mode + ".qcow2");
            Path back = dir.resolve(mode + ".raw");
            JtapImgRunner.ok("convert", "-t", mode, "-f", "raw", "-O", "qcow2", src.toString(), q.toString());
            JtapImgRunner.ok("check", q.toString());
            JtapImgRunner.ok("convert", "-t", mode, "-f", "qcow2", "-O", "raw", q.toString(), back.toString());
            org.junit.jupiter.api.Assertions.assertArrayEquals(data, Files.readAllBytes(back), mode);
        }
    }

    /** Help lists every subcommand, although a command line naming one registers only that one. */
    @Test
    void helpListsEverySubcommand() {
        Run r = JtapImgRunner.ok("--help");
        for (String c : new String[] {"create", "info", "check", "convert", "compare", "map", "measure", "resize",
            "rebase", "commit", "snapshot"}) {
            assertTrue(r.out().contains("\n  " + c + " "), c + " missing from help: " + r);
        }
        Run sub = JtapImgRunner.run("convert", "--bogus", "a", "b");
        assertEquals(1, sub.exit(), sub.toString());
        assertTrue(sub.err().contains("Try 'jtap-img convert --help'"), sub.toString());
    }

    /** The launcher's class-data-sharing training run: every command it runs succeeds (else no archive). */
    @Test
    void cdsTrainingRunsEveryCommand() throws Exception {
        CdsTraining.main(new String[0]);
    }

    /**
     * convert allocates its target before writing (raw: each written range; qcow2: ahead of the end, trimmed at
     * close): no block stays allocated past a qcow2 target's end, and a raw target's zero blocks stay holes.
     */
    @Test
    void convertAllocatesNoMoreThanItWrites() throws Exception {
        Path src = dir.resolve("src.raw");
        byte[] data = new byte[24 << 20];
        long dataBlocks = 0;
        for (int block = 0; block < data.length / 65536; block++) {
            if (block % 3 != 0) {
                for (int i = block * 65536; i < (block + 1) * 65536; i += 4096) {
                    data[i] = (byte) (i >> 12 | 1);
                }
                dataBlocks++;
            }
        }
        Files.write(src, data);
        Path q = dir.resolve("dst.qcow2");
        Path back = dir.resolve("back.raw");
        JtapImgRunner.ok("convert", "-t", "unsafe", "-f", "raw", "-O", "qcow2", src.toString(), q.toString());
        JtapImgRunner.ok("convert", "-t", "unsafe", "-f", "qcow2", "-O", "raw", q.toString(), back.toString());
        org.junit.jupiter.api.Assertions.assertArrayEquals(data, Files.readAllBytes(back));
        long slack = 64 << 10; // the file system's own extent blocks
        long qcow2End = (Files.size(q) + 4095) / 4096 * 4096;
        assertTrue(DiskUsage.bytes(q) <= qcow2End + slack, "qcow2 target allocated past its end: usage="
                + DiskUsage.bytes(q) + ", size=" + Files.size(q));
        assertTrue(DiskUsage.bytes(back) <= dataBlocks * 65536 + slack, "raw target allocated its zero blocks: usage="
                + DiskUsage.bytes(back) + ", data=" + dataBlocks * 65536);
    }
}
