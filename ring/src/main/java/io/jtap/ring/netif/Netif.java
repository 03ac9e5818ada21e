package io.jtap.ring.netif;

import io.jtap.ring.SharedRingDescriptor;

/**
 * Constants of the network ring protocol, {@code xen/io/netif.h}, under their Xen names (the header's own
 * spelling: {@code NETTXF_*}, {@code NETRXF_*}, {@code NETIF_RSP_*}), and the sizes of the tx and rx rings. netif
 * has no 64-bit fields, so its layouts are the same in every ABI.
 */
public final class Netif {
    /** Slots a front end may use for one packet, at least. */
    public static final int XEN_NETIF_NR_SLOTS_MIN = 18;
    /** Largest packet on the tx ring: the size field is 16 bits. */
    public static final int XEN_NETIF_MAX_TX_SIZE = 0xFFFF;

    /** tx request flags. */
    public static final int NETTXF_csum_blank = 1 << 0;
    public static final int NETTXF_data_validated = 1 << 1;
    public static final int NETTXF_more_data = 1 << 2;
    public static final int NETTXF_extra_info = 1 << 3;

    /** rx response flags. */
    public static final int NETRXF_data_validated = 1 << 0;
    public static final int NETRXF_csum_blank = 1 << 1;
    public static final int NETRXF_more_data = 1 << 2;
    public static final int NETRXF_extra_info = 1 << 3;
    public static final int NETRXF_gso_prefix = 1 << 4;

    /** netif_extra_info types. */
    public static final int XEN_NETIF_EXTRA_TYPE_NONE = 0;
    public static final int XEN_NETIF_EXTRA_TYPE_GSO = 1;
    public static final int XEN_NETIF_EXTRA_TYPE_MCAST_ADD = 2;
    public static final int XEN_NETIF_EXTRA_TYPE_MCAST_DEL = 3;
    public static final int XEN_NETIF_EXTRA_TYPE_HASH = 4;
    public static final int XEN_NETIF_EXTRA_TYPE_MAX = 5;

    /** netif_extra_info flags. */
    public static final int XEN_NETIF_EXTRA_FLAG_MORE = 1 << 0;

    public static final int XEN_NETIF_GSO_TYPE_NONE = 0;
    public static final int XEN_NETIF_GSO_TYPE_TCPV4 = 1;
    public static final int XEN_NETIF_GSO_TYPE_TCPV6 = 2;

    public static final int NETIF_RSP_DROPPED = -2;
    public static final int NETIF_RSP_ERROR = -1;
    public static final int NETIF_RSP_OKAY = 0;
    /** No response: for auxiliary requests such as extra info. */
    public static final int NETIF_RSP_NULL = 1;

    /** {@code sizeof(union netif_tx_sring_entry)}. */
    public static final int TX_ENTRY_LENGTH =
        Math.max(NetifTxRequestDescriptor.LENGTH, NetifTxResponseDescriptor.LENGTH);
    /** {@code sizeof(union netif_rx_sring_entry)}. */
    public static final int RX_ENTRY_LENGTH =
        Math.max(NetifRxRequestDescriptor.LENGTH, NetifRxResponseDescriptor.LENGTH);
    /** Entries in a one-page tx ring (Linux: {@code NET_TX_RING_SIZE}). */
    public static final int NET_TX_RING_SIZE = txRingSize(0);
    /** Entries in a one-page rx ring (Linux: {@code NET_RX_RING_SIZE}). */
    public static final int NET_RX_RING_SIZE = rxRingSize(0);

    private Netif() {
    }

    /** {@code __CONST_RING_SIZE(netif_tx, 4096 << order)}. */
    public static int txRingSize(final int order) {
        return SharedRingDescriptor.ringSize(SharedRingDescriptor.ringBytes(order), TX_ENTRY_LENGTH);
    }

    /** {@code __CONST_RING_SIZE(netif_rx, 4096 << order)}. */
    public static int rxRingSize(final int order) {
        return SharedRingDescriptor.ringSize(SharedRingDescriptor.ringBytes(order), RX_ENTRY_LENGTH);
    }
}
