package io.jtap.tap;

import static org.junit.jupiter.api.Assertions.fail;

import org.junit.jupiter.api.Assumptions;

/**
 * The rule for tests that need something of the machine (root, {@code /dev/net/tun}, gcc): in CI ({@code CI=true}) a
 * missing prerequisite fails the test, so that CI never goes green by skipping; elsewhere the test is skipped and the
 * reason printed.
 */
final class Ci {
    private Ci() {
    }

    static boolean isCi() {
        return "true".equalsIgnoreCase(System.getenv("CI"));
    }

    /** Fails (in CI) or skips (elsewhere) with {@code reason} unless {@code satisfied}. */
    static void require(boolean satisfied, String reason) {
        if (satisfied) {
            return;
        }
        if (isCi()) {
            fail("prerequisite missing in CI (CI=true): " + reason);
        }
        System.out.println("SKIPPED (not in CI): " + reason);
        Assumptions.assumeTrue(false, reason);
    }

    static boolean isRoot() {
        return "root".equals(System.getProperty("user.name"));
    }
}
