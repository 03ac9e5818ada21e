package io.jtap.formats;

import java.io.IOException;
import java.util.List;

/**
 * Phase one of a two-phase write (see {@link Image#mapForWrite}): reserved host extents, and the decision that
 * ends the reservation. Exactly one of {@link #complete()} or {@link #abort()} takes effect; {@link #close()} aborts
 * a mapping that was neither completed nor aborted. Owned by the caller that obtained it; the methods may be called
 * from any thread, but not concurrently on one mapping.
 */
public interface WriteMapping extends AutoCloseable {

    /** The extents of the write, in guest order, covering it exactly: DATA or TRANSFORMED only. */
    List<Extent> extents();

    /**
     * Call after the data IO on every DATA extent has finished successfully (and TRANSFORMED parts were written via
     * {@link Image#write}): links newly allocated clusters (L2 entries) so that reads see the new data. Metadata is
     * made durable by the next {@link Image#flush()}, always after the data it references. May block briefly on
     * metadata IO; never waits for other callers.
     */
    void complete() throws IOException;

    /**
     * Call when the data IO failed or was not issued: releases the reservation. The range keeps its old contents
     * where nobody else wrote, and is otherwise undefined (as after any failed write). May perform synchronous IO.
     */
    void abort() throws IOException;

    /** Aborts unless {@link #complete()} or {@link #abort()} was called. */
    @Override
    void close() throws IOException;
}
