package io.jtap.netback;

import io.jtap.xen.BadXenStoreValueException;
import io.jtap.xen.XenStoreAccess;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * What a netfront published in its xenstore directory before switching to Connected ({@code io/netif.h}): per queue
 * the two ring refs and one event channel or a tx/rx pair; the features it accepts on rx; multicast control. Read once
 * per connection by {@link #read}; immutable.
 *
 * @param queues           one entry per queue, in order ({@code queue-N/} when there are several)
 * @param sg               {@code feature-sg}: rx packets may span several slots
 * @param gsoTcpv4         {@code feature-gso-tcpv4}: rx may carry IPv4 TCP GSO packets with a GSO extra
 * @param gsoTcpv6         {@code feature-gso-tcpv6}
 * @param csumIpv4         not {@code feature-no-csum-offload}: rx IPv4 packets may have a blank checksum
 * @param csumIpv6         {@code feature-ipv6-csum-offload}: rx IPv6 packets may have a blank checksum
 * @param multicastControl {@code request-multicast-control}: rx multicast is filtered by the frontend's list
 */
public record FrontendConfig(List<QueueRings> queues, boolean sg, boolean gsoTcpv4, boolean gsoTcpv6, boolean csumIpv4,
        boolean csumIpv6, boolean multicastControl) {

    /** One queue's rings and channels as the frontend granted and allocated them. */
    public record QueueRings(int txRingRef, int rxRingRef, int txEventChannel, int rxEventChannel, boolean split) {
    }

    /**
     * Reads the frontend's keys under {@code frontend}.
     *
     * @throws BadXenStoreValueException naming the key and the value for anything missing or malformed, or a feature
     *     netback insists on ({@code request-rx-copy}, {@code feature-rx-notify}) that is off
     */
    static FrontendConfig read(XenStoreAccess xs, String frontend, int maxQueues) throws IOException {
        long rxCopy = readUnsigned(xs, frontend + "/request-rx-copy", 0, 1);
        if (rxCopy != 1) {
            throw new BadXenStoreValueException(frontend + "/request-rx-copy", Long.toString(rxCopy),
                    "netback only copies on rx (the frontend must request rx-copy)");
        }
        if (readUnsigned(xs, frontend + "/feature-rx-notify", 0, 1) != 1) {
            throw new BadXenStoreValueException(frontend + "/feature-rx-notify",
                    xs.readString(frontend + "/feature-rx-notify").orElse(null), "feature-rx-notify is mandatory");
        }
        int n = (int) readUnsigned(xs, frontend + "/multi-queue-num-queues", 1, maxQueues);
        if (n < 1) {
            throw new BadXenStoreValueException(frontend + "/multi-queue-num-queues", "0", "at least one queue");
        }
        List<QueueRings> queues = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            String dir = n == 1 ? frontend : frontend + "/queue-" + i;
            queues.add(readQueue(xs, dir));
        }
        boolean sg = readFlag(xs, frontend + "/feature-sg");
        return new FrontendConfig(List.copyOf(queues), sg, readFlag(xs, frontend + "/feature-gso-tcpv4"),
                readFlag(xs, frontend + "/feature-gso-tcpv6"), !readFlag(xs, frontend + "/feature-no-csum-offload"),
                readFlag(xs, frontend + "/feature-ipv6-csum-offload"),
                readFlag(xs, frontend + "/request-multicast-control"));
    }

    private static QueueRings readQueue(XenStoreAccess xs, String dir) throws IOException {
        int tx = (int) readRequired(xs, dir + "/tx-ring-ref", 0xffff_ffffL);
        int rx = (int) readRequired(xs, dir + "/rx-ring-ref", 0xffff_ffffL);
        Optional<String> split = xs.readString(dir + "/event-channel-tx");
        if (split.isPresent()) {
            int txPort = (int) readRequired(xs, dir + "/event-channel-tx", Integer.MAX_VALUE);
            int rxPort = (int) readRequired(xs, dir + "/event-channel-rx", Integer.MAX_VALUE);
            return new QueueRings(tx, rx, txPort, rxPort, true);
        }
        int port = (int) readRequired(xs, dir + "/event-channel", Integer.MAX_VALUE);
        return new QueueRings(tx, rx, port, port, false);
    }

    static boolean readFlag(XenStoreAccess xs, String path) throws IOException {
        return readUnsigned(xs, path, 0, Long.MAX_VALUE) != 0;
    }

    /** An unsigned decimal node, {@code defaultValue} when missing; out of {@code [0, max]} is an error. */
    static long readUnsigned(XenStoreAccess xs, String path, long defaultValue, long max) throws IOException {
        Optional<String> text = xs.readString(path);
        if (text.isEmpty()) {
            return defaultValue;
        }
        return parseUnsigned(path, text.get(), max);
    }

    static long readRequired(XenStoreAccess xs, String path, long max) throws IOException {
        Optional<String> text = xs.readString(path);
        if (text.isEmpty()) {
            throw new BadXenStoreValueException(path, null, "required node is missing");
        }
        return parseUnsigned(path, text.get(), max);
    }

    static long parseUnsigned(String path, String text, long max) throws BadXenStoreValueException {
        String t = text.trim();
        long v;
        try {
            if (t.isEmpty() || t.charAt(0) == '-' || t.charAt(0) == '+') {
                throw new NumberFormatException();
            }
            v = Long.parseLong(t);
        } catch (NumberFormatException e) {
            throw new BadXenStoreValueException(path, text, "not an unsigned decimal number");
        }
        if (v > max) {
            throw new BadXenStoreValueException(path, text, "out of range (maximum " + max + ")");
        }
        return v;
    }
}
