package io.jtap.xen.linux;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.sun.jna.Memory;
import com.sun.jna.Pointer;
import io.jtap.xen.linux.Syscalls.ErrnoException;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The allocation-free read, write and poll wrappers: results, -errno without exceptions, and the throwing forms. */
class SyscallsTest {
    @BeforeEach
    void requireLibC() {
        assumeTrue(LibC.loadFailure() == null, () -> "libc unavailable: " + LibC.loadFailure());
    }

    @Test
    void readAndWriteMoveBytesAndReportErrnoAsData() throws Exception {
        int fd = Syscalls.eventfd(0, LibC.EFD_NONBLOCK);
        try (Memory buf = new Memory(8)) {
            long address = Pointer.nativeValue(buf);
            assertEquals(-LibC.EAGAIN, Syscalls.tryRead(fd, address, 8), "an empty nonblocking eventfd");
            assertEquals(0, Syscalls.pollIn(new int[] {fd}, 0), "not readable while empty");
            buf.setLong(0, 5);
            assertEquals(8, Syscalls.tryWrite(fd, address, 8));
            buf.setLong(0, 2);
            assertEquals(8, Syscalls.write(fd, buf, 8));
            assertEquals(1, Syscalls.pollIn(new int[] {fd}, 0), "readable once written (bit 0: the first fd)");
            buf.setLong(0, 0);
            assertEquals(8, Syscalls.read(fd, buf, 8));
            assertEquals(7, buf.getLong(0), "the eventfd's counter: 5 + 2");
            assertEquals(-LibC.EINVAL, Syscalls.tryWrite(fd, address, 4), "an eventfd takes 8 bytes");
            ErrnoException e = assertThrows(ErrnoException.class, () -> Syscalls.read(fd, buf, 8));
            assertEquals(LibC.EAGAIN, e.errno());
            assertTrue(e.getMessage().contains("read(" + fd + ", 8)"), e.getMessage());
        } finally {
            Syscalls.close(fd);
        }
        assertEquals(-LibC.EBADF, Syscalls.tryRead(fd, 0, 8), "a closed fd");
    }
}
