package io.jtap.netback;

/**
 * A guest broke its ring beyond an error response (Linux: {@code xenvif_fatal_tx_err}): the vif's data path stops,
 * nothing else does. Thrown inside a queue thread only; never escapes it.
 */
final class GuestFatalException extends Exception {
    private static final long serialVersionUID = 1L;

    GuestFatalException(String message) {
        super(message);
    }
}
