package io.jtap.formats.qcow2;

import io.jtap.formats.BackingReference;
import io.jtap.formats.HostFile;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Optional;

/**
 * Rewrites the backing file reference of a closed qcow2 image (for {@code rebase}): the fixed header is kept byte
 * for byte except {@code backing_file_offset}/{@code backing_file_size}, every header extension is kept except the
 * backing format, which is replaced; the name follows the end marker, all within the first cluster. The first
 * cluster is written with one write and synced, as QEMU's {@code qcow2_update_header} does.
 */
public final class Qcow2BackingFile {
    private Qcow2BackingFile() {
    }

    /** Points the image at {@code backing} (name as to be recorded, optional format), or at nothing. */
    public static void change(Path path, Optional<BackingReference> backing) throws IOException {
        try (HostFile file = HostFile.open(path, true, false)) {
            ByteBuffer start = ByteBuffer.allocate(Qcow2Header.V3_LENGTH);
            file.read(start, 0);
            int bits = Qcow2Header.peekClusterBits(start.clear());
            ByteBuffer cluster0 = ByteBuffer.allocate(1 << bits);
            file.read(cluster0, 0);
            Qcow2Header h = Qcow2Header.parse(cluster0.clear());
            int fixed = h.version == 2 ? Qcow2Header.V2_LENGTH : h.headerLength;
            ByteBuffer out = ByteBuffer.allocate(1 << bits);
            out.put(0, cluster0, 0, fixed);
            int pos = fixed;
            byte[] name = backing.map(b -> b.name().getBytes(StandardCharsets.UTF_8)).orElse(new byte[0]);
            Optional<String> format = backing.flatMap(BackingReference::format);
            int needed = pos + 8 + name.length;
            if (format.isPresent()) {
                needed += 8 + pad(format.get().getBytes(StandardCharsets.UTF_8).length);
            }
            for (Qcow2Header.Extension e : h.extensions) {
                if (e.type() != Qcow2Header.EXT_BACKING_FORMAT) {
                    needed += 8 + pad(e.data().length);
                }
            }
            if (name.length > Qcow2Header.MAX_BACKING_NAME || needed > out.capacity()) {
                throw new IOException("backing file name does not fit in the header cluster: length=" + name.length
                        + ", cluster_size=" + out.capacity());
            }
            if (format.isPresent()) {
                pos = putExtension(out, pos, Qcow2Header.EXT_BACKING_FORMAT,
                        format.get().getBytes(StandardCharsets.UTF_8));
            }
            for (Qcow2Header.Extension e : h.extensions) {
                if (e.type() != Qcow2Header.EXT_BACKING_FORMAT) {
                    pos = putExtension(out, pos, e.type(), e.data());
                }
            }
            out.putInt(pos, Qcow2Header.EXT_END).putInt(pos + 4, 0);
            pos += 8;
            if (name.length > 0) {
                out.put(pos, name);
                out.putLong(8, pos).putInt(16, name.length);
            } else {
                out.putLong(8, 0).putInt(16, 0);
            }
            file.write(out.clear(), 0);
            file.sync();
        }
    }

    private static int pad(int length) {
        return (length + 7) & ~7;
    }

    private static int putExtension(ByteBuffer out, int pos, int type, byte[] data) {
        out.putInt(pos, type).putInt(pos + 4, data.length).put(pos + 8, data);
        return pos + 8 + pad(data.length);
    }
}
