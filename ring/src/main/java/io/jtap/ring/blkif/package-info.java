/**
 * Block-device ring messages, {@code xen/io/blkif.h}: constants in {@link io.jtap.ring.blkif.Blkif}, one
 * descriptor per struct, and {@link io.jtap.ring.blkif.BlkifAbi} for the x86_64 / x86_32 layouts a front end may
 * use (the "protocol" xenstore node).
 */
package io.jtap.ring.blkif;
