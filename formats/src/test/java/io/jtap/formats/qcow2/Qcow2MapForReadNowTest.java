package io.jtap.formats.qcow2;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

import io.jtap.formats.CreateOptions;
import io.jtap.formats.Extent;
import io.jtap.formats.Image;
import io.jtap.formats.ImageFormats;
import io.jtap.formats.OpenOptions;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link Image#mapForReadNow} on qcow2, blkback's ring thread's mapping: the same answer as {@link Image#mapForRead}
 * when the range's L2 tables are in memory, and null instead of a metadata read or a wait for the metadata lock.
 */
class Qcow2MapForReadNowTest {
    private static final long MIB = 1 << 20;

    @TempDir
    Path dir;

    @Test
    void answersFromMemoryOnlyAndNeverWaits() throws Exception {
        Path p = dir.resolve("a.qcow2");
        // 4 KiB clusters: one L2 table maps 2 MiB, so the image has several.
        ImageFormats.defaults().get("qcow2").create(p, CreateOptions.ofSize(16 * MIB).with("cluster_size", "4096"));
        try (Image img = ImageFormats.defaults().get("qcow2").open(p, OpenOptions.defaults())) {
            img.write(MIB, ByteBuffer.wrap(new byte[8192]).put(0, (byte) 1));
            img.write(9 * MIB, ByteBuffer.wrap(new byte[8192]).put(0, (byte) 2));
            img.flush();
        }
        try (Image img = ImageFormats.defaults().get("qcow2").open(p, OpenOptions.defaults())) {
            assertNotNull(img.mapForReadNow(4 * MIB, 8192), "no L2 table there: nothing to read");
            assertNull(img.mapForReadNow(MIB, 8192), "its L2 table is not cached yet");
            List<Extent> loaded = img.mapForRead(MIB, 8192);
            assertEquals(loaded, img.mapForReadNow(MIB, 8192), "cached now: the same answer");
            assertNull(img.mapForReadNow(MIB, 8 * MIB + 8192), "a range reaching an uncached table");

            // Another thread in the metadata lock (a write that allocates): no wait.
            Qcow2Image q = (Qcow2Image) img;
            CountDownLatch held = new CountDownLatch(1);
            CountDownLatch release = new CountDownLatch(1);
            Thread holder = new Thread(() -> {
                q.lockForTest().lock();
                try {
                    held.countDown();
                    release.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                } finally {
                    q.lockForTest().unlock();
                }
            });
            holder.start();
            held.await();
            try {
                assertNull(img.mapForReadNow(MIB, 8192), "the metadata lock is held elsewhere");
            } finally {
                release.countDown();
                holder.join();
            }
            assertEquals(loaded, img.mapForReadNow(MIB, 8192));
        }
    }
}
