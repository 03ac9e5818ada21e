package io.jtap.formats.qcow2;

import io.jtap.formats.CorruptImageException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The qcow2 header and its extensions (QEMU {@code docs/interop/qcow2.txt}, "Header" and "Header extensions").
 *
 * <pre>
 *  byte  0 magic "QFI\xfb"         4 version (2|3)           8 backing_file_offset   16 backing_file_size
 *       20 cluster_bits           24 size (virtual)         32 crypt_method         36 l1_size (entries)
 *       40 l1_table_offset        48 refcount_table_offset  56 refcount_table_clusters
 *       60 nb_snapshots           64 snapshots_offset
 *  v3:  72 incompatible_features  80 compatible_features    88 autoclear_features   96 refcount_order
 *      100 header_length         104 compression_type (when header_length > 104)
 *  then extensions {u32 type, u32 length, data padded to 8} up to type 0, then the backing file name.
 * </pre>
 *
 * All big-endian. Parsing validates what jtap relies on; unknown extensions are kept as read and, since jtap only
 * ever rewrites fixed header fields in place ({@link #OFFSET_SIZE} and friends), survive every write.
 */
final class Qcow2Header {
    static final int MAGIC = 0x514649fb;
    static final int V2_LENGTH = 72;
    static final int V3_MIN_LENGTH = 104;
    /** What jtap writes as header_length for v3: QEMU 7.2's length, covering compression_type and padding. */
    static final int V3_LENGTH = 112;

    static final int OFFSET_SIZE = 24;
    static final int OFFSET_L1_SIZE = 36;
    static final int OFFSET_REFCOUNT_TABLE = 48;
    static final int OFFSET_INCOMPATIBLE = 72;
    static final int OFFSET_AUTOCLEAR = 88;

    static final long INCOMPAT_DIRTY = 1L;
    static final long INCOMPAT_CORRUPT = 1L << 1;
    static final long INCOMPAT_DATA_FILE = 1L << 2;
    static final long INCOMPAT_COMPRESSION = 1L << 3;
    static final long INCOMPAT_EXTL2 = 1L << 4;
    static final long INCOMPAT_KNOWN = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE
            | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;
    static final long COMPAT_LAZY_REFCOUNTS = 1L;

    static final int EXT_END = 0;
    static final int EXT_BACKING_FORMAT = 0xe2792aca;
    static final int EXT_FEATURE_TABLE = 0x6803f857;

    static final int MIN_CLUSTER_BITS = 9;
    static final int MAX_CLUSTER_BITS = 21;
    /** QEMU refuses backing file names longer than this. */
    static final int MAX_BACKING_NAME = 1023;
    /** QEMU's QCOW_MAX_L1_SIZE: an L1 table of more than 32 MiB is refused (it would cover 2^62 bytes). */
    static final long MAX_L1_BYTES = 32L << 20;
    /** QEMU's QCOW_MAX_REFTABLE_SIZE: a refcount table of more than 8 MiB is refused. */
    static final long MAX_REFTABLE_BYTES = 8L << 20;
    /** QEMU's QCOW_MAX_SNAPSHOTS. */
    static final int MAX_SNAPSHOTS = 65536;

    /** An extension as found in the file: type and payload (without padding). */
    record Extension(int type, byte[] data) {
    }

    int version;
    long backingFileOffset;
    int backingFileSize;
    int clusterBits;
    long size;
    int cryptMethod;
    int l1Size;
    long l1TableOffset;
    long refcountTableOffset;
    int refcountTableClusters;
    int nbSnapshots;
    long snapshotsOffset;
    long incompatible;
    long compatible;
    long autoclear;
    int refcountOrder = 4;
    int headerLength = V2_LENGTH;
    int compressionType;
    final List<Extension> extensions = new ArrayList<>();
    Optional<String> backingFile = Optional.empty();
    Optional<String> backingFormat = Optional.empty();

    int clusterSize() {
        return 1 << clusterBits;
    }

    int refcountBits() {
        return 1 << refcountOrder;
    }

    boolean extendedL2() {
        return (incompatible & INCOMPAT_EXTL2) != 0;
    }

    /** Reads the cluster-size and header-length fields from the first bytes to learn how much to read. */
    static int peekClusterBits(ByteBuffer start) throws IOException {
        if (start.remaining() < V2_LENGTH || start.getInt(0) != MAGIC) {
            throw new IOException("not a qcow2 image: bad magic or short header");
        }
        int bits = start.getInt(20);
        if (bits < MIN_CLUSTER_BITS || bits > MAX_CLUSTER_BITS) {
            throw new CorruptImageException("unsupported cluster size: cluster_bits=" + bits);
        }
        return bits;
    }

    /** Parses and validates the header from the image's first cluster. */
    static Qcow2Header parse(ByteBuffer cluster0) throws IOException {
        ByteBuffer b = cluster0.duplicate().order(java.nio.ByteOrder.BIG_ENDIAN);
        Qcow2Header h = new Qcow2Header();
        h.clusterBits = peekClusterBits(b);
        h.version = b.getInt(4);
        if (h.version != 2 && h.version != 3) {
            throw new IOException("unsupported qcow2 version: version=" + h.version);
        }
        h.backingFileOffset = b.getLong(8);
        h.backingFileSize = b.getInt(16);
        h.size = b.getLong(24);
        h.cryptMethod = b.getInt(32);
        h.l1Size = b.getInt(36);
        h.l1TableOffset = b.getLong(40);
        h.refcountTableOffset = b.getLong(48);
        h.refcountTableClusters = b.getInt(56);
        h.nbSnapshots = b.getInt(60);
        h.snapshotsOffset = b.getLong(64);
        if (h.version == 3) {
            h.incompatible = b.getLong(72);
            h.compatible = b.getLong(80);
            h.autoclear = b.getLong(88);
            h.refcountOrder = b.getInt(96);
            h.headerLength = b.getInt(100);
            if (h.headerLength < V3_MIN_LENGTH || h.headerLength > h.clusterSize()) {
                throw new CorruptImageException("bad header length: header_length=" + h.headerLength);
            }
            if (h.headerLength > V3_MIN_LENGTH) {
                h.compressionType = b.get(104) & 0xff;
            }
        }
        h.validate();
        h.parseExtensions(b);
        if (h.backingFileOffset != 0) {
            int fixedEnd = h.version == 2 ? V2_LENGTH : h.headerLength;
            if (h.backingFileSize <= 0 || h.backingFileSize > MAX_BACKING_NAME || h.backingFileOffset < fixedEnd
                    || h.backingFileOffset > h.clusterSize() - h.backingFileSize) {
                throw new CorruptImageException("bad backing file name location: backing_file_offset="
                        + h.backingFileOffset + ", backing_file_size=" + h.backingFileSize);
            }
            byte[] name = new byte[h.backingFileSize];
            b.get((int) h.backingFileOffset, name);
            for (byte c : name) {
                if (c == 0) {
                    throw new CorruptImageException("bad backing file name: contains NUL, backing_file_offset="
                            + h.backingFileOffset + ", backing_file_size=" + h.backingFileSize);
                }
            }
            h.backingFile = Optional.of(new String(name, StandardCharsets.UTF_8));
        }
        return h;
    }

    /**
     * Checks the header against the file it came from: every table inside the file, none overlapping the header
     * or another, sizes within the limits that bound jtap's memory. Messages name the field and its value.
     */
    void validateAgainstFile(long fileLength) throws IOException {
        int fixed = version == 2 ? V2_LENGTH : headerLength;
        if (fileLength < fixed) {
            throw new CorruptImageException("truncated qcow2 image: file_length=" + fileLength + ", header_length="
                    + fixed);
        }
        long l1Bytes = l1Size * 8L;
        long reftableBytes = (long) refcountTableClusters << clusterBits;
        if (reftableBytes > MAX_REFTABLE_BYTES) {
            throw new CorruptImageException("refcount table too large: refcount_table_clusters="
                    + refcountTableClusters + ", max_bytes=" + MAX_REFTABLE_BYTES);
        }
        checkTable("refcount_table_offset", refcountTableOffset, reftableBytes, fileLength);
        checkTable("l1_table_offset", l1TableOffset, l1Bytes, fileLength);
        if (l1Bytes > 0 && overlaps(l1TableOffset, l1Bytes, refcountTableOffset, reftableBytes)) {
            throw new CorruptImageException("L1 table overlaps the refcount table: l1_table_offset=" + l1TableOffset
                    + ", l1_size=" + l1Size + ", refcount_table_offset=" + refcountTableOffset
                    + ", refcount_table_clusters=" + refcountTableClusters);
        }
        if (nbSnapshots > MAX_SNAPSHOTS) {
            throw new CorruptImageException("too many snapshots: nb_snapshots=" + nbSnapshots + ", max="
                    + MAX_SNAPSHOTS);
        }
        if (nbSnapshots > 0) {
            // at least the fixed part of one entry per snapshot
            checkTable("snapshots_offset", snapshotsOffset, nbSnapshots * 40L, fileLength);
        }
    }

    private void checkTable(String field, long offset, long bytes, long fileLength) throws IOException {
        if (bytes == 0) {
            return;
        }
        if (offset < clusterSize()) {
            throw new CorruptImageException("table overlaps the header: " + field + "=" + offset);
        }
        if (offset > fileLength || bytes > fileLength - offset) {
            throw new CorruptImageException("table beyond the end of the file: " + field + "=" + offset
                    + ", table_bytes=" + bytes + ", file_length=" + fileLength);
        }
    }

    private static boolean overlaps(long a, long aLength, long b, long bLength) {
        return a < b + bLength && b < a + aLength;
    }

    private void validate() throws IOException {
        long unknown = incompatible & ~INCOMPAT_KNOWN;
        if (unknown != 0) {
            throw new IOException("unsupported qcow2 incompatible features: bits=0x" + Long.toHexString(unknown));
        }
        if ((incompatible & INCOMPAT_DATA_FILE) != 0) {
            throw new IOException("qcow2 external data files are not supported");
        }
        if (cryptMethod != 0) {
            throw new IOException("encrypted qcow2 images are not supported: crypt_method=" + cryptMethod);
        }
        if (refcountOrder < 0 || refcountOrder > 6) {
            throw new CorruptImageException("bad refcount order: refcount_order=" + refcountOrder);
        }
        if (compressionType > 1 || compressionType != 0 && (incompatible & INCOMPAT_COMPRESSION) == 0) {
            throw new IOException("unsupported compression type: compression_type=" + compressionType);
        }
        long mask = clusterSize() - 1;
        if ((l1TableOffset & mask) != 0 || l1TableOffset < 0) {
            throw new CorruptImageException("L1 table not cluster-aligned: l1_table_offset=" + l1TableOffset);
        }
        if ((refcountTableOffset & mask) != 0 || refcountTableOffset < 0) {
            throw new CorruptImageException("refcount table not cluster-aligned: refcount_table_offset="
                    + refcountTableOffset);
        }
        if ((snapshotsOffset & mask) != 0 || snapshotsOffset < 0) {
            throw new CorruptImageException("snapshot table not cluster-aligned: snapshots_offset="
                    + snapshotsOffset);
        }
        if (size < 0) {
            throw new CorruptImageException("bad virtual size: size=" + size);
        }
        if (l1Size < 0 || l1Size > MAX_L1_BYTES / 8) {
            throw new CorruptImageException("bad L1 table size: l1_size=" + l1Size + ", max=" + MAX_L1_BYTES / 8);
        }
        if (refcountTableClusters <= 0) {
            throw new CorruptImageException("bad refcount table size: refcount_table_clusters="
                    + refcountTableClusters);
        }
        if (nbSnapshots < 0) {
            throw new CorruptImageException("bad snapshot count: nb_snapshots=" + nbSnapshots);
        }
        if (extendedL2() && clusterBits < 14) {
            throw new CorruptImageException("extended L2 entries need clusters of 16 KiB or more: cluster_bits="
                    + clusterBits);
        }
        long needed = l1EntriesFor(size, clusterBits, extendedL2());
        if (l1Size < needed) {
            throw new CorruptImageException("L1 table too small for the size: l1_size=" + l1Size + ", needed="
                    + needed + ", size=" + size);
        }
    }

    private void parseExtensions(ByteBuffer b) throws IOException {
        int pos = version == 2 ? V2_LENGTH : headerLength;
        int end = clusterSize();
        while (true) {
            if (pos + 8 > end) {
                throw new CorruptImageException("header extensions run past the first cluster: offset=" + pos);
            }
            int type = b.getInt(pos);
            int length = b.getInt(pos + 4);
            if (type == EXT_END) {
                return;
            }
            if (length < 0 || pos + 8L + length > end) {
                throw new CorruptImageException("bad header extension: type=0x" + Integer.toHexString(type)
                        + ", length=" + length + ", offset=" + pos);
            }
            byte[] data = new byte[length];
            b.get(pos + 8, data);
            extensions.add(new Extension(type, data));
            if (type == EXT_BACKING_FORMAT) {
                backingFormat = Optional.of(new String(data, StandardCharsets.UTF_8));
            }
            pos += 8 + ((length + 7) & ~7);
        }
    }

    /** L2 entries per table. */
    static int l2Entries(int clusterBits, boolean extendedL2) {
        return (1 << clusterBits) / (extendedL2 ? 16 : 8);
    }

    /** The L1 entries a disk of {@code size} bytes needs. */
    static long l1EntriesFor(long size, int clusterBits, boolean extendedL2) {
        long perL2 = (long) l2Entries(clusterBits, extendedL2) << clusterBits;
        // no (size + perL2 - 1): a corrupt size near Long.MAX_VALUE would overflow and pass the L1 size check
        return size / perL2 + (size % perL2 == 0 ? 0 : 1);
    }

    /**
     * Builds the first cluster of a new image: header, the backing format extension when there is a backing
     * format, the end marker, then the backing file name.
     */
    ByteBuffer toCluster0() throws IOException {
        ByteBuffer b = ByteBuffer.allocate(clusterSize());
        b.putInt(0, MAGIC).putInt(4, version).putInt(20, clusterBits).putLong(24, size).putInt(32, cryptMethod)
                .putInt(36, l1Size).putLong(40, l1TableOffset).putLong(48, refcountTableOffset)
                .putInt(56, refcountTableClusters).putInt(60, nbSnapshots).putLong(64, snapshotsOffset);
        int pos = V2_LENGTH;
        if (version == 3) {
            b.putLong(72, incompatible).putLong(80, compatible).putLong(88, autoclear).putInt(96, refcountOrder)
                    .putInt(100, V3_LENGTH).put(104, (byte) compressionType);
            pos = V3_LENGTH;
        }
        byte[] fmt = backingFormat.map(s -> s.getBytes(StandardCharsets.UTF_8)).orElse(null);
        byte[] name = backingFile.map(s -> s.getBytes(StandardCharsets.UTF_8)).orElse(new byte[0]);
        int needed = pos + (fmt == null ? 0 : 8 + ((fmt.length + 7) & ~7)) + 8 + name.length;
        if (name.length > MAX_BACKING_NAME || needed > clusterSize()) {
            throw new IOException("backing file name does not fit in the first cluster: length=" + name.length
                    + ", cluster_size=" + clusterSize());
        }
        if (fmt != null) {
            b.putInt(pos, EXT_BACKING_FORMAT).putInt(pos + 4, fmt.length).put(pos + 8, fmt);
            pos += 8 + ((fmt.length + 7) & ~7);
        }
        b.putInt(pos, EXT_END).putInt(pos + 4, 0);
        pos += 8;
        if (name.length > 0) {
            b.put(pos, name);
            b.putLong(8, pos).putInt(16, name.length);
        }
        return b;
    }
}
