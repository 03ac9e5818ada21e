/**
 * The Xen block backend: serves a guest's blkfront from a jtap image, as Linux's xen-blkback does for block
 * devices.
 *
 * <p>Control path and data path are separate, as Linux's {@code xenbus.c} and {@code blkback.c}:
 * {@link io.jtap.blkback.BlkbackService} watches {@code backend/<kind>} and runs one
 * {@link io.jtap.blkback.BlkbackDevice} per device (the xenbus state machine, configuration, feature negotiation);
 * a connected device runs one {@link io.jtap.blkback.BlkifQueue} per ring, each on its own thread (validation of
 * private request copies, persistent grants / batch mapping / grant copy, io_uring for plain data extents, a
 * bounded worker pool for the rest, fenced flushes and barriers). {@link io.jtap.blkback.BlkbackConfig} holds the
 * tunables. The guest is untrusted throughout: bad requests get error responses, a broken ring halts alone.
 */
package io.jtap.blkback;
