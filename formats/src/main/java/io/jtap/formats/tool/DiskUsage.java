package io.jtap.formats.tool;

import com.sun.jna.LastErrorException;
import com.sun.jna.Native;
import com.sun.jna.Platform;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The host space a file occupies ({@code st_blocks * 512}), qemu-img's "disk size" / {@code actual-size}. Java has
 * no attribute for it, so this calls {@code stat} through JNA; without the binding it falls back to the file size.
 */
final class DiskUsage {
    /** {@code st_blocks} is at byte 64 of {@code struct stat} on both x86_64 and the generic (arm64) layout. */
    private static final int ST_BLOCKS_OFFSET = 64;
    /** Larger than {@code struct stat} on every 64-bit Linux ABI (144 or 128 bytes). */
    private static final int STAT_BUFFER = 256;
    private static final boolean AVAILABLE;

    static {
        boolean ok;
        try {
            Native.register(DiskUsage.class, Platform.C_LIBRARY_NAME);
            ok = Platform.isLinux() && Platform.is64Bit();
        } catch (Throwable t) {
            ok = false;
        }
        AVAILABLE = ok;
    }

    private DiskUsage() {
    }

    private static native int stat(String path, byte[] buf) throws LastErrorException;

    static long bytes(Path path) throws IOException {
        if (AVAILABLE) {
            byte[] buf = new byte[STAT_BUFFER];
            try {
                stat(path.toString(), buf);
                return java.nio.ByteBuffer.wrap(buf).order(java.nio.ByteOrder.nativeOrder())
                        .getLong(ST_BLOCKS_OFFSET) * 512;
            } catch (LastErrorException e) {
                throw new IOException("stat failed: path=" + path + ", errno=" + e.getErrorCode());
            }
        }
        return Files.size(path);
    }
}
