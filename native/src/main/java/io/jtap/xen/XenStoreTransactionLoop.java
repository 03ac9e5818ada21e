package io.jtap.xen;

import java.io.IOException;

/**
 * The retry loop behind {@link XenStore#transaction}, shared by the implementations so that both retry, abort and give
 * up identically (libxenstore leaves this loop to every caller; jtap writes it once).
 */
public final class XenStoreTransactionLoop {
    /** One started transaction, as an implementation provides it. */
    public interface Attempt {
        XenStore.Transaction view();

        /**
         * XS_TRANSACTION_END "T".
         *
         * @return false when xenstored reported a conflict (EAGAIN); the transaction is then over
         */
        boolean commit() throws IOException;

        /** XS_TRANSACTION_END "F". Must not throw for a transaction that is already over. */
        void abort() throws IOException;
    }

    /** Starts a transaction; {@code attempt} counts from 0. */
    @FunctionalInterface
    public interface Starter {
        Attempt start(int attempt) throws IOException;
    }

    private XenStoreTransactionLoop() {
    }

    public static <T> T run(XenStore.TransactionBody<T> body, Starter starter) throws IOException {
        for (int attempt = 0; attempt < XenStore.MAX_TRANSACTION_ATTEMPTS; attempt++) {
            Attempt tx = starter.start(attempt);
            T result;
            try {
                result = body.run(tx.view());
            } catch (XenStoreException e) {
                abortQuietly(tx, e);
                if (e.is(XenStoreException.EAGAIN)) {
                    continue;
                }
                throw e;
            } catch (IOException | RuntimeException | Error e) {
                abortQuietly(tx, e);
                throw e;
            }
            if (tx.commit()) {
                return result;
            }
        }
        throw new XenStoreException("transaction", null, XenStoreException.EAGAIN,
                "attempts=" + XenStore.MAX_TRANSACTION_ATTEMPTS + ", every attempt conflicted");
    }

    private static void abortQuietly(Attempt tx, Throwable primary) {
        try {
            tx.abort();
        } catch (IOException | RuntimeException e) {
            primary.addSuppressed(e);
        }
    }
}
