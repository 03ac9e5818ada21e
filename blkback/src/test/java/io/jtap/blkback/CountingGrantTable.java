package io.jtap.blkback;

import io.jtap.xen.GrantCopyBatch;
import io.jtap.xen.GrantMapping;
import io.jtap.xen.GrantTable;
import io.jtap.xen.XenPlatform;

import java.io.IOException;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A {@link GrantTable} that counts what is done through it and delegates everything: {@link GrantTable#map} calls
 * (each an ioctl, an {@code mmap}, and later a {@code munmap} and an ioctl on Linux), the pages they map, and
 * {@link GrantTable#copy} calls. Thread-safe, as the table it wraps.
 */
final class CountingGrantTable implements GrantTable {
    /** Counters shared by every table of one {@link #platform}. */
    static final class Counts {
        final AtomicLong maps = new AtomicLong();
        final AtomicLong mappedPages = new AtomicLong();
        final AtomicLong copies = new AtomicLong();

        long maps() {
            return maps.get();
        }

        long copies() {
            return copies.get();
        }
    }

    private final GrantTable delegate;
    private final Counts counts;

    CountingGrantTable(GrantTable delegate, Counts counts) {
        this.delegate = delegate;
        this.counts = counts;
    }

    /** {@code platform} with every grant table it opens counted in {@code counts}. */
    static XenPlatform platform(XenPlatform platform, Counts counts) {
        return new ForwardingXenPlatform(platform, "grant calls counted") {
            @Override
            public GrantTable openGrantTable() throws IOException {
                return new CountingGrantTable(platform.openGrantTable(), counts);
            }
        };
    }

    @Override
    public GrantMapping map(int domid, int[] refs, boolean writable) throws IOException {
        counts.maps.incrementAndGet();
        counts.mappedPages.addAndGet(refs.length);
        return delegate.map(domid, refs, writable);
    }

    @Override
    public void copy(GrantCopyBatch batch) throws IOException {
        counts.copies.incrementAndGet();
        delegate.copy(batch);
    }

    @Override
    public int activeMappings() {
        return delegate.activeMappings();
    }

    @Override
    public void close() throws IOException {
        delegate.close();
    }
}
