package io.jtap.formats.qcow2;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.formats.CorruptImageException;
import io.jtap.formats.Image;
import io.jtap.formats.ImageFormats;
import io.jtap.formats.OpenOptions;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Random;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Images that once broke jtap, each named after its bug (found by {@link Qcow2FuzzTest}; a 64 KiB qemu-img image
 * with 512-byte clusters, one field edited). Each now fails with a {@link CorruptImageException} naming the field,
 * and survives the fuzz test's whole open/read/check/repair/write exercise within its time limit.
 */
class Qcow2GoldenFixturesTest {
    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        // a refcount table entry with bit 63 set was read at a negative position: IllegalArgumentException
        "refcount-table-entry-bit63-negative-offset   | write | refcount block",
        // (size + perL2 - 1) overflowed, the L1-too-small check passed, and reading 2^63 bytes hung
        "size-near-long-max-overflows-l1-size-check   | open  | L1 table too small",
        // an L2 table at 1 TiB was read as zeros and then written there: a 1 TiB sparse file, checks that never end
        "l1-entry-l2-table-beyond-end-of-file         | read  | L2 table beyond the end of the file",
        // refcount 0 on the header cluster: allocation handed out cluster 0 and the header was overwritten
        "header-cluster-refcount-zero-allocated-over-header | write | refusing to allocate",
        // a backing file name of NUL bytes made Path.of throw InvalidPathException
        "backing-file-name-with-nul-invalid-path       | read  | contains NUL",
        // a COPIED L2 entry pointing at 1 TiB was trusted and written in place: the file grew sparsely to 1 TiB
        "l2-entry-copied-at-1tib-written-in-place      | write | refusing to write its host cluster in place",
    })
    void fixtureFailsCleanly(String name, String step, String message) throws Exception {
        Path img = dir.resolve(name + ".qcow2");
        try (InputStream in = getClass().getResourceAsStream("fuzz/" + name + ".qcow2")) {
            Files.copy(in, img);
        }
        CorruptImageException e = assertThrows(CorruptImageException.class, () -> {
            try (Image image = ImageFormats.defaults().get("qcow2").open(img,
                    OpenOptions.defaults().withReadOnly(step.equals("read")))) {
                if (step.equals("read")) {
                    image.read(0, ByteBuffer.allocate(4096));
                } else {
                    image.write(60_000, ByteBuffer.allocate(100)); // one new cluster
                    image.flush();
                }
            }
        });
        assertTrue(e.getMessage().contains(message), name + ": " + e.getMessage());
        assertTimeoutPreemptively(Duration.ofSeconds(Qcow2FuzzTest.CASE_TIMEOUT_SECONDS),
                () -> Qcow2FuzzTest.exercise(img, new Random(1)), name);
        assertTrue(Files.size(img) < 1 << 20, name + ": the file must not have been blown up");
    }

}
