package io.jtap.formats.qcow2;

import io.jtap.formats.BackingReference;
import io.jtap.formats.CreateOptions;
import io.jtap.formats.HostFile;
import io.jtap.formats.Image;
import io.jtap.formats.ImageFormat;
import io.jtap.formats.OpenOptions;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Map;
import java.util.Set;

/**
 * The qcow2 format plugin. Creates images laid out as QEMU does: header cluster, refcount table, refcount blocks,
 * L1 table; options follow {@code qemu-img create -o}: {@code compat} (0.10/v2 or 1.1/v3, default 1.1),
 * {@code cluster_size} (512 B .. 2 MiB, default 64 KiB), {@code refcount_bits} (1..64, default 16; 16 for v2),
 * {@code lazy_refcounts} (on/off, v3), {@code compression_type} (zlib or zstd, v3; for compressed clusters).
 */
public final class Qcow2Format implements ImageFormat {
    private static final Set<String> KNOWN_OPTIONS = Set.of("compat", "cluster_size", "refcount_bits",
            "lazy_refcounts", "compression_type");
    private static final int DEFAULT_CLUSTER_SIZE = 64 * 1024;

    @Override
    public String name() {
        return "qcow2";
    }

    @Override
    public int probe(ByteBuffer header) {
        return header.remaining() >= 8 && header.getInt(header.position()) == Qcow2Header.MAGIC
                && (header.getInt(header.position() + 4) == 2 || header.getInt(header.position() + 4) == 3) ? 100
                : 0;
    }

    @Override
    public Image open(Path path, OpenOptions options) throws IOException {
        if (options.direct()) {
            throw new IOException("O_DIRECT is not supported for qcow2 yet: path=" + path);
        }
        HostFile file = HostFile.open(path, !options.readOnly(), false);
        try {
            return Qcow2Image.open(path, file, options);
        } catch (IOException | RuntimeException e) {
            file.close();
            throw e;
        }
    }

    @Override
    public void create(Path path, CreateOptions options) throws IOException {
        Map<String, String> o = options.formatOptions();
        for (String key : o.keySet()) {
            if (!KNOWN_OPTIONS.contains(key)) {
                throw new IOException("unknown qcow2 option: option=" + key + ", known=" + KNOWN_OPTIONS);
            }
        }
        if (options.preallocation() != CreateOptions.Preallocation.OFF) {
            throw new IOException("qcow2 preallocation is not supported: preallocation="
                    + options.preallocation());
        }
        if (options.size() % 512 != 0) {
            throw new IOException("qcow2 size must be a multiple of 512: size=" + options.size());
        }
        String compat = o.getOrDefault("compat", "1.1");
        int version = switch (compat) {
            case "0.10", "v2" -> 2;
            case "1.1", "v3" -> 3;
            default -> throw new IOException("bad compat: compat=" + compat);
        };
        int clusterSize = Integer.parseInt(o.getOrDefault("cluster_size", String.valueOf(DEFAULT_CLUSTER_SIZE)));
        int clusterBits = Integer.numberOfTrailingZeros(clusterSize);
        if (Integer.bitCount(clusterSize) != 1 || clusterBits < Qcow2Header.MIN_CLUSTER_BITS
                || clusterBits > Qcow2Header.MAX_CLUSTER_BITS) {
            throw new IOException("bad cluster size: cluster_size=" + clusterSize);
        }
        int refcountBits = Integer.parseInt(o.getOrDefault("refcount_bits", "16"));
        if (Integer.bitCount(refcountBits) != 1 || refcountBits > 64 || version == 2 && refcountBits != 16) {
            throw new IOException("bad refcount_bits: refcount_bits=" + refcountBits + ", compat=" + compat);
        }
        boolean lazy = "on".equals(o.getOrDefault("lazy_refcounts", "off"));
        if (lazy && version == 2) {
            throw new IOException("lazy_refcounts needs compat=1.1");
        }

        String compression = o.getOrDefault("compression_type", "zlib");
        if (!compression.equals("zlib") && !(compression.equals("zstd") && version == 3)) {
            throw new IOException("bad compression_type: compression_type=" + compression + ", compat=" + compat);
        }

        Qcow2Header h = new Qcow2Header();
        if (compression.equals("zstd")) {
            h.compressionType = CompressedCluster.ZSTD;
            h.incompatible |= Qcow2Header.INCOMPAT_COMPRESSION;
        }
        h.version = version;
        h.clusterBits = clusterBits;
        h.size = options.size();
        h.refcountOrder = Integer.numberOfTrailingZeros(refcountBits);
        h.compatible = lazy ? Qcow2Header.COMPAT_LAZY_REFCOUNTS : 0;
        if (options.backing().isPresent()) {
            BackingReference b = options.backing().get();
            h.backingFile = java.util.Optional.of(b.name());
            h.backingFormat = b.format();
        }
        long l1Entries = Qcow2Header.l1EntriesFor(options.size(), clusterBits, false);
        long l1Clusters = (l1Entries * 8 + clusterSize - 1) / clusterSize;
        long perBlock = (long) clusterSize * 8 / refcountBits;
        long tableClusters = 1;
        long blocks = 1;
        while (true) {
            long total = 1 + tableClusters + blocks + l1Clusters;
            long needBlocks = (total + perBlock - 1) / perBlock;
            long needTable = (needBlocks * 8 + clusterSize - 1) / clusterSize;
            if (needBlocks == blocks && needTable == tableClusters) {
                break;
            }
            blocks = needBlocks;
            tableClusters = needTable;
        }
        long total = 1 + tableClusters + blocks + l1Clusters;
        h.refcountTableOffset = clusterSize;
        h.refcountTableClusters = Math.toIntExact(tableClusters);
        h.l1TableOffset = (1 + tableClusters + blocks) * clusterSize;
        h.l1Size = Math.toIntExact(l1Entries);
        ByteBuffer cluster0 = h.toCluster0();

        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            try {
                write(ch, cluster0, 0);
                ByteBuffer table = ByteBuffer.allocate(Math.toIntExact(tableClusters * clusterSize));
                for (long i = 0; i < blocks; i++) {
                    table.putLong((int) (i * 8), (1 + tableClusters + i) * clusterSize);
                }
                write(ch, table, clusterSize);
                for (long i = 0; i < blocks; i++) {
                    ByteBuffer block = ByteBuffer.allocate(clusterSize);
                    for (long c = i * perBlock; c < Math.min(total, (i + 1) * perBlock); c++) {
                        setRefcount(block, c - i * perBlock, refcountBits);
                    }
                    write(ch, block, (1 + tableClusters + i) * clusterSize);
                }
                // The L1 table's own bytes only (to the file system's 4 KiB), as qemu-img does: the rest of its
                // clusters stays a hole, and the file may end inside them until the first allocation.
                long l1Bytes = Math.min(l1Clusters * clusterSize, (l1Entries * 8 + 4095) & ~4095L);
                ByteBuffer l1 = ByteBuffer.allocate((int) Math.min(l1Bytes, clusterSize));
                for (long at = 0; at < l1Bytes; at += l1.capacity()) {
                    write(ch, l1.slice(0, (int) Math.min(l1.capacity(), l1Bytes - at)), h.l1TableOffset + at);
                }
                ch.force(true);
            } catch (IOException | RuntimeException e) {
                Files.deleteIfExists(path);
                throw e;
            }
        }
    }

    private static void setRefcount(ByteBuffer block, long index, int bits) {
        long bit = index * bits;
        switch (bits) {
            case 64 -> block.putLong((int) (bit / 8), 1);
            case 32 -> block.putInt((int) (bit / 8), 1);
            case 16 -> block.putShort((int) (bit / 8), (short) 1);
            case 8 -> block.put((int) (bit / 8), (byte) 1);
            default -> block.put((int) (bit / 8), (byte) (block.get((int) (bit / 8)) | (1 << (bit % 8))));
        }
    }

    private static void write(FileChannel ch, ByteBuffer b, long pos) throws IOException {
        b.clear();
        while (b.hasRemaining()) {
            pos += ch.write(b, pos);
        }
    }
}
