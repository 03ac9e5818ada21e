package io.jtap.daemon;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class MainTest {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();
    private final ByteArrayOutputStream err = new ByteArrayOutputStream();

    private int run(String... args) {
        return Main.run(args, new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
    }

    /** The main job: a guest's disk and NIC served over the simulated Xen, every byte verified, nothing leaked. */
    @Test
    void demoServesADiskAndANicAndLeaksNothing() {
        assertEquals(0, run("demo", "--disk-mib=8", "--frames=300"), () -> out + "\n" + err);
        String text = out.toString(StandardCharsets.UTF_8);
        assertTrue(text.contains("read 8 MiB back"), text);
        assertTrue(text.contains("every byte matches"), text);
        assertTrue(text.contains("guest->host 300/300 frames intact"), text);
        assertTrue(text.contains("host->guest 300/300 frames intact"), text);
        assertTrue(text.contains("netback served tx 300 packets"), text);
        assertTrue(text.contains("no leaked grant mapping"), text);
        assertTrue(text.endsWith("jtap demo: OK" + System.lineSeparator()), text);
    }

    @Test
    void badArgumentsNameWhatWasWrong() {
        assertEquals(2, run("demo", "--disk-mib=0"));
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("option=--disk-mib=0"), err::toString);
        assertEquals(1, run("frobnicate"));
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("unknown command: frobnicate"), err::toString);
        assertEquals(1, run());
    }
}
