package io.jtap.formats;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;

/**
 * How to open an image. Immutable; start from {@link #defaults()} and use the {@code with*} methods.
 *
 * @param readOnly    open read-only (backing images always are)
 * @param direct      use {@code O_DIRECT} for the image's data (raw only for now; qcow2 refuses it)
 * @param openBacking open the backing chain (false for tools that only inspect headers)
 * @param snapshot    open this internal snapshot (name or id), read-only; qcow2 only
 * @param formats     the registry used to open backing files
 * @param cacheBytes  the size limit of each metadata cache (qcow2: L2 tables, refcount blocks), in bytes
 * @param chain       the images that are opening this one as their backing file, outermost first; formats fill
 *                    it in for loop detection, callers leave it empty
 * @param check       open for {@link Checkable#check} and repair (QEMU's {@code BDRV_O_CHECK}): a writable image
 *                    that would be refused (dirty, marked corrupt, damaged refcounts, features jtap only reads)
 *                    opens anyway and refuses writes until a repair has made it consistent
 */
public record OpenOptions(boolean readOnly, boolean direct, boolean openBacking, Optional<String> snapshot,
                          ImageFormats formats, long cacheBytes, List<Path> chain, boolean check) {
    /** Longest backing chain jtap opens; QEMU has no limit, but a chain this long is a mistake or a loop. */
    public static final int MAX_CHAIN_LENGTH = 64;
    private static final long DEFAULT_CACHE_BYTES = 4L << 20;

    public OpenOptions {
        Objects.requireNonNull(snapshot, "snapshot");
        Objects.requireNonNull(formats, "formats");
        chain = List.copyOf(chain);
        if (cacheBytes <= 0) {
            throw new IllegalArgumentException("cacheBytes must be positive: cacheBytes=" + cacheBytes);
        }
    }

    /** Read-write, buffered, backing chain opened, the default registry, 4 MiB caches. */
    public static OpenOptions defaults() {
        return new OpenOptions(false, false, true, Optional.empty(), ImageFormats.defaults(), DEFAULT_CACHE_BYTES,
                List.of(), false);
    }

    public OpenOptions withReadOnly(boolean value) {
        return new OpenOptions(value, direct, openBacking, snapshot, formats, cacheBytes, chain, check);
    }

    public OpenOptions withDirect(boolean value) {
        return new OpenOptions(readOnly, value, openBacking, snapshot, formats, cacheBytes, chain, check);
    }

    public OpenOptions withOpenBacking(boolean value) {
        return new OpenOptions(readOnly, direct, value, snapshot, formats, cacheBytes, chain, check);
    }

    /** Opens the named internal snapshot; implies read-only. */
    public OpenOptions withSnapshot(String nameOrId) {
        return new OpenOptions(true, direct, openBacking, Optional.of(nameOrId), formats, cacheBytes, chain, check);
    }

    public OpenOptions withFormats(ImageFormats value) {
        return new OpenOptions(readOnly, direct, openBacking, snapshot, value, cacheBytes, chain, check);
    }

    public OpenOptions withCacheBytes(long value) {
        return new OpenOptions(readOnly, direct, openBacking, snapshot, formats, value, chain, check);
    }

    /** Opens for check and repair; see {@link #check()}. */
    public OpenOptions withCheck(boolean value) {
        return new OpenOptions(readOnly, direct, openBacking, snapshot, formats, cacheBytes, chain, value);
    }

    /**
     * The options for opening the backing file of the image at {@code overlay}: read-only, no snapshot, the overlay
     * appended to the chain.
     */
    public OpenOptions forBackingOf(Path overlay) {
        List<Path> longer = new ArrayList<>(chain);
        longer.add(overlay);
        return new OpenOptions(true, direct, true, Optional.empty(), formats, cacheBytes, longer, false);
    }
}
