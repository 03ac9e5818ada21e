package io.jtap.formats.tool;

import io.jtap.formats.ImageFormats;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/**
 * The training run for {@code bin/jtap-img}'s class-data-sharing archive: runs the common commands in one JVM on
 * small images in a temporary directory, so that a class list dumped from it ({@code -XX:DumpLoadedClassList})
 * covers what a real run loads — picocli's model and parser, the raw and qcow2 plugins, the libc binding, the convert
 * pipeline — whichever command comes first after a build. A static archive is made from that list: unlike a dynamic
 * one ({@code -XX:ArchiveClassesAtExit}) on Java 17 it takes picocli's Java 5 class files, which otherwise go through
 * the old verifier on every run.
 *
 * <p>Writes nothing outside its temporary directory and prints nothing; a failing command fails the training (the
 * launcher then runs without an archive).
 */
public final class CdsTraining {
    /** Enough for a few qcow2 clusters, L2 tables and a data run longer than one convert chunk. */
    private static final int IMAGE_BYTES = 8 << 20;

    private CdsTraining() {
    }

    public static void main(String[] args) throws IOException {
        Path dir = Files.createTempDirectory("jtap-img-cds");
        try {
            train(dir);
        } finally {
            try (Stream<Path> files = Files.walk(dir)) {
                for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(p);
                }
            }
        }
    }

    private static void train(Path dir) throws IOException {
        String raw = dir.resolve("a.raw").toString();
        String qcow2 = dir.resolve("a.qcow2").toString();
        String copy = dir.resolve("b.qcow2").toString();
        String back = dir.resolve("c.raw").toString();
        try (FileChannel ch = FileChannel.open(Path.of(raw), StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            ByteBuffer data = ByteBuffer.allocate(3 << 20);
            for (int i = 0; i < data.capacity(); i += 8) {
                data.putLong(i, i % 65536 < 4096 ? 0 : i * 0x9E3779B97F4A7C15L);
            }
            ch.write(data, 1 << 20);
            ch.truncate(IMAGE_BYTES);
            ch.write(ByteBuffer.allocate(1), IMAGE_BYTES - 1);
        }
        List<String[]> commands = List.of(
                new String[] {"--version"},
                new String[] {"convert", "-f", "raw", "-O", "qcow2", raw, qcow2},
                new String[] {"convert", "-t", "unsafe", "-f", "qcow2", "-O", "qcow2", qcow2, copy},
                new String[] {"convert", "-f", "qcow2", "-O", "raw", copy, back},
                new String[] {"compare", "-f", "raw", "-F", "qcow2", raw, copy},
                new String[] {"info", qcow2},
                new String[] {"info", "--output=json", qcow2},
                new String[] {"check", qcow2},
                new String[] {"map", "--output=json", qcow2},
                new String[] {"measure", "-O", "qcow2", raw},
                new String[] {"create", "-f", "qcow2", "-b", qcow2, "-F", "qcow2", dir.resolve("d.qcow2").toString()},
                new String[] {"resize", back, "16M"},
                new String[] {"snapshot", "-l", qcow2});
        PrintStream quiet = new PrintStream(OutputStream.nullOutputStream());
        for (String[] command : commands) {
            int code = new JtapImg(quiet, quiet, ImageFormats.defaults(), ImageChecker.installed()).run(command);
            if (code != 0) {
                throw new IOException("training command failed: command=" + String.join(" ", command) + ", exit="
                        + code);
            }
        }
        // A usage error, as a mistyped command line takes that path.
        new JtapImg(quiet, quiet, ImageFormats.defaults(), ImageChecker.installed()).run("convert", "--no-such-flag");
    }
}
