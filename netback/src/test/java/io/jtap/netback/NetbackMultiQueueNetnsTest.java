package io.jtap.netback;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.tap.Ci;
import io.jtap.tap.LinuxTap;
import io.jtap.tap.Netns;
import io.jtap.tap.TapDevice;
import io.jtap.testkit.netfront.NetfrontOptions;
import io.jtap.testkit.netfront.RxPacket;
import io.jtap.testkit.netfront.SimulatedNetfront;
import io.jtap.xen.sim.SimulatedXen;
import io.jtap.xen.sim.SimulatedXenExtension;
import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * netback with the daemon's multi-queue TAP ({@link TapFactory#linux()}, {@code IFF_MULTI_QUEUE}) against the real
 * kernel: a two-queue guest gets a TAP queue per netback queue, the toolstack's {@code mtu} is on the interface, and
 * UDP flows sent from a network namespace are spread by the kernel's own flow hash over both queues, every datagram
 * arriving once and each flow on one queue.
 *
 * <p>Runs in CI (CI=true) as root and fails there when it cannot; elsewhere it skips without root.
 */
@ExtendWith(SimulatedXenExtension.class)
@Timeout(120)
class NetbackMultiQueueNetnsTest {
    private static final String NS_IP = "10.215.0.1";
    private static final String GUEST_IP_TEXT = "10.215.0.2";
    private static final String GUEST_MAC_TEXT = "00:16:3e:6a:75:02";
    private static final Duration WAIT = Duration.ofSeconds(20);
    private static final int FLOWS = 16;
    private static final int PER_FLOW = 5;
    /** Sends PER_FLOW datagrams from each of FLOWS source ports; the payload names its flow and sequence number. */
    private static final String UDP_FLOWS = String.join("\n",
            "import socket, sys",
            "src, dst, flows, per = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])",
            "socks = []",
            "for f in range(flows):",
            "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)",
            "    s.bind((src, 7000 + f))",
            "    socks.append(s)",
            "for i in range(per):",
            "    for f in range(flows):",
            "        socks[f].sendto(('flow %d seq %d' % (f, i)).encode(), (dst, 7100))",
            "print('SENT', flush=True)");

    private Netns ns;
    private NetbackService service;
    private SimulatedNetfront guest;
    private String tapName;

    @BeforeEach
    void setUp(SimulatedXen xen) throws Exception {
        Ci.require(Ci.isRoot(), "network namespaces and TAP interfaces need root: user="
                + System.getProperty("user.name"));
        Ci.require(LinuxTap.availability().isAvailable(), "LinuxTap is unavailable: "
                + LinuxTap.availability().unavailabilityCause());
        Ci.require(Netns.commandWorks("ip", "-V"), "iproute2's ip is not installed");
        Ci.require(Netns.commandWorks("python3", "--version"), "python3 is not installed");

        ns = Netns.create();
        service = NetbackService.start(xen.platform(SimulatedXen.DOM0), TapFactory.linux(),
                NetbackOptions.defaults().withMaxQueues(2));
        tapName = "jtmq" + Netns.randomSuffix();
        guest = SimulatedNetfront.create(xen, xen.createDomain("netns-mq-guest"), 0,
                NetfrontOptions.linuxDefaults().withVifname(tapName).withMac(GUEST_MAC_TEXT).withQueues(2)
                        .withMtu("9000"));
        guest.connect(WAIT);
        ns.adopt(tapName);
        String disableIpv6 = "/proc/sys/net/ipv6/conf/" + tapName + "/disable_ipv6";
        ns.exec("sh", "-c", "[ ! -e " + disableIpv6 + " ] || echo 1 > " + disableIpv6);
        ns.exec("ip", "addr", "add", NS_IP + "/24", "dev", tapName);
        ns.exec("ip", "link", "set", "dev", tapName, "up");
        ns.exec("ip", "neigh", "replace", GUEST_IP_TEXT, "lladdr", GUEST_MAC_TEXT, "dev", tapName, "nud", "permanent");
    }

    @AfterEach
    void tearDown() throws Exception {
        try {
            if (service != null) {
                service.close();
            }
            if (guest != null) {
                guest.close();
                guest.assertNoViolations();
            }
        } finally {
            if (ns != null) {
                ns.close();
            }
        }
    }

    @Test
    void theToolstacksMtuIsOnTheInterface() throws Exception {
        assertEquals("9000", ns.exec("cat", "/sys/class/net/" + tapName + "/mtu").trim());
    }

    @Test
    void everyQueueReceivesItsFlowsAndNothingIsLost() throws Exception {
        TapDevice tap = service.vif(guest.guest().domid(), 0).orElseThrow().tap().orElseThrow();
        assertEquals(2, tap.queueCount(), "a TAP queue per netback queue");
        String out = ns.exec("python3", "-u", "-c", UDP_FLOWS, NS_IP, GUEST_IP_TEXT, Integer.toString(FLOWS),
                Integer.toString(PER_FLOW));
        assertTrue(out.contains("SENT"), out);

        Map<String, Integer> queueOfFlow = new HashMap<>();
        Set<String> datagrams = new HashSet<>();
        int[] perQueue = new int[2];
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (datagrams.size() < FLOWS * PER_FLOW) {
            assertTrue(System.nanoTime() - deadline < 0, "only " + datagrams.size() + " of " + FLOWS * PER_FLOW
                    + " datagrams arrived: per queue " + perQueue[0] + ", " + perQueue[1]);
            List<List<RxPacket>> got = guest.awaitRxAnyQueue(1, WAIT);
            for (int q = 0; q < 2; q++) {
                for (RxPacket p : got.get(q)) {
                    byte[] f = p.frame();
                    if (f.length < 42 || f[12] != 0x08 || f[13] != 0 || f[23] != 17) {
                        continue; // not IPv4 UDP
                    }
                    String payload = new String(f, 42, f.length - 42, java.nio.charset.StandardCharsets.US_ASCII);
                    String flow = payload.substring(0, payload.indexOf(" seq"));
                    Integer before = queueOfFlow.put(flow, q);
                    assertTrue(before == null || before == q, flow + " stays on one queue");
                    assertTrue(datagrams.add(payload), "received twice: " + payload);
                    perQueue[q]++;
                }
            }
        }
        assertEquals(FLOWS, queueOfFlow.size());
        assertTrue(perQueue[0] > 0 && perQueue[1] > 0, "the kernel spread the flows over both queues: per queue "
                + perQueue[0] + ", " + perQueue[1]);
    }
}
