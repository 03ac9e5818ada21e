package io.jtap.aio;

/** Receives one completed operation from {@link BlockIoEngine#reap}; runs on the engine's owner thread. */
@FunctionalInterface
public interface CompletionHandler {
    /**
     * @param userData the value given when the operation was prepared
     * @param result   for readv/writev the bytes transferred (always the whole vector's length on success), for fsync
     *                 and fallocate 0; or {@code -errno} on failure ({@link BlockIoEngine#SHORT_READ_AT_EOF} when a
     *                 read reached end of file)
     */
    void complete(long userData, long result);
}
