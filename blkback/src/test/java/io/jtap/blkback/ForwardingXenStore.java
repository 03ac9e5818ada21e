package io.jtap.blkback;

import io.jtap.xen.XenStore;
import io.jtap.xen.XenStorePermission;
import java.io.IOException;
import java.util.List;
import java.util.Optional;

/** A xenstore connection that passes every call to another: the base of test decorators that change a few. */
abstract class ForwardingXenStore implements XenStore {
    protected final XenStore delegate;

    ForwardingXenStore(XenStore delegate) {
        this.delegate = delegate;
    }

    @Override
    public Optional<byte[]> read(String path) throws IOException {
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
