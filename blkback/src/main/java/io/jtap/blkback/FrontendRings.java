package io.jtap.blkback;

import io.jtap.ring.blkif.BlkifAbi;
import io.jtap.xen.BadXenStoreValueException;
import io.jtap.xen.XenStoreAccess;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * What a frontend published for its rings, read from its xenstore directory when it reaches Initialised: the ABI
 * ({@code protocol}), {@code feature-persistent}, {@code multi-queue-num-queues}, {@code ring-page-order}, and per
 * queue the {@code event-channel} and {@code ring-ref} / {@code ring-refN} (under {@code queue-N/} when there are
 * several queues). Linux: {@code connect_ring} / {@code read_per_ring_refs}. Every value is checked against what
 * the backend offered; a bad one is a {@link BadXenStoreValueException} naming the node.
 *
 * @param abi        the ring layout
 * @param persistent the frontend uses persistent grants
 * @param order      ring page order
 * @param queues     per queue: grant refs of the ring pages and the frontend's event-channel port
 */
record FrontendRings(BlkifAbi abi, boolean persistent, int order, List<Queue> queues) {
    /** One ring as the frontend published it. */
    record Queue(int[] refs, int remotePort) {
    }

    static FrontendRings read(XenStoreAccess xs, String frontend, int maxOrder, int maxQueues) throws IOException {
        String protocol = value(xs, frontend + "/protocol").orElse(null);
        BlkifAbi abi;
        try {
            abi = BlkifAbi.fromProtocol(protocol);
        } catch (IllegalArgumentException e) {
            throw new BadXenStoreValueException(frontend + "/protocol", protocol, "unknown ABI");
        }
        boolean persistent = unsigned(xs, frontend + "/feature-persistent", 0, 1, 0) == 1;
        int queues = (int) unsigned(xs, frontend + "/multi-queue-num-queues", 1, maxQueues, 1);
        Optional<String> orderText = value(xs, frontend + "/ring-page-order");
        int order = (int) unsigned(xs, frontend + "/ring-page-order", 0, maxOrder, 0);
        List<Queue> list = new ArrayList<>();
        for (int q = 0; q < queues; q++) {
            String dir = queues == 1 ? frontend : frontend + "/queue-" + q;
            int port = (int) unsigned(xs, dir + "/event-channel", 0, 0xffff_ffffL, -1);
            int[] refs = new int[1 << order];
            if (orderText.isEmpty()) {
                refs[0] = (int) unsigned(xs, dir + "/ring-ref", 0, 0xffff_ffffL, -1);
            } else {
                for (int i = 0; i < refs.length; i++) {
                    refs[i] = (int) unsigned(xs, dir + "/ring-ref" + i, 0, 0xffff_ffffL, -1);
                }
            }
            list.add(new Queue(refs, port));
        }
        return new FrontendRings(abi, persistent, order, List.copyOf(list));
    }

    private static Optional<String> value(XenStoreAccess xs, String path) throws IOException {
        return xs.readString(path);
    }

    /**
     * Reads an unsigned decimal node within {@code [min, max]}.
     *
     * @param absent the value when the node is missing, or -1 when it is required
     */
    static long unsigned(XenStoreAccess xs, String path, long min, long max, long absent) throws IOException {
        Optional<String> text = xs.readString(path);
        if (text.isEmpty()) {
            if (absent < 0) {
                throw new BadXenStoreValueException(path, null, "required");
            }
            return absent;
        }
        String t = text.get().trim();
        long v;
        try {
            v = Long.parseLong(t);
        } catch (NumberFormatException e) {
            throw new BadXenStoreValueException(path, text.get(), "expected an unsigned number");
        }
        if (v < min || v > max || t.startsWith("+")) {
            throw new BadXenStoreValueException(path, text.get(), "expected " + min + ".." + max);
        }
        return v;
    }
}
