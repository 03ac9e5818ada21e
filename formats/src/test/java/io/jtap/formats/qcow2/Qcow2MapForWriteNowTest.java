package io.jtap.formats.qcow2;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.formats.CreateOptions;
import io.jtap.formats.Extent;
import io.jtap.formats.Image;
import io.jtap.formats.ImageFormats;
import io.jtap.formats.OpenOptions;
import io.jtap.formats.WriteMapping;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link Image#mapForWriteNow} on qcow2, blkback's ring-thread mapping of a write: the in-place answer of
 * {@link Image#mapForWrite} for clusters the image owns, null for anything that would allocate, copy, read metadata
 * or wait for the lock, and a mapping that ends without the lock yet still holds off snapshots while open.
 */
class Qcow2MapForWriteNowTest {
    private static final long MIB = 1 << 20;
    private static final int CLUSTER = 4096;

    @TempDir
    Path dir;

    private Path image() throws IOException {
        Path p = dir.resolve("a.qcow2");
        // 4 KiB clusters: one L2 table maps 2 MiB, so the image has several.
        ImageFormats.defaults().get("qcow2").create(p, CreateOptions.ofSize(16 * MIB)
                .with("cluster_size", Integer.toString(CLUSTER)));
        try (Image img = ImageFormats.defaults().get("qcow2").open(p, OpenOptions.defaults())) {
            img.write(MIB, ByteBuffer.wrap(new byte[4 * CLUSTER]));
            img.write(9 * MIB, ByteBuffer.wrap(new byte[CLUSTER]));
            img.flush();
        }
        return p;
    }

    @Test
    void mapsOwnedClustersInPlaceAndNothingElse() throws Exception {
        Path p = image();
        try (Image img = ImageFormats.defaults().get("qcow2").open(p, OpenOptions.defaults())) {
            assertNull(img.mapForWriteNow(MIB, 8192), "its L2 table is not cached yet");
            img.mapForRead(MIB, 8192);
            WriteMapping m = img.mapForWriteNow(MIB + 512, 3 * CLUSTER);
            assertNotNull(m, "owned clusters, table cached");
            WriteMapping reference = img.mapForWrite(MIB + 512, 3 * CLUSTER);
            assertEquals(reference.extents(), m.extents(), "the same extents as mapForWrite");
            assertTrue(m.extents().stream().allMatch(e -> e.kind() == Extent.Kind.DATA));
            reference.complete();
            m.complete();

            assertNull(img.mapForWriteNow(MIB + 4 * CLUSTER, CLUSTER), "unallocated: needs an allocation");
            assertNull(img.mapForWriteNow(MIB + 3 * CLUSTER, 2 * CLUSTER), "partly unallocated");
            assertNull(img.mapForWriteNow(4 * MIB, CLUSTER), "no L2 table there: needs one");
            assertNull(img.mapForWriteNow(MIB, 8 * MIB + CLUSTER), "reaches an uncached table");
            assertThrows(IllegalArgumentException.class, () -> img.mapForWriteNow(16 * MIB, CLUSTER),
                    "beyond the disk");

            // A write in flight that allocates: its cluster is pending, and nothing else may map it.
            WriteMapping allocating = img.mapForWrite(MIB + 4 * CLUSTER, CLUSTER);
            assertNull(img.mapForWriteNow(MIB + 4 * CLUSTER, 512), "a cluster being allocated");
            allocating.complete();
            WriteMapping linked = img.mapForWriteNow(MIB + 4 * CLUSTER, 512);
            assertNotNull(linked, "linked now: owned");
            linked.complete();
        }
    }

    @Test
    void neverWaitsForTheLockAndCompletesWithoutIt() throws Exception {
        Path p = image();
        try (Image img = ImageFormats.defaults().get("qcow2").open(p, OpenOptions.defaults())) {
            img.mapForRead(MIB, CLUSTER);
            WriteMapping open = img.mapForWriteNow(MIB, CLUSTER);
            WriteMapping toAbort = img.mapForWriteNow(MIB + CLUSTER, CLUSTER);
            assertNotNull(open);
            assertNotNull(toAbort);
            Qcow2Image q = (Qcow2Image) img;
            CountDownLatch held = new CountDownLatch(1);
            CountDownLatch release = new CountDownLatch(1);
            ExecutorService holder = Executors.newSingleThreadExecutor();
            ExecutorService ending = Executors.newSingleThreadExecutor();
            try {
                holder.submit(() -> {
                    q.lockForTest().lock();
                    try {
                        held.countDown();
                        release.await();
                    } finally {
                        q.lockForTest().unlock();
                    }
                    return null;
                });
                held.await();
                assertNull(img.mapForWriteNow(MIB, CLUSTER), "the metadata lock is held elsewhere");
                // Completing and aborting an in-place mapping must not need the lock: the holder keeps it until both
                // have returned. Were they to wait for it, they would never return and the test would fail here.
                Future<?> ended = ending.submit(() -> {
                    open.complete();
                    toAbort.abort();
                    return null;
                });
                ended.get(60, TimeUnit.SECONDS);
            } finally {
                release.countDown();
                holder.shutdown();
                ending.shutdown();
                assertTrue(holder.awaitTermination(60, TimeUnit.SECONDS));
            }
            // Both ended: a snapshot may be taken again.
            q.createSnapshot("after");
        }
    }

    @Test
    void anOpenMappingHoldsOffSnapshotsAndASnapshotEndsInPlaceWriting() throws Exception {
        Path p = image();
        try (Image img = ImageFormats.defaults().get("qcow2").open(p, OpenOptions.defaults())) {
            Qcow2Image q = (Qcow2Image) img;
            img.mapForRead(MIB, CLUSTER);
            WriteMapping m = img.mapForWriteNow(MIB, CLUSTER);
            assertNotNull(m);
            IOException refused = assertThrows(IOException.class, () -> q.createSnapshot("busy"));
            assertTrue(refused.getMessage().contains("write_mappings=1"), refused.getMessage());
            m.complete();
            q.createSnapshot("s1");
            // The cluster is shared with the snapshot now (no COPIED): writing it needs a copy, so not on the ring.
            img.mapForRead(MIB, CLUSTER);
            assertNull(img.mapForWriteNow(MIB, CLUSTER), "shared with a snapshot");
        }
    }

    @Test
    void dataWrittenThroughTheMappingReadsBack() throws Exception {
        Path p = image();
        byte[] data = new byte[3 * CLUSTER];
        for (int i = 0; i < data.length; i++) {
            data[i] = (byte) (i * 31 + 7);
        }
        try (Image img = ImageFormats.defaults().get("qcow2").open(p, OpenOptions.defaults())) {
            img.mapForRead(MIB, CLUSTER);
            WriteMapping m = img.mapForWriteNow(MIB + 100, data.length);
            assertNotNull(m);
            List<Extent> extents = m.extents();
            try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
                for (Extent e : extents) {
                    ch.write(ByteBuffer.wrap(data, (int) (e.offset() - MIB - 100), (int) e.length()), e.hostOffset());
                }
            }
            m.complete();
            img.flush();
        }
        try (Image img = ImageFormats.defaults().get("qcow2").open(p, OpenOptions.defaults())) {
            ByteBuffer back = ByteBuffer.allocate(data.length);
            img.read(MIB + 100, back);
            assertArrayEquals(data, back.array());
        }
    }

    /**
     * A write mapped in place before a discard may still be landing in the cluster after the discard and a flush
     * (blkback: another ring of the same disk): the cluster stays allocated — not reused, its hole not punched —
     * until that write has ended, and is freed by the next flush after that even while later writes are open.
     */
    @Test
    void aDiscardedClusterIsNotFreedUnderAWriteMappedBeforeTheDiscard() throws Exception {
        Path p = image();
        try (Image img = ImageFormats.defaults().get("qcow2").open(p, OpenOptions.defaults())) {
            Qcow2Image q = (Qcow2Image) img;
            long host = img.mapForRead(MIB, CLUSTER).get(0).hostOffset();
            WriteMapping landing = img.mapForWriteNow(MIB, CLUSTER);
            assertNotNull(landing);
            img.discard(MIB, CLUSTER);
            img.flush();
            assertEquals(1, q.refcountForTest(host), "held while the write mapped before the discard is open");
            img.write(5 * MIB, ByteBuffer.wrap(new byte[CLUSTER]).put(0, (byte) 9));
            img.flush();
            long fresh = img.mapForRead(5 * MIB, CLUSTER).get(0).hostOffset();
            assertTrue(fresh != host, "a new cluster does not reuse the held one: host=" + host);

            WriteMapping later = img.mapForWriteNow(MIB + CLUSTER, CLUSTER);
            assertNotNull(later);
            landing.complete();
            img.flush();
            assertEquals(0, q.refcountForTest(host), "freed once the earlier write ended, a later one still open");
            later.complete();
            img.flush();
        }
        try (Image img = ImageFormats.defaults().get("qcow2").open(p, OpenOptions.defaults())) {
            assertTrue(((Qcow2Image) img).check(false, false).isClean(), "consistent after all that");
        }
    }
}
