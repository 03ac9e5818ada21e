package io.jtap.blkback;

import io.jtap.xen.XenStore;
import io.jtap.xen.XenStoreException;
import java.io.IOException;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A xenstore connection whose reads of paths ending in {@code suffix} fail with {@code error} while {@link #failures}
 * is positive (each failed read counts it down); everything else goes to the real connection.
 */
final class FailingReadsXenStore extends ForwardingXenStore {
    final AtomicInteger failures = new AtomicInteger();
    private final String suffix;
    private final String error;

    FailingReadsXenStore(XenStore delegate, String suffix, String error) {
        super(delegate);
        this.suffix = suffix;
        this.error = error;
    }

    @Override
    public Optional<byte[]> read(String path) throws IOException {
        if (path.endsWith(suffix) && failures.getAndUpdate(n -> Math.max(0, n - 1)) > 0) {
            throw new XenStoreException("read", path, error);
        }
        return delegate.read(path);
    }
}
