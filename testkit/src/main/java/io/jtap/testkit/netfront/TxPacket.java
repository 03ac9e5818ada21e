package io.jtap.testkit.netfront;

/**
 * How a {@link SimulatedNetfront} sends one packet: its checksum flags, GSO extra, and how the bytes are cut into
 * slots (as netfront cuts an skb: linear area, then page fragments).
 *
 * @param csumBlank     {@code NETTXF_csum_blank}
 * @param dataValidated {@code NETTXF_data_validated}
 * @param gsoType       {@code XEN_NETIF_GSO_TYPE_*}, 0 for none (then no GSO extra)
 * @param gsoSize       MSS for GSO
 * @param firstOffset   offset of the first slot's data in its page
 * @param slotSizes     bytes per slot, summing to the frame's length; null: whole pages (first one from
 *                      {@code firstOffset})
 */
public record TxPacket(boolean csumBlank, boolean dataValidated, int gsoType, int gsoSize, int firstOffset,
        int[] slotSizes) {

    public static TxPacket plain() {
        return new TxPacket(false, false, 0, 0, 0, null);
    }

    public static TxPacket partialChecksum() {
        return new TxPacket(true, true, 0, 0, 0, null);
    }

    public static TxPacket gso(int gsoType, int gsoSize) {
        return new TxPacket(true, true, gsoType, gsoSize, 0, null);
    }

    public TxPacket withSlots(int firstOffset, int... sizes) {
        return new TxPacket(csumBlank, dataValidated, gsoType, gsoSize, firstOffset, sizes);
    }

    public TxPacket withFlags(boolean blank, boolean validated) {
        return new TxPacket(blank, validated, gsoType, gsoSize, firstOffset, slotSizes);
    }
}
