/**
 * Network ring messages, {@code xen/io/netif.h}: constants and ring sizes in {@link io.jtap.ring.netif.Netif}, one
 * descriptor per struct. netif has one layout for every ABI.
 */
package io.jtap.ring.netif;
