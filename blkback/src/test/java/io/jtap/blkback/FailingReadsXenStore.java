package io.jtap.blkback;

import io.jtap.xen.XenStore;
import io.jtap.xen.XenStoreException;
import io.jtap.xen.XenStorePermission;
import java.io.IOException;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A xenstore connection whose reads of paths ending in {@code suffix} fail with {@code error} while {@link #failures}
 * is positive (each failed read counts it down); everything else goes to the real connection.
 */
final class FailingReadsXenStore implements XenStore {
    final AtomicInteger failures = new AtomicInteger();
    private final XenStore delegate;
    private final String suffix;
    private final String error;

    FailingReadsXenStore(XenStore delegate, String suffix, String error) {
        this.delegate = delegate;
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

    @Override
    public void write(String path, byte[] value) throws IOException {
        delegate.write(path, value);
    }

    @Override
    public void mkdir(String path) throws IOException {
        delegate.mkdir(path);
    }

    @Override
    public void rm(String path) throws IOException {
        delegate.rm(path);
    }

    @Override
    public List<String> directory(String path) throws IOException {
        return delegate.directory(path);
    }

    @Override
    public List<XenStorePermission> getPermissions(String path) throws IOException {
        return delegate.getPermissions(path);
    }

    @Override
    public void setPermissions(String path, List<XenStorePermission> permissions) throws IOException {
        delegate.setPermissions(path, permissions);
    }

    @Override
    public Watch watch(String path, String token, WatchListener listener) throws IOException {
        return delegate.watch(path, token, listener);
    }

    @Override
    public <T> T transaction(TransactionBody<T> body) throws IOException {
        return delegate.transaction(body);
    }

    @Override
    public void close() throws IOException {
        delegate.close();
    }
}
