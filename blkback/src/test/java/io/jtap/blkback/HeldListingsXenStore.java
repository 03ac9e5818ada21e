package io.jtap.blkback;

import io.jtap.xen.XenPlatform;
import io.jtap.xen.XenStore;
import java.io.IOException;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * A xenstore connection whose listings of one directory wait while it is {@link #hold() held}; everything else goes
 * to the real connection. Holding the listing of {@link BlkbackService#root()} stops the service's next rescan at its
 * start, so that a test can make a device handle an event before the service does.
 */
final class HeldListingsXenStore extends ForwardingXenStore {
    /** How long a held listing waits before it fails, so that a test that forgets to release does not hang. */
    private static final long HOLD_LIMIT_S = 30;

    private final String held;
    private volatile CountDownLatch gate = new CountDownLatch(0);

    /** @param held the directory whose listings {@link #hold()} stops */
    HeldListingsXenStore(XenStore delegate, String held) {
        super(delegate);
        this.held = held;
    }

    /** From now on, listings of the held directory wait for {@link #release()}. */
    void hold() {
        gate = new CountDownLatch(1);
    }

    /** Lets the listings that wait, and later ones, through. */
    void release() {
        gate.countDown();
    }

    /** {@code platform} with this connection as the one (and only) xenstore connection it opens. */
    XenPlatform platform(XenPlatform platform) {
        XenStore store = this;
        return new ForwardingXenPlatform(platform, "listings of " + held + " can be held") {
            @Override
            public XenStore openXenStore() {
                return store;
            }
        };
    }

    @Override
    public List<String> directory(String path) throws IOException {
        if (path.equals(held)) {
            try {
                if (!gate.await(HOLD_LIMIT_S, TimeUnit.SECONDS)) {
                    throw new IOException("held listing never released: path=" + path);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted while the listing was held: path=" + path, e);
            }
        }
        return delegate.directory(path);
    }
}
