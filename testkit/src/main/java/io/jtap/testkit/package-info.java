/**
 * Simulated frontends that drive jtap's backends over the simulated Xen ({@code io.jtap.xen.sim}) exactly as Linux's
 * blkfront and netfront do over real Xen: the xenbus handshake, granting ring and data pages, and the ring protocol.
 * Used by the backends' tests, by {@code bench/} and by the simulated main job.
 */
package io.jtap.testkit;
