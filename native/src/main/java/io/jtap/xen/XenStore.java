package io.jtap.xen;

import java.io.IOException;

/**
 * A connection to xenstore, as one domain.
 *
 * <p>Why this shape: a backend needs xenstore for three things — reading and writing its device's nodes, watching the
 * frontend's state, and changing several nodes atomically. Those are {@link XenStoreAccess}, {@link #watch} and
 * {@link #transaction}. The same interface is implemented over xenstored's wire protocol
 * ({@code io.jtap.xen.linux.WireXenStore}, socket or {@code /dev/xen/xenbus}) and in-process
 * ({@code io.jtap.xen.sim.SimulatedXenStore}); {@code XenStoreContract} holds both to xenstored's behaviour.
 *
 * <p>Threading: every method may be called from any thread, concurrently. Watch listeners run on one delivery thread
 * per connection, in the order the events arrived; a listener must not block for long, and may call back into the
 * connection (but not wait for another watch event).
 *
 * <p>Ownership: the connection owns its watches and transactions; closing it drops them.
 */
public interface XenStore extends XenStoreAccess, AutoCloseable {
    /** Receives watch events on the connection's delivery thread. */
    @FunctionalInterface
    interface WatchListener {
        /**
         * @param path the node that changed, in the form the watch was registered in (relative stays relative); for
         *     the initial event, the watched path itself; when an ancestor was removed, the watched path
         * @param token the watch's token
         */
        void onEvent(String path, String token);
    }

    /** A registered watch; closing it unregisters it (XS_UNWATCH) and stops its events. Idempotent. */
    interface Watch extends AutoCloseable {
        String path();

        String token();

        @Override
        void close() throws IOException;
    }

    /**
     * The view a transaction body works on: reads see the transaction's own writes; other connections see nothing of
     * it until commit. Valid only while its body runs.
     */
    interface Transaction extends XenStoreAccess {
        /** How many times the body has run before this run (0 on the first attempt). */
        int attempt();
    }

    /**
     * A transaction body. It may run more than once (xenstored reports a conflict with EAGAIN at commit, and the whole
     * transaction is redone), so it must have no effects outside the transaction, and compute its result afresh.
     */
    @FunctionalInterface
    interface TransactionBody<T> {
        T run(Transaction tx) throws IOException;
    }

    /** How many times {@link #transaction} runs a body that keeps conflicting before it gives up with EAGAIN. */
    int MAX_TRANSACTION_ATTEMPTS = 32;

    /**
     * Registers a watch (XS_WATCH) on {@code path} and everything below it. As xenstored does, an initial event with
     * the watched path fires right after registration, whether or not the node exists. {@code path} may be relative
     * or one of {@link XenStorePath#INTRODUCE_DOMAIN} / {@link XenStorePath#RELEASE_DOMAIN}.
     *
     * <p>The listener is installed before the request is sent, so an event that arrives before the reply (xenstored
     * is free to send it first) is delivered, not lost.
     *
     * @param token the watch token, unique among this connection's open watches (events are routed by token);
     *     {@code null} picks a fresh one
     * @throws IllegalArgumentException when the token is already used by an open watch of this connection (so
     *     xenstored's EEXIST for a repeated path and token cannot arise)
     */
    Watch watch(String path, String token, WatchListener listener) throws IOException;

    /** {@link #watch} with a fresh token. */
    default Watch watch(String path, WatchListener listener) throws IOException {
        return watch(path, null, listener);
    }

    /**
     * Runs {@code body} in a transaction (XS_TRANSACTION_START ... XS_TRANSACTION_END) and commits it. On a conflict
     * (EAGAIN, at commit or from a request inside the transaction) the transaction is aborted and the body runs again,
     * at most {@link #MAX_TRANSACTION_ATTEMPTS} times in all. If the body throws, the transaction is aborted and the
     * exception propagates.
     *
     * @return the body's result from the attempt that committed
     * @throws XenStoreException EAGAIN when every attempt conflicted
     */
    <T> T transaction(TransactionBody<T> body) throws IOException;

    /** Closes the connection: its watches stop and open transactions are abandoned. Idempotent. */
    @Override
    void close() throws IOException;
}
