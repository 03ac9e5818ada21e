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

    /**
     * Whether several requests may be in flight at once. xenstored's socket buffers each whole message; Linux's
     * {@code /dev/xen/xenbus} does not: it queues a request with its body still in the file's one message buffer
     * ({@code xenbus_dev_request_and_reply}: {@code vec->iov_base = msg + 1}) and the xenbus thread copies the body
     * to the ring later, so a second {@code write} before that overwrites the first request's body (libxenstore never
     * sees this: it keeps one request in flight per handle). The connection then waits for each reply before it
     * writes the next request.
     */
    default boolean pipelines() {
        return true;
    }

    /** For messages, e.g. "socket /run/xenstored/socket". */
    String describe();

    /** Stops the transport: a blocked {@link #read} returns -1. Idempotent. */
    @Override
    void close() throws IOException;

    /** Frees what {@link #close} could not while the reader was still inside {@link #read}; called after it left. */
    default void release() throws IOException {
    }
}
