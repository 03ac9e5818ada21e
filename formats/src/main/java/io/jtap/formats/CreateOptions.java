package io.jtap.formats;

import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * How to create an image. Format-specific settings use {@code qemu-img create -o} names and values
 * ({@code compat=0.10|1.1|v2|v3}, {@code cluster_size=65536}, {@code refcount_bits=16}, {@code lazy_refcounts=on});
 * a format rejects settings it does not know.
 *
 * @param size          virtual size in bytes
 * @param backing       the backing file to record, if any (qcow2)
 * @param preallocation how much host space to reserve up front
 * @param formatOptions format-specific settings
 */
public record CreateOptions(long size, Optional<BackingReference> backing, Preallocation preallocation,
                            Map<String, String> formatOptions) {

    /** qemu-img's {@code preallocation} values that jtap supports. */
    public enum Preallocation {
        /** Sparse: allocate on write. */
        OFF,
        /** Reserve with {@code fallocate} (raw). */
        FALLOC,
        /** Write zeros (raw). */
        FULL
    }

    public CreateOptions {
        Objects.requireNonNull(backing, "backing");
        Objects.requireNonNull(preallocation, "preallocation");
        formatOptions = Map.copyOf(formatOptions);
        if (size < 0) {
            throw new IllegalArgumentException("size must not be negative: size=" + size);
        }
    }

    /** A sparse image of {@code size} bytes with the format's defaults. */
    public static CreateOptions ofSize(long size) {
        return new CreateOptions(size, Optional.empty(), Preallocation.OFF, Map.of());
    }

    public CreateOptions withBacking(String name, String format) {
        return new CreateOptions(size, Optional.of(new BackingReference(name, Optional.ofNullable(format))),
                preallocation, formatOptions);
    }

    public CreateOptions withPreallocation(Preallocation value) {
        return new CreateOptions(size, backing, value, formatOptions);
    }

    public CreateOptions with(String key, String value) {
        Map<String, String> m = new java.util.HashMap<>(formatOptions);
        m.put(key, value);
        return new CreateOptions(size, backing, preallocation, m);
    }
}
