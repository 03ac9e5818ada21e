package io.jtap.formats.qcow2;

import com.github.luben.zstd.ZstdCompressCtx;
import com.github.luben.zstd.ZstdInputStream;
import com.jcraft.jzlib.Deflater;
import com.jcraft.jzlib.GZIPException;
import com.jcraft.jzlib.JZlib;
import io.jtap.formats.CorruptImageException;
import io.jtap.formats.HostFile;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * Compressed clusters (qcow2.txt, "Compressed Clusters Descriptor"; QEMU: {@code qcow2-threads.c}).
 *
 * <p>deflate ({@code compression_type=0}): raw deflate. QEMU inflates with windowBits -12 (a 4 KiB window), so
 * jtap deflates with jzlib at windowBits -12 and memLevel 9 as QEMU does ({@code java.util.zip.Deflater} always uses
 * a 32 KiB window, which QEMU cannot read). Reading uses {@link Inflater} in nowrap mode, which reads any window.
 *
 * <p>zstd ({@code compression_type=1}): one zstd frame per cluster, as QEMU writes.
 *
 * <p>The stored length is known only to 512-byte precision, so reading stops once a whole cluster has come out and
 * ignores what follows. Compression keeps a result only when it is at most {@code cluster_size - 1} bytes (QEMU's
 * limit); otherwise the cluster is stored uncompressed.
 */
final class CompressedCluster {
    static final int DEFLATE = 0;
    static final int ZSTD = 1;
    /** QEMU's deflateInit2 arguments: raw deflate, 4 KiB window, memLevel 9. */
    private static final int WINDOW_BITS = -12;
    private static final int MEM_LEVEL = 9;

    private CompressedCluster() {
    }

    /** Inflates the cluster described by compressed L2 entry {@code entry} into {@code dst} (cluster-sized). */
    static void read(HostFile file, Qcow2Header header, long entry, byte[] dst) throws IOException {
        long offset = L2Entry.compressedOffset(entry, header.clusterBits);
        int length = L2Entry.compressedLength(entry, header.clusterBits);
        // One spare byte: Inflater in nowrap mode may need a byte past the stream to finish.
        ByteBuffer in = ByteBuffer.allocate(length + 1);
        in.limit(length);
        file.read(in, offset);
        if (header.compressionType == ZSTD) {
            readZstd(in.array(), length, offset, dst);
            return;
        }
        if (header.compressionType != DEFLATE) {
            throw new IOException("unsupported compression type: compression_type=" + header.compressionType);
        }
        Inflater inflater = new Inflater(true);
        try {
            inflater.setInput(in.array(), 0, length + 1);
            int done = 0;
            while (done < dst.length) {
                int n = inflater.inflate(dst, done, dst.length - done);
                if (n == 0 && (inflater.finished() || inflater.needsInput() || inflater.needsDictionary())) {
                    break;
                }
                done += n;
            }
            if (done != dst.length) {
                throw new CorruptImageException("compressed cluster too short: offset=" + offset + ", length="
                        + length + ", inflated=" + done + ", cluster_size=" + dst.length);
            }
        } catch (DataFormatException e) {
            throw new CorruptImageException("bad compressed cluster: offset=" + offset + ", length=" + length
                    + ", cause=" + e.getMessage(), e);
        } finally {
            inflater.end();
        }
    }

    private static void readZstd(byte[] in, int length, long offset, byte[] dst) throws IOException {
        int done = 0;
        try (ZstdInputStream z = new ZstdInputStream(new ByteArrayInputStream(in, 0, length))) {
            // Stops after a whole cluster: what follows the frame (up to the next sector) is not zstd data.
            done = z.readNBytes(dst, 0, dst.length);
        } catch (IOException e) {
            throw new CorruptImageException("bad zstd compressed cluster: offset=" + offset + ", length=" + length
                    + ", cause=" + e.getMessage(), e);
        } catch (LinkageError e) {
            throw new IOException("zstd is unavailable (zstd-jni native library): cause=" + e, e);
        }
        if (done != dst.length) {
            throw new CorruptImageException("zstd compressed cluster too short: offset=" + offset + ", length="
                    + length + ", decompressed=" + done + ", cluster_size=" + dst.length);
        }
    }

    /**
     * Compresses one cluster ({@code clusterSize} bytes; shorter input is padded with zeros) with the image's
     * compression type. Null when the result would not be smaller than {@code clusterSize - 1} bytes. Thread-safe.
     */
    static ByteBuffer compress(int compressionType, int clusterSize, ByteBuffer cluster) throws IOException {
        byte[] in = new byte[clusterSize];
        cluster.duplicate().get(in, 0, Math.min(clusterSize, cluster.remaining()));
        byte[] out = new byte[clusterSize - 1];
        int length;
        if (compressionType == ZSTD) {
            try (ZstdCompressCtx z = new ZstdCompressCtx()) {
                z.setLevel(3);
                length = z.compressByteArray(out, 0, out.length, in, 0, in.length);
            } catch (com.github.luben.zstd.ZstdException e) {
                return null; // dstSize_tooSmall: incompressible
            } catch (LinkageError e) {
                throw new IOException("zstd is unavailable (zstd-jni native library): cause=" + e, e);
            }
        } else if (compressionType == DEFLATE) {
            Deflater d;
            try {
                d = new Deflater(JZlib.Z_DEFAULT_COMPRESSION, WINDOW_BITS, MEM_LEVEL);
            } catch (GZIPException e) {
                throw new IOException("deflate init failed: cause=" + e.getMessage(), e);
            }
            try {
                d.setInput(in);
                d.setOutput(out);
                if (d.deflate(JZlib.Z_FINISH) != JZlib.Z_STREAM_END) {
                    return null; // output full: incompressible
                }
                length = (int) d.getTotalOut();
            } finally {
                d.end();
            }
        } else {
            throw new IOException("unsupported compression type: compression_type=" + compressionType);
        }
        return ByteBuffer.wrap(out, 0, length).slice();
    }

    /** The L2 entry for compressed data of {@code length} bytes stored at host byte offset {@code hostOffset}. */
    static long entry(long hostOffset, int length, int clusterBits) {
        long sectorsMinusOne = ((hostOffset + length - 1) >> 9) - (hostOffset >> 9);
        return L2Entry.COMPRESSED | (sectorsMinusOne << L2Entry.compressedShift(clusterBits)) | hostOffset;
    }

    /** Host clusters the compressed data of {@code entry} touches, as {first cluster offset, cluster count}. */
    static long[] hostClusters(long entry, int clusterBits) {
        long offset = L2Entry.compressedOffset(entry, clusterBits);
        long last = offset + L2Entry.compressedLength(entry, clusterBits) - 1;
        long first = offset >> clusterBits;
        return new long[] {first << clusterBits, (last >> clusterBits) - first + 1};
    }
}
