package io.jtap.formats.qcow2;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.formats.CreateOptions;
import io.jtap.formats.Image;
import io.jtap.formats.ImageFormats;
import io.jtap.formats.OpenOptions;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Path;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Every header field jtap relies on is validated on open, with a message naming the field and its value. The image:
 * jtap-made, 64 KiB, 512-byte clusters (header 0, refcount table 512, refcount block 1024, L1 table 1536, file
 * 2048 bytes).
 */
class Qcow2HeaderValidationTest {
    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        "version 4                          | 4   | 4 | 4                   | version=4",
        "cluster_bits 8                     | 20  | 4 | 8                   | cluster_bits=8",
        "cluster_bits 22                    | 20  | 4 | 22                  | cluster_bits=22",
        "negative size                      | 24  | 8 | -512                | size=-512",
        "size overflowing the L1 check      | 24  | 8 | 9223372036854775807 | size=9223372036854775807",
        "l1_size absurd                     | 36  | 4 | 2147483647          | l1_size=2147483647",
        "l1_size beyond the file            | 36  | 4 | 100000              | l1_table_offset=1536",
        "l1_table_offset in the header      | 40  | 8 | 0                   | l1_table_offset=0",
        "l1_table_offset unaligned          | 40  | 8 | 1600                | l1_table_offset=1600",
        "l1_table_offset beyond the file    | 40  | 8 | 1099511627776       | l1_table_offset=1099511627776",
        "L1 over the refcount table         | 40  | 8 | 512                 | L1 table overlaps the refcount table",
        "refcount_table_offset in header    | 48  | 8 | 0                   | refcount_table_offset=0",
        "refcount_table_offset beyond file  | 48  | 8 | 1048576             | refcount_table_offset=1048576",
        "refcount_table_clusters absurd     | 56  | 4 | 100000              | refcount_table_clusters=100000",
        "refcount_table_clusters zero       | 56  | 4 | 0                   | refcount_table_clusters=0",
        "nb_snapshots absurd                | 60  | 4 | 70000               | nb_snapshots=70000",
        "snapshots_offset beyond the file   | 60  | 4 | 1                   | snapshots_offset=0",
        "refcount_order 7                   | 96  | 4 | 7                   | refcount_order=7",
        "header_length beyond the cluster   | 100 | 4 | 4096                | header_length=4096",
        "header_length too short            | 100 | 4 | 72                  | header_length=72",
        "unknown incompatible feature       | 72  | 8 | 256                 | bits=0x100",
        "encryption                         | 32  | 4 | 1                   | crypt_method=1",
        "extension length overrunning       | 116 | 4 | 100000              | length=100000",
        "backing name in the fixed header   | 8   | 8 | 16                  | backing_file_offset=16",
        "backing name offset huge | 8   | 8 | -9223372036854775800 | backing_file_offset=-9223372036854775800",
    })
    void badFieldIsNamed(String what, int offset, int width, long value, String expected) throws Exception {
        Path img = dir.resolve("bad.qcow2");
        ImageFormats.defaults().get("qcow2").create(img, CreateOptions.ofSize(65536).with("cluster_size", "512"));
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.seek(offset);
            if (width == 8) {
                f.writeLong(value);
            } else {
                f.writeInt((int) value);
            }
            if (what.startsWith("extension")) {
                f.seek(112);
                f.writeInt(0x12345678);
            }
            if (what.startsWith("backing")) {
                f.seek(16);
                f.writeInt(8);
            }
        }
        IOException e = assertThrows(IOException.class, () -> {
            try (Image image = ImageFormats.defaults().get("qcow2").open(img,
                    OpenOptions.defaults().withReadOnly(true))) {
                image.read(0, java.nio.ByteBuffer.allocate(512));
            }
        });
        assertTrue(e.getMessage().contains(expected), what + ": " + e.getMessage());
    }

    @ParameterizedTest(name = "truncated to {0} bytes")
    @CsvSource({"0", "3", "50", "100", "700", "1540"})
    void truncatedFilesAreRefused(int length) throws Exception {
        Path img = dir.resolve("short.qcow2");
        ImageFormats.defaults().get("qcow2").create(img, CreateOptions.ofSize(65536).with("cluster_size", "512"));
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(length);
        }
        assertThrows(IOException.class, () -> ImageFormats.defaults().get("qcow2").open(img,
                OpenOptions.defaults().withReadOnly(true)).close());
    }
}
