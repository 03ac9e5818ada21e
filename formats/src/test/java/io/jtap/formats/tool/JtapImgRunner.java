package io.jtap.formats.tool;

import io.jtap.formats.ImageFormats;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

/** Runs jtap-img in-process and captures its exit code, stdout and stderr. */
final class JtapImgRunner {
    record Run(int exit, String out, String err) {
        @Override
        public String toString() {
            return "exit=" + exit + "\nstdout:\n" + out + "\nstderr:\n" + err;
        }
    }

    private JtapImgRunner() {
    }

    static Run run(String... args) {
        return run(ImageChecker.installed(), args);
    }

    static Run run(ImageChecker checker, String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        try (PrintStream o = new PrintStream(out, true, StandardCharsets.UTF_8);
             PrintStream e = new PrintStream(err, true, StandardCharsets.UTF_8)) {
            int code = new JtapImg(o, e, ImageFormats.defaults(), checker).run(args);
            return new Run(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
        }
    }

    /** Runs and fails unless the exit code is 0. */
    static Run ok(String... args) {
        Run r = run(args);
        if (r.exit() != 0) {
            throw new AssertionError("jtap-img " + String.join(" ", args) + " failed: " + r);
        }
        return r;
    }
}
