package io.jtap.formats.tool;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * The qcow2 header fields that {@code info} reports and the format layer does not expose: version, refcount width,
 * feature bits, compression type. Read-only; offsets from QEMU's {@code docs/interop/qcow2.txt}.
 *
 * @param version         2 or 3
 * @param clusterBits     log2 of the cluster size
 * @param incompatible    incompatible feature bits (bit 0 dirty, 1 corrupt, 4 extended L2)
 * @param compatible      compatible feature bits (bit 0 lazy refcounts)
 * @param refcountBits    refcount width
 * @param compressionType 0 zlib, 1 zstd
 */
record Qcow2HeaderFields(int version, int clusterBits, long incompatible, long compatible, int refcountBits,
                         int compressionType) {
    private static final int READ_BYTES = 112;

    static Qcow2HeaderFields read(Path path) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(READ_BYTES);
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            while (b.hasRemaining() && ch.read(b) > 0) {
                // read the fixed header
            }
        }
        int version = b.getInt(4);
        int clusterBits = b.getInt(20);
        if (version < 3) {
            return new Qcow2HeaderFields(version, clusterBits, 0, 0, 16, 0);
        }
        int headerLength = b.getInt(100);
        return new Qcow2HeaderFields(version, clusterBits, b.getLong(72), b.getLong(80), 1 << b.getInt(96),
                headerLength > 104 ? b.get(104) & 0xff : 0);
    }

    boolean dirty() {
        return (incompatible & 1) != 0;
    }

    boolean corrupt() {
        return (incompatible & 2) != 0;
    }

    boolean extendedL2() {
        return (incompatible & 16) != 0;
    }

    boolean lazyRefcounts() {
        return (compatible & 1) != 0;
    }

    String compat() {
        return version >= 3 ? "1.1" : "0.10";
    }

    String compressionName() {
        return compressionType == 1 ? "zstd" : "zlib";
    }
}
