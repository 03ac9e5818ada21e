package io.jtap.formats.qcow2;

import io.jtap.formats.CorruptImageException;
import io.jtap.formats.HostFile;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * Reading compressed clusters: raw deflate (QEMU compresses with windowBits -12; {@link Inflater} in nowrap mode
 * reads any window). The stored length is known only to 512-byte precision, so inflation stops once a whole
 * cluster has come out and ignores what follows.
 */
final class CompressedCluster {
    private CompressedCluster() {
    }

    /** Inflates the cluster described by compressed L2 entry {@code entry} into {@code dst} (cluster-sized). */
    static void read(HostFile file, Qcow2Header header, long entry, byte[] dst) throws IOException {
        if (header.compressionType != 0) {
            throw new IOException("zstd-compressed clusters are not supported: compression_type="
                    + header.compressionType);
        }
        long offset = L2Entry.compressedOffset(entry, header.clusterBits);
        int length = L2Entry.compressedLength(entry, header.clusterBits);
        // One spare byte: Inflater in nowrap mode may need a byte past the stream to finish.
        ByteBuffer in = ByteBuffer.allocate(length + 1);
        in.limit(length);
        file.read(in, offset);
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

    /** Host clusters the compressed data of {@code entry} touches, as {first cluster offset, cluster count}. */
    static long[] hostClusters(long entry, int clusterBits) {
        long offset = L2Entry.compressedOffset(entry, clusterBits);
        long last = offset + L2Entry.compressedLength(entry, clusterBits) - 1;
        long first = offset >> clusterBits;
        return new long[] {first << clusterBits, (last >> clusterBits) - first + 1};
    }
}
