package io.jtap.tap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jtap.xen.linux.Syscalls.ErrnoException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The contract against {@link LinuxTap}. Each device is moved into a network namespace of this test's own and brought
 * up there (IPv6 off, no address); its host side is an {@code AF_PACKET} socket in that namespace. Needs root; in CI
 * (CI=true) it fails without, elsewhere it skips.
 */
@Timeout(30)
class LinuxTapTest extends TapDeviceContract {
    private static Netns ns;

    @BeforeAll
    static void createNamespace() throws IOException {
        Ci.require(Ci.isRoot(), "creating TAP interfaces and network namespaces needs root: user="
                + System.getProperty("user.name"));
        Ci.require(LinuxTap.availability().isAvailable(), "LinuxTap is unavailable: "
                + LinuxTap.availability().unavailabilityCause());
        ns = Netns.create();
    }

    @AfterAll
    static void deleteNamespace() throws IOException {
        if (ns != null) {
            ns.close();
        }
    }

    @Override
    protected TapDevice open(String name) throws IOException {
        LinuxTap tap = LinuxTap.open(name);
        try {
            ns.adopt(tap.name());
            String disableIpv6 = "/proc/sys/net/ipv6/conf/" + tap.name() + "/disable_ipv6";
            ns.exec("sh", "-c", "[ ! -e " + disableIpv6 + " ] || echo 1 > " + disableIpv6);
            ns.exec("ip", "link", "set", "dev", tap.name(), "up");
            return tap;
        } catch (IOException | RuntimeException e) {
            tap.close();
            throw e;
        }
    }

    @Override
    protected HostSide hostSide(TapDevice device) throws IOException {
        PacketSocket socket = PacketSocket.open(ns, device.name(), ETHERTYPE_EXPERIMENTAL);
        return new HostSide() {
            @Override
            public void send(byte[] ethernetFrame) throws IOException {
                socket.send(ethernetFrame);
            }

            @Override
            public byte[] receive(Duration timeout) throws IOException {
                return socket.receive(timeout);
            }

            @Override
            public void close() throws IOException {
                socket.close();
            }
        };
    }

    @Test
    void theKernelUsesTheTwelveByteHeader() throws IOException {
        assertEquals(12, ((LinuxTap) device).kernelVnetHeaderBytes());
    }

    @Test
    void aKernelTemplateNameIsResolved() throws IOException {
        try (LinuxTap tap = LinuxTap.open("jtt%d")) {
            assertTrue(tap.name().matches("jtt[0-9]+"), tap.name());
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "sixteen-chars-xx", "a/b", "a:b", "a b", ".", ".."})
    void invalidNamesFailBeforeTheKernelIsAsked(String name) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LinuxTap.open(name));
        assertTrue(e.getMessage().startsWith("invalid interface name"), e.getMessage());
    }

    @Test
    void fifteenBytesIsTheLongestName() throws IOException {
        String name = "jt15-" + Long.toString(System.nanoTime() % 10_000_000_000L, 36);
        name = (name + "xxxxxxxxxxxxxxx").substring(0, 15);
        try (LinuxTap tap = LinuxTap.open(name)) {
            assertEquals(name, tap.name());
        }
    }

    @Test
    void writingWhileTheLinkIsDownIsEio() throws IOException {
        ns.exec("ip", "link", "set", "dev", device.name(), "down");
        ErrnoException e = assertThrows(ErrnoException.class,
                () -> device.write(Packets.withHeader(frame("down", 0))));
        assertEquals(5, e.errno(), e.getMessage());
        assertTrue(e.getMessage().contains(device.name()), e.getMessage());
        assertEquals(0, device.read(ByteBuffer.allocateDirect(device.vnetHeaderBytes() + TapDevice.MAX_FRAME_BYTES)));
    }

    @Test
    void aPersistentInterfaceOutlivesItsFdUntilPersistIsTurnedOff() throws IOException {
        String name;
        try (LinuxTap tap = LinuxTap.open("jtp%d")) {
            name = tap.name();
            tap.setPersist(true);
        }
        java.nio.file.Path sysfs = java.nio.file.Path.of("/sys/class/net", name);
        try {
            assertTrue(java.nio.file.Files.exists(sysfs), "persistent interface still there: " + name);
        } finally {
            try (LinuxTap again = LinuxTap.open(name)) {
                assertEquals(name, again.name());
                again.setPersist(false);
            }
        }
        assertTrue(!java.nio.file.Files.exists(sysfs), "gone once persist is off and the fd closed: " + name);
    }
}
