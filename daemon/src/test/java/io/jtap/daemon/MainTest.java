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

    @Test
    void demoServesEveryRequestAndLeaksNothing() {
        assertEquals(0, run("demo", "--requests=5000"), err::toString);
        String text = out.toString(StandardCharsets.UTF_8);
        assertTrue(text.contains("served 5000 blkif requests (2500 reads, 2500 writes)"), text);
        assertTrue(text.contains("no leaked mapping"), text);
    }

    @Test
    void badArgumentsNameWhatWasWrong() {
        assertEquals(2, run("demo", "--requests=0"));
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("option=--requests=0"), err::toString);
        assertEquals(1, run("frobnicate"));
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("unknown command: frobnicate"), err::toString);
        assertEquals(1, run());
    }
}
