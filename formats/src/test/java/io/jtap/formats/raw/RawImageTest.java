package io.jtap.formats.raw;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.formats.BlockStatus;
import io.jtap.formats.CreateOptions;
import io.jtap.formats.Extent;
import io.jtap.formats.Image;
import io.jtap.formats.ImageFormats;
import io.jtap.formats.OpenOptions;
import io.jtap.formats.WriteMapping;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RawImageTest {
    private static final long MIB = 1 << 20;

    @TempDir
    Path dir;

    private Image create(String name, CreateOptions options, OpenOptions open) throws Exception {
        Path p = dir.resolve(name);
        RawFormat raw = (RawFormat) ImageFormats.defaults().get("raw");
        raw.create(p, options);
        return raw.open(p, open);
    }

    @Test
    void createIsSparseAndReadsZero() throws Exception {
        try (Image img = create("a.raw", CreateOptions.ofSize(4 * MIB), OpenOptions.defaults())) {
            assertEquals(4 * MIB, img.size());
            assertEquals(BlockStatus.Kind.ZERO, img.blockStatus(0, 4 * MIB).kind());
            ByteBuffer b = ByteBuffer.allocate(4096);
            img.read(MIB, b);
            assertArrayEquals(new byte[4096], b.array());
        }
    }

    @Test
    void writeThenBlockStatusDiscardAndZeroes() throws Exception {
        try (Image img = create("b.raw", CreateOptions.ofSize(4 * MIB), OpenOptions.defaults())) {
            byte[] data = new byte[64 * 1024];
            java.util.Arrays.fill(data, (byte) 0x5a);
            img.write(MIB, ByteBuffer.wrap(data));
            BlockStatus st = img.blockStatus(MIB, MIB);
            assertEquals(BlockStatus.Kind.DATA, st.kind());
            assertTrue(st.length() >= data.length, "data run " + st.length());
            assertEquals(BlockStatus.Kind.ZERO, img.blockStatus(0, MIB).kind());
            assertEquals(MIB, img.blockStatus(0, MIB).length());

            img.writeZeroes(MIB + 100, 1000);
            ByteBuffer b = ByteBuffer.allocate(2000);
            img.read(MIB, b);
            for (int i = 0; i < 2000; i++) {
                assertEquals(i >= 100 && i < 1100 ? 0 : 0x5a, b.get(i) & 0xff, "byte " + i);
            }
            img.discard(MIB, 64 * 1024);
            assertEquals(BlockStatus.Kind.ZERO, img.blockStatus(MIB, 64 * 1024).kind());
        }
    }

    @Test
    void mappingIsIdentityAndTwoPhaseWriteLandsInPlace() throws Exception {
        try (Image img = create("c.raw", CreateOptions.ofSize(MIB), OpenOptions.defaults())) {
            assertEquals(java.util.List.of(Extent.data(4096, 8192, ((RawImage) img).file(), 4096)),
                    img.mapForRead(4096, 8192));
            try (WriteMapping m = img.mapForWrite(8192, 512)) {
                Extent e = m.extents().get(0);
                e.file().write(ByteBuffer.wrap(new byte[] {1, 2, 3}), e.hostOffset());
                m.complete();
            }
            ByteBuffer b = ByteBuffer.allocate(3);
            img.read(8192, b);
            assertArrayEquals(new byte[] {1, 2, 3}, b.array());
        }
    }

    @Test
    void directIoChecksAlignmentAndBouncesBuffers() throws Exception {
        Path p = dir.resolve("d.raw");
        new RawFormat().create(p, CreateOptions.ofSize(MIB));
        Image img;
        try {
            img = new RawFormat().open(p, OpenOptions.defaults().withDirect(true));
        } catch (java.io.IOException e) {
            org.junit.jupiter.api.Assumptions.assumeTrue(false, "O_DIRECT unsupported on this file system: " + e);
            return;
        }
        try (img) {
            int a = img.alignment();
            assertTrue(a == 512 || a == 4096, "alignment " + a);
            assertThrows(IllegalArgumentException.class, () -> img.read(1, ByteBuffer.allocate(a)));
            byte[] data = new byte[a];
            data[0] = 7;
            img.write(a, ByteBuffer.wrap(data));
            ByteBuffer back = ByteBuffer.allocate(a);
            img.read(a, back);
            assertEquals(7, back.get(0));
        }
    }

    @Test
    void preallocationFullAllocates() throws Exception {
        try (Image img = create("e.raw", CreateOptions.ofSize(MIB).withPreallocation(
                CreateOptions.Preallocation.FULL), OpenOptions.defaults())) {
            assertEquals(BlockStatus.Kind.DATA, img.blockStatus(0, MIB).kind());
        }
        assertThrows(java.nio.file.FileAlreadyExistsException.class,
                () -> new RawFormat().create(dir.resolve("e.raw"), CreateOptions.ofSize(MIB)));
        assertEquals(MIB, Files.size(dir.resolve("e.raw")));
    }
}
