package io.jtap.blkback;

import io.jtap.xen.EventChannels;
import io.jtap.xen.GrantTable;
import io.jtap.xen.XenPlatform;
import io.jtap.xen.XenStore;
import java.io.IOException;

/** A platform that passes every call to another, naming itself after it: the base of test decorators. */
abstract class ForwardingXenPlatform implements XenPlatform {
    protected final XenPlatform delegate;
    private final String note;

    /** @param note what the decorator changes, appended to the delegate's {@link #describe()} */
    ForwardingXenPlatform(XenPlatform delegate, String note) {
        this.delegate = delegate;
        this.note = note;
    }

    @Override
    public int domid() {
        return delegate.domid();
    }

    @Override
    public GrantTable openGrantTable() throws IOException {
        return delegate.openGrantTable();
    }

    @Override
    public EventChannels openEventChannels() throws IOException {
        return delegate.openEventChannels();
    }

    @Override
    public XenStore openXenStore() throws IOException {
        return delegate.openXenStore();
    }

    @Override
    public String describe() {
        return delegate.describe() + " (" + note + ")";
    }
}
