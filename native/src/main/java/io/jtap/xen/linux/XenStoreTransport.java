package io.jtap.xen.linux;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * A byte stream carrying xenstore wire messages: xenstored's unix socket or {@code /dev/xen/xenbus}.
 * {@link #read} is called by one reader thread only; {@link #write} is serialized by the caller; {@link #close} may be
 * called from any thread and makes a blocked {@link #read} return -1 (or throw).
 */
interface XenStoreTransport extends AutoCloseable {
    /** Reads at least one byte into {@code dst}, blocking; -1 at end of stream or after {@link #close}. */
    int read(ByteBuffer dst) throws IOException;

    /** Writes all of {@code message} (one whole wire message). */
    void write(ByteBuffer message) throws IOException;

    /** For messages, e.g. "socket /run/xenstored/socket". */
    String describe();

    /** Stops the transport: a blocked {@link #read} returns -1. Idempotent. */
    @Override
    void close() throws IOException;

    /** Frees what {@link #close} could not while the reader was still inside {@link #read}; called after it left. */
    default void release() throws IOException {
    }
}
