package io.jtap.testkit.netfront;

/**
 * A packet a {@link SimulatedNetfront} received, assembled from its rx responses as netfront assembles them.
 *
 * @param frame   the Ethernet frame
 * @param flags   the first response's {@code NETRXF_*} flags
 * @param gsoType the GSO extra's type, 0 without one
 * @param gsoSize the GSO extra's size
 * @param slots   rx requests the packet used, extra included
 * @param status  the first negative status among its responses, or 0
 */
public record RxPacket(byte[] frame, int flags, int gsoType, int gsoSize, int slots, int status) {
}
