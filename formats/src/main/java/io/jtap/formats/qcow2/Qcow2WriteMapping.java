package io.jtap.formats.qcow2;

import io.jtap.formats.Extent;
import io.jtap.formats.WriteMapping;
import java.io.IOException;
import java.util.List;

/**
 * A reserved qcow2 write: DATA extents into clusters that are either already this image's (written in place) or
 * newly reserved ({@link PendingCluster}s this request allocated or joined). {@link #complete()} links the new
 * clusters; {@link #abort()} releases them.
 */
final class Qcow2WriteMapping implements WriteMapping {
    /** A request's share of a pending cluster: the guest byte range it writes. */
    record Part(PendingCluster cluster, long from, long to) {
    }

    private enum State { OPEN, COMPLETED, ABORTED }

    private final Qcow2Image image;
    private final List<Extent> extents;
    private final List<Part> parts;
    /** The parity of the image's free epoch when this mapping began. */
    private final int parity;
    private State state = State.OPEN;

    Qcow2WriteMapping(Qcow2Image image, List<Extent> extents, List<Part> parts, int parity) {
        this.image = image;
        this.extents = List.copyOf(extents);
        this.parts = parts;
        this.parity = parity;
    }

    @Override
    public List<Extent> extents() {
        return extents;
    }

    @Override
    public void complete() throws IOException {
        if (state != State.OPEN) {
            throw new IllegalStateException("write mapping already " + state);
        }
        state = State.COMPLETED;
        image.completeParts(parts, parity);
    }

    @Override
    public void abort() throws IOException {
        if (state != State.OPEN) {
            throw new IllegalStateException("write mapping already " + state);
        }
        state = State.ABORTED;
        image.abortParts(parts, parity);
    }

    @Override
    public void close() throws IOException {
        if (state == State.OPEN) {
            abort();
        }
    }
}
