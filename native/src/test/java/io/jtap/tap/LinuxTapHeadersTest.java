package io.jtap.tap;

import io.jtap.xen.CLayoutProbe;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Interoperability with the kernel's uapi headers: a C program compiled against {@code linux/if_tun.h},
 * {@code linux/if.h} and {@code linux/virtio_net.h} prints every ioctl number, flag, size and offset that the Java side
 * hard-codes, and each must be equal (through {@link CLayoutProbe}). In CI (CI=true) a missing gcc fails the test;
 * elsewhere it skips.
 */
class LinuxTapHeadersTest {
    /** The Java side of every comparison, keyed by the C expression's name. */
    private static Map<String, Long> javaValues() {
        Map<String, Long> v = new LinkedHashMap<>();
        v.put("TUNSETIFF", IfTun.TUNSETIFF);
        v.put("TUNSETPERSIST", IfTun.TUNSETPERSIST);
        v.put("TUNGETFEATURES", IfTun.TUNGETFEATURES);
        v.put("TUNSETOFFLOAD", IfTun.TUNSETOFFLOAD);
        v.put("TUNGETIFF", IfTun.TUNGETIFF);
        v.put("TUNGETVNETHDRSZ", IfTun.TUNGETVNETHDRSZ);
        v.put("TUNSETVNETHDRSZ", IfTun.TUNSETVNETHDRSZ);
        v.put("TUNSETVNETLE", IfTun.TUNSETVNETLE);
        v.put("TUNGETVNETLE", IfTun.TUNGETVNETLE);
        v.put("IFF_TUN", (long) IfTun.IFF_TUN);
        v.put("IFF_TAP", (long) IfTun.IFF_TAP);
        v.put("IFF_NO_CARRIER", (long) IfTun.IFF_NO_CARRIER);
        v.put("IFF_NO_PI", (long) IfTun.IFF_NO_PI);
        v.put("IFF_ONE_QUEUE", (long) IfTun.IFF_ONE_QUEUE);
        v.put("IFF_VNET_HDR", (long) IfTun.IFF_VNET_HDR);
        v.put("IFF_TUN_EXCL", (long) (IfTun.IFF_TUN_EXCL & 0xffff));
        v.put("IFF_MULTI_QUEUE", (long) IfTun.IFF_MULTI_QUEUE);
        v.put("IFF_PERSIST", (long) IfTun.IFF_PERSIST);
        v.put("TUN_F_CSUM", (long) TapDevice.TUN_F_CSUM);
        v.put("TUN_F_TSO4", (long) TapDevice.TUN_F_TSO4);
        v.put("TUN_F_TSO6", (long) TapDevice.TUN_F_TSO6);
        v.put("TUN_F_TSO_ECN", (long) TapDevice.TUN_F_TSO_ECN);
        v.put("TUN_F_UFO", (long) TapDevice.TUN_F_UFO);
        v.put("TUN_F_USO4", (long) TapDevice.TUN_F_USO4);
        v.put("TUN_F_USO6", (long) TapDevice.TUN_F_USO6);
        v.put("IFNAMSIZ", (long) IfReqDescriptor.IFNAMSIZ);
        v.put("sizeof(struct ifreq)", (long) IfReqDescriptor.LENGTH);
        v.put("offsetof(struct ifreq, ifr_name)", (long) IfReqDescriptor.IFR_NAME_OFFSET);
        v.put("offsetof(struct ifreq, ifr_flags)", (long) IfReqDescriptor.IFR_FLAGS_OFFSET);
        v.put("VIRTIO_NET_HDR_F_NEEDS_CSUM", (long) VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_F_NEEDS_CSUM);
        v.put("VIRTIO_NET_HDR_F_DATA_VALID", (long) VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_F_DATA_VALID);
        v.put("VIRTIO_NET_HDR_F_RSC_INFO", (long) VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_F_RSC_INFO);
        v.put("VIRTIO_NET_HDR_GSO_NONE", (long) VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_GSO_NONE);
        v.put("VIRTIO_NET_HDR_GSO_TCPV4", (long) VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_GSO_TCPV4);
        v.put("VIRTIO_NET_HDR_GSO_UDP", (long) VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_GSO_UDP);
        v.put("VIRTIO_NET_HDR_GSO_TCPV6", (long) VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_GSO_TCPV6);
        v.put("VIRTIO_NET_HDR_GSO_UDP_L4", (long) VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_GSO_UDP_L4);
        v.put("VIRTIO_NET_HDR_GSO_ECN", (long) VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_GSO_ECN);
        v.put("sizeof(struct virtio_net_hdr)", (long) VirtioNetHeaderDescriptor.LEGACY_LENGTH);
        v.put("sizeof(struct virtio_net_hdr_v1)", (long) VirtioNetHeaderDescriptor.LENGTH);
        v.put("sizeof(struct virtio_net_hdr_mrg_rxbuf)", (long) VirtioNetHeaderDescriptor.LENGTH);
        v.put("offsetof(struct virtio_net_hdr_v1, flags)", (long) VirtioNetHeaderDescriptor.FLAGS_OFFSET);
        v.put("offsetof(struct virtio_net_hdr_v1, gso_type)", (long) VirtioNetHeaderDescriptor.GSO_TYPE_OFFSET);
        v.put("offsetof(struct virtio_net_hdr_v1, hdr_len)", (long) VirtioNetHeaderDescriptor.HDR_LEN_OFFSET);
        v.put("offsetof(struct virtio_net_hdr_v1, gso_size)", (long) VirtioNetHeaderDescriptor.GSO_SIZE_OFFSET);
        v.put("offsetof(struct virtio_net_hdr_v1, csum_start)", (long) VirtioNetHeaderDescriptor.CSUM_START_OFFSET);
        v.put("offsetof(struct virtio_net_hdr_v1, csum_offset)", (long) VirtioNetHeaderDescriptor.CSUM_OFFSET_OFFSET);
        v.put("offsetof(struct virtio_net_hdr_v1, num_buffers)", (long) VirtioNetHeaderDescriptor.NUM_BUFFERS_OFFSET);
        v.put("offsetof(struct virtio_net_hdr_mrg_rxbuf, num_buffers)",
                (long) VirtioNetHeaderDescriptor.NUM_BUFFERS_OFFSET);
        v.put("offsetof(struct virtio_net_hdr, csum_offset)", (long) VirtioNetHeaderDescriptor.CSUM_OFFSET_OFFSET);
        return v;
    }

    /** Constants newer than some uapi headers: not compared when the installed header lacks them. */
    private static final List<String> OPTIONAL = List.of("TUN_F_USO4", "TUN_F_USO6", "VIRTIO_NET_HDR_GSO_UDP_L4");

    @Test
    void javaConstantsEqualTheKernelHeaders(@TempDir Path dir) throws Exception {
        Map<String, Long> expected = javaValues();
        Map<String, Long> actual = CLayoutProbe.evaluate(dir, "tap_headers",
                List.of("/usr/include/linux/if_tun.h", "/usr/include/linux/virtio_net.h"),
                "#include <stdio.h>\n#include <stddef.h>\n#include <sys/ioctl.h>\n#include <net/if.h>\n"
                        + "#include <linux/if_tun.h>\n#include <linux/virtio_net.h>\n",
                expected.keySet(), OPTIONAL, List.of(), "gcc and linux-libc-dev");
        CLayoutProbe.assertSameAsC(expected, actual, OPTIONAL, "kernel uapi headers (if_tun.h, virtio_net.h)");
    }
}
