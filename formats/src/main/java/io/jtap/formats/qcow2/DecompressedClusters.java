package io.jtap.formats.qcow2;

import java.util.Arrays;

/**
 * The last few compressed clusters an image decompressed, so that a guest reading a compressed cluster in pieces (a
 * blkfront request is 4 KiB segments; a 64 KiB cluster is then 16 reads) inflates it once, not once per piece.
 *
 * <p>An entry is valid only for the {@link ClusterMap} and the {@link ClusterMap#generation()} it was read under: any
 * change of the map (a write, a discard, a new L2 table, a snapshot applied) makes every entry stale, because a freed
 * compressed cluster's host bytes may be reused by a new one with the same L2 entry. Entries are immutable once put,
 * so a caller may copy out of one without holding the image's lock.
 *
 * <p>Threads: the image's metadata lock guards every call. Memory: at most {@link #BUDGET_BYTES} (at least one
 * cluster), allocated only as compressed clusters are read.
 */
final class DecompressedClusters {
    /** Bytes of decompressed data kept per image. */
    static final int BUDGET_BYTES = 1 << 20;
    private static final int MAX_SLOTS = 16;

    private record Slot(long guestCluster, long entry, byte[] data) {
    }

    private final Slot[] slots;
    private ClusterMap map;
    private long generation;
    private int next;

    DecompressedClusters(int clusterSize) {
        slots = new Slot[Math.max(1, Math.min(MAX_SLOTS, BUDGET_BYTES / clusterSize))];
    }

    /** The decompressed cluster for this guest cluster and L2 entry under {@code map} as it is now, or null. */
    byte[] get(ClusterMap map, long guestCluster, long entry) {
        if (!current(map)) {
            return null;
        }
        for (Slot s : slots) {
            if (s != null && s.guestCluster == guestCluster && s.entry == entry) {
                return s.data;
            }
        }
        return null;
    }

    /**
     * Keeps {@code data} (not to be modified afterwards), decompressed from {@code entry} while {@code map} was at
     * {@code generation}; dropped if the map has changed since.
     */
    void put(ClusterMap map, long generation, long guestCluster, long entry, byte[] data) {
        if (map.generation() != generation || !current(map)) {
            return;
        }
        slots[next] = new Slot(guestCluster, entry, data);
        next = (next + 1) % slots.length;
    }

    /** Whether the entries belong to {@code map} as it is now; if not, forgets them and starts over for it. */
    private boolean current(ClusterMap m) {
        if (m == map && m.generation() == generation) {
            return true;
        }
        Arrays.fill(slots, null);
        map = m;
        generation = m.generation();
        next = 0;
        return false;
    }
}
