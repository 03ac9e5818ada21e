package io.jtap.tap;

import static org.junit.jupiter.api.Assertions.fail;

import org.junit.jupiter.api.Assumptions;

/**
 * The rule for tests that need something of the machine (root, {@code /dev/net/tun}, gcc): in CI ({@code CI=true}) a
 * missing prerequisite fails the test, so that CI never goes green by skipping; elsewhere the test is skipped and the
 * reason printed.
 */
public final class Ci {
    private Ci() {
    }

    public static boolean isCi() {
        return "true".equalsIgnoreCase(System.getenv("CI"));
    }

    /** Fails (in CI) or skips (elsewhere) with {@code reason} unless {@code satisfied}. */
    public static void require(boolean satisfied, String reason) {
        if (satisfied) {
            return;
        }
        if (isCi()) {
            fail("prerequisite missing in CI (CI=true): " + reason);
        }
        System.out.println("SKIPPED (not in CI): " + reason);
        Assumptions.assumeTrue(false, reason);
    }

    /** Whether the effective uid is 0 ({@code Uid:} in {@code /proc/self/status}: real, effective, saved, fs). */
    public static boolean isRoot() {
        try {
            for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/self/status"))) {
                if (line.startsWith("Uid:")) {
                    return line.substring(4).trim().split("\\s+")[1].equals("0");
                }
            }
        } catch (java.io.IOException e) {
            return false;
        }
        return false;
    }
}
