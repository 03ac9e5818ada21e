package io.jtap.ring;

import static org.junit.jupiter.api.Assertions.fail;

import io.jtap.xen.CLayoutProbe;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.Assumptions;

/**
 * The C toolchain the interoperability tests compile Xen's own headers with: gcc for the native x86_64 ABI and
 * {@code gcc -m32} (Debian gcc-multilib, see scripts/install-deps.sh) for the x86_32 ABI. A missing toolchain fails
 * the test under CI ({@code CI=true}) and skips it elsewhere, printing why either way. Commands run through
 * native's {@link CLayoutProbe#run}.
 */
final class Gcc {
    /** The spec: Debian libxen-dev's public headers. */
    static final Path XEN_IO_HEADERS = Path.of("/usr/include/xen/io");

    enum Target {
        X86_64(List.of("-m64")),
        X86_32(List.of("-m32"));

        final List<String> flags;

        Target(final List<String> flags) {
            this.flags = flags;
        }
    }

    private Gcc() {
    }

    /** Fails (CI) or skips (elsewhere) unless gcc can build and run a program against Xen's headers for target. */
    static void requireAvailable(final Target target, final Path workDir) {
        final String cause = unavailabilityCause(target, workDir);
        if (cause == null) {
            return;
        }
        final String message = "C toolchain unavailable for " + target + ": " + cause
            + " (install with scripts/install-deps.sh)";
        System.out.println("[" + target + "] " + message);
        if ("true".equals(System.getenv("CI"))) {
            fail(message);
        }
        Assumptions.abort(message);
    }

    private static String unavailabilityCause(final Target target, final Path workDir) {
        if (!System.getProperty("os.arch").equals("amd64")) {
            return "host is not x86_64: os.arch=" + System.getProperty("os.arch");
        }
        for (final String header : List.of("ring.h", "blkif.h", "netif.h")) {
            if (!Files.isReadable(XEN_IO_HEADERS.resolve(header))) {
                return "missing Xen header " + XEN_IO_HEADERS.resolve(header) + " (Debian libxen-dev)";
            }
        }
        try {
            final Path probe = workDir.resolve("probe.c");
            Files.writeString(probe, "#include <stdint.h>\n#include <stdio.h>\n#include <xen/io/blkif.h>\n"
                + "int main(void) { printf(\"%d\\n\", (int) sizeof(struct blkif_request)); return 0; }\n");
            final Path exe = compile(probe, target);
            CLayoutProbe.run(List.of(exe.toString()));
            return null;
        } catch (final IOException | AssertionError e) {
            return e.getMessage();
        } catch (final InterruptedException e) {
            Thread.currentThread().interrupt();
            return "interrupted";
        }
    }

    /** Compiles source to an executable next to it; throws AssertionError carrying gcc's diagnostics on failure. */
    static Path compile(final Path source, final Target target) throws IOException, InterruptedException {
        final Path exe = source.resolveSibling(source.getFileName().toString().replace(".c", "") + "-" + target);
        final List<String> command = new ArrayList<>(List.of("gcc", "-std=gnu11", "-O2", "-Wall", "-Wextra",
            "-Werror"));
        command.addAll(target.flags);
        command.addAll(List.of("-o", exe.toString(), source.toString()));
        CLayoutProbe.run(command);
        return exe;
    }
}
