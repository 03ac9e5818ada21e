/**
 * Xen's shared-memory ring protocol ({@code xen/io/ring.h}) over a direct {@link java.nio.ByteBuffer} that aliases
 * the ring pages: {@link io.jtap.ring.SharedRingDescriptor} is the layout, {@link io.jtap.ring.BackRing} and
 * {@link io.jtap.ring.FrontRing} are the two ends' private state and the {@code RING_*} macros as methods.
 *
 * <p>The shape follows the C header closely on purpose: a reader can hold each method next to the macro its
 * Javadoc names, and each of Xen's {@code xen_mb()/xen_rmb()/xen_wmb()} appears as a {@link java.lang.invoke.VarHandle}
 * fence or acquire/release access with the same "X sees Y before Z" comment. Message layouts are in the
 * {@code blkif} and {@code netif} subpackages; XenHeaderLayoutTest checks every number against the headers.
 */
package io.jtap.ring;
