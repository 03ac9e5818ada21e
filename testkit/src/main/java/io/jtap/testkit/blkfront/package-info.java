/**
 * A simulated Linux blkfront ({@link io.jtap.testkit.blkfront.SimulatedBlkfront}) and the toolstack's part of
 * attaching a disk ({@link io.jtap.testkit.blkfront.SimulatedToolstack}), over the simulated Xen.
 */
package io.jtap.testkit.blkfront;
