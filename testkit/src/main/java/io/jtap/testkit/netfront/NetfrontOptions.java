package io.jtap.testkit.netfront;

/**
 * What a {@link SimulatedNetfront} asks for and what its toolstack writes. Every netfront feature can be switched.
 *
 * @param sg               {@code feature-sg}
 * @param gsoTcpv4         {@code feature-gso-tcpv4}
 * @param gsoTcpv6         {@code feature-gso-tcpv6}
 * @param csumOffload      false writes {@code feature-no-csum-offload = 1}
 * @param ipv6CsumOffload  {@code feature-ipv6-csum-offload}
 * @param queues           queues wanted ({@code multi-queue-num-queues}; capped by the backend's maximum)
 * @param splitChannels    one event channel per direction when the backend offers it
 * @param requestRxCopy    {@code request-rx-copy} (netfront always writes 1)
 * @param rxNotify         {@code feature-rx-notify} (netfront always writes 1)
 * @param multicastControl {@code request-multicast-control}
 * @param hotplug          play the hotplug script: write {@code hotplug-status = connected} when connecting
 * @param mac              the toolstack's {@code mac}
 * @param rate             the toolstack's {@code rate} ("bytes,usec"), or null
 * @param vifname          the toolstack's {@code vifname}, or null
 * @param mtu              the toolstack's {@code mtu}, or null
 */
public record NetfrontOptions(boolean sg, boolean gsoTcpv4, boolean gsoTcpv6, boolean csumOffload,
        boolean ipv6CsumOffload, int queues, boolean splitChannels, boolean requestRxCopy, boolean rxNotify,
        boolean multicastControl, boolean hotplug, String mac, String rate, String vifname, String mtu) {

    /** What Linux netfront negotiates with Linux netback: everything on, one queue. */
    public static NetfrontOptions linuxDefaults() {
        return new NetfrontOptions(true, true, true, true, true, 1, true, true, true, false, true, "00:16:3e:00:00:01",
                null, null, null);
    }

    /** Everything off that can be off: one slot per packet, no GSO, no checksum offload, one channel. */
    public static NetfrontOptions minimal() {
        return new NetfrontOptions(false, false, false, false, false, 1, false, true, true, false, true,
                "00:16:3e:00:00:02", null, null, null);
    }

    public NetfrontOptions withSg(boolean v) {
        return new NetfrontOptions(v, gsoTcpv4, gsoTcpv6, csumOffload, ipv6CsumOffload, queues, splitChannels,
                requestRxCopy, rxNotify, multicastControl, hotplug, mac, rate, vifname, mtu);
    }

    public NetfrontOptions withGso(boolean v4, boolean v6) {
        return new NetfrontOptions(sg, v4, v6, csumOffload, ipv6CsumOffload, queues, splitChannels, requestRxCopy,
                rxNotify, multicastControl, hotplug, mac, rate, vifname, mtu);
    }

    public NetfrontOptions withCsumOffload(boolean v4, boolean v6) {
        return new NetfrontOptions(sg, gsoTcpv4, gsoTcpv6, v4, v6, queues, splitChannels, requestRxCopy, rxNotify,
                multicastControl, hotplug, mac, rate, vifname, mtu);
    }

    public NetfrontOptions withQueues(int n) {
        return new NetfrontOptions(sg, gsoTcpv4, gsoTcpv6, csumOffload, ipv6CsumOffload, n, splitChannels,
                requestRxCopy, rxNotify, multicastControl, hotplug, mac, rate, vifname, mtu);
    }

    public NetfrontOptions withSplitChannels(boolean v) {
        return new NetfrontOptions(sg, gsoTcpv4, gsoTcpv6, csumOffload, ipv6CsumOffload, queues, v, requestRxCopy,
                rxNotify, multicastControl, hotplug, mac, rate, vifname, mtu);
    }

    public NetfrontOptions withRequestRxCopy(boolean v) {
        return new NetfrontOptions(sg, gsoTcpv4, gsoTcpv6, csumOffload, ipv6CsumOffload, queues, splitChannels, v,
                rxNotify, multicastControl, hotplug, mac, rate, vifname, mtu);
    }

    public NetfrontOptions withMulticastControl(boolean v) {
        return new NetfrontOptions(sg, gsoTcpv4, gsoTcpv6, csumOffload, ipv6CsumOffload, queues, splitChannels,
                requestRxCopy, rxNotify, v, hotplug, mac, rate, vifname, mtu);
    }

    public NetfrontOptions withHotplug(boolean v) {
        return new NetfrontOptions(sg, gsoTcpv4, gsoTcpv6, csumOffload, ipv6CsumOffload, queues, splitChannels,
                requestRxCopy, rxNotify, multicastControl, v, mac, rate, vifname, mtu);
    }

    public NetfrontOptions withMac(String v) {
        return new NetfrontOptions(sg, gsoTcpv4, gsoTcpv6, csumOffload, ipv6CsumOffload, queues, splitChannels,
                requestRxCopy, rxNotify, multicastControl, hotplug, v, rate, vifname, mtu);
    }

    public NetfrontOptions withRate(String v) {
        return new NetfrontOptions(sg, gsoTcpv4, gsoTcpv6, csumOffload, ipv6CsumOffload, queues, splitChannels,
                requestRxCopy, rxNotify, multicastControl, hotplug, mac, v, vifname, mtu);
    }

    public NetfrontOptions withVifname(String v) {
        return new NetfrontOptions(sg, gsoTcpv4, gsoTcpv6, csumOffload, ipv6CsumOffload, queues, splitChannels,
                requestRxCopy, rxNotify, multicastControl, hotplug, mac, rate, v, mtu);
    }

    public NetfrontOptions withMtu(String v) {
        return new NetfrontOptions(sg, gsoTcpv4, gsoTcpv6, csumOffload, ipv6CsumOffload, queues, splitChannels,
                requestRxCopy, rxNotify, multicastControl, hotplug, mac, rate, vifname, v);
    }
}
