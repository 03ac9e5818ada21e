package io.jtap.aio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** The factory opens exactly the engine asked for, and says why when it cannot; availability matches the sysctl. */
class BlockIoEnginesTest {
    @Test
    void threadsOpensTheThreadPool() throws IOException {
        try (BlockIoEngine e = BlockIoEngines.open(BlockIoEngines.THREADS, 16, 11)) {
            assertTrue(e instanceof ThreadPoolIoEngine);
            assertEquals("threads", e.kind());
            assertEquals(16, e.capacity());
            assertEquals(11, e.maxSegments());
        }
    }

    @Test
    void ioUringOpensIoUringOrNamesTheCause() throws IOException {
        if (LinuxIoUring.isAvailable()) {
            try (BlockIoEngine e = BlockIoEngines.open(BlockIoEngines.IO_URING)) {
                assertTrue(e instanceof LinuxIoUring, "no silent fallback: " + e.getClass());
                assertEquals(BlockIoEngines.DEFAULT_QUEUE_DEPTH, e.capacity());
                assertEquals(BlockIoEngines.DEFAULT_MAX_SEGMENTS, e.maxSegments());
            }
        } else {
            IOException failure = assertThrows(IOException.class, () -> BlockIoEngines.open(BlockIoEngines.IO_URING));
            assertTrue(failure.getMessage().contains("kind=io_uring"), failure.getMessage());
            assertTrue(failure.getMessage().contains(LinuxIoUring.unavailabilityCause().getMessage()),
                    failure.getMessage());
        }
    }

    @Test
    void anUnknownKindListsTheKnownOnes() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> BlockIoEngines.open("aio"));
        assertTrue(e.getMessage().contains("io_uring") && e.getMessage().contains("threads"), e.getMessage());
    }

    @Test
    void badSizesAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> BlockIoEngines.open(BlockIoEngines.THREADS, 0, 11));
        assertThrows(IllegalArgumentException.class, () -> BlockIoEngines.open(BlockIoEngines.THREADS, 8, 1025));
    }

    @Test
    void ioUringAvailabilityAgreesWithTheSysctl() throws IOException {
        Path sysctl = Path.of(IoUringDescriptor.IO_URING_DISABLED_SYSCTL);
        if (Files.isReadable(sysctl) && Files.readString(sysctl).trim().equals("2")) {
            assertFalse(LinuxIoUring.isAvailable());
            assertTrue(LinuxIoUring.unavailabilityCause().getMessage().contains("io_uring_disabled"));
        }
        System.out.println("io_uring: " + LinuxIoUring.availability());
        if (!LinuxIoUring.isAvailable()) {
            assertThrows(UnsatisfiedLinkError.class, LinuxIoUring::ensureAvailability);
        }
    }
}
