package io.jtap.bench.net;

import io.jtap.netback.NetbackOptions;
import io.jtap.netback.NetbackService;
import io.jtap.ring.netif.Netif;
import io.jtap.tap.LinuxTap;
import io.jtap.tap.SimulatedTap;
import io.jtap.tap.TapDevice;
import io.jtap.tap.VirtioNetHeaderDescriptor;
import io.jtap.testkit.netfront.NetfrontOptions;
import io.jtap.testkit.netfront.SimulatedNetfront;
import io.jtap.testkit.netfront.TxPacket;
import io.jtap.xen.linux.Syscalls;
import io.jtap.xen.sim.SimulatedXen;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Locale;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * End-to-end netback throughput through the simulated Xen, against the same frames written to and read from a TAP
 * directly in the same process. One run measures, for 64-byte frames, 1514-byte frames and 64 KiB TCP GSO frames:
 * guest → TAP (a {@link SimulatedNetfront} sends on its tx ring, netback copies with grant copy and writes the TAP,
 * a host thread reads the TAP) against a thread writing the frames straight into the TAP; and TAP → guest (a host
 * thread writes the TAP, netback places the frames into posted rx buffers, the guest consumes the responses and
 * reposts) against a thread reading the frames straight from the TAP. Both sides use {@link SimulatedTap}, so the ratio
 * is netback's cost (rings, grant copy, events, headers) over the TAP queue's own cost. Where a Linux TAP can be made
 * (root), guest → TAP is measured once more into a real TAP (up, in a namespace of its own; the frames are addressed
 * to a MAC nobody has, so the kernel takes them in and drops them) against writing the same frames into a real TAP
 * directly. (TAP → guest with a real TAP would need a kernel-side source as fast as the path under test; the
 * simulated rows stand for it.)
 *
 * <p>Each case runs {@code reps} times, alternating with its baseline; the table shows medians and the ratio's range
 * (worst netback run over best baseline run, best over worst).
 *
 * <p>Run: {@code java -cp <bench classpath> io.jtap.bench.net.NetbackThroughputDriver [seconds-per-case] [reps]
 * [SMALL|MTU|GSO|""] [linux]}: the third argument picks one frame size, the fourth skips the simulated rows.
 */
public final class NetbackThroughputDriver {
    private static final Duration WAIT = Duration.ofSeconds(20);
    private static final byte[] GUEST_MAC = {0x00, 0x16, 0x3e, 0x00, 0x00, 0x01};
    private static final byte[] HOST_MAC = {0x02, (byte) 0xaa, (byte) 0xbb, (byte) 0xcc, (byte) 0xdd, 0x01};

    private NetbackThroughputDriver() {
    }

    /** One measured figure. */
    record Rate(long frames, long bytes, long nanos) {
        double pps() {
            return frames * 1e9 / nanos;
        }

        double gbitps() {
            return bytes * 8.0 / nanos;
        }
    }

    enum Size {
        SMALL("64-byte frames", 64, false), MTU("1514-byte frames", 1514, false),
        GSO("64 KiB TCP GSO frames", 65535, true);

        final String label;
        final int length;
        final boolean gso;

        Size(String label, int length, boolean gso) {
            this.label = label;
            this.length = length;
            this.gso = gso;
        }
    }

    public static void main(String[] args) throws Exception {
        double seconds = args.length > 0 ? Double.parseDouble(args[0]) : 2.0;
        long measureNs = (long) (seconds * 1e9);
        System.out.printf(Locale.ROOT, "netback throughput, %.1f s per case, %d cores%n", seconds,
                Runtime.getRuntime().availableProcessors());
        System.out.println("| direction | frames | netback (median) | TAP directly (median) | ratio (range) |");
        System.out.println("|---|---|---|---|---|");
        int reps = args.length > 1 ? Integer.parseInt(args[1]) : 3;
        String only = args.length > 2 ? args[2] : "";
        boolean linuxOnly = args.length > 3 && args[3].equals("linux");
        for (Size size : Size.values()) {
            if (linuxOnly || !only.isEmpty() && !size.name().equals(only)) {
                continue;
            }
            byte[] frame = frame(size);
            Rate[] direct = new Rate[reps];
            Rate[] viaNetback = new Rate[reps];
            Rate[] directRead = new Rate[reps];
            Rate[] rx = new Rate[reps];
            for (int i = 0; i < reps; i++) { // alternate, so that a noisy neighbour hits both sides alike
                direct[i] = directWrite(frame, size, measureNs);
                viaNetback[i] = guestToTap(frame, size, measureNs);
                directRead[i] = directRead(frame, size, measureNs);
                rx[i] = tapToGuest(frame, size, measureNs);
            }
            print("guest → TAP", size, viaNetback, direct);
            print("TAP → guest", size, rx, directRead);
        }
        if (!LinuxTap.availability().isAvailable()) {
            System.out.println("Linux TAP rows skipped: " + LinuxTap.availability().unavailabilityCause());
            return;
        }
        String ns = "jtap-bench-" + Long.toHexString(System.nanoTime() & 0xffffff);
        run("ip", "netns", "add", ns);
        try {
            for (Size size : Size.values()) {
                if (!only.isEmpty() && !size.name().equals(only)) {
                    continue;
                }
                byte[] frame = frame(size);
                Rate[] direct = new Rate[reps];
                Rate[] viaNetback = new Rate[reps];
                for (int i = 0; i < reps; i++) {
                    direct[i] = linuxDirectWrite(ns, frame, size, measureNs);
                    viaNetback[i] = linuxGuestToTap(ns, frame, size, measureNs);
                }
                print("guest → Linux TAP", size, viaNetback, direct);
            }
        } finally {
            run("ip", "netns", "del", ns);
        }
    }

    /** A Linux TAP moved into namespace {@code ns} and up: what a hotplug script leaves for the host stack. */
    private static LinuxTap linuxTap(String ns, String name) throws IOException {
        LinuxTap tap = LinuxTap.open(name);
        try {
            run("ip", "link", "set", "dev", tap.name(), "netns", ns);
            run("ip", "netns", "exec", ns, "ip", "link", "set", "dev", tap.name(), "up");
        } catch (IOException e) {
            tap.close();
            throw e;
        }
        return tap;
    }

    private static void run(String... command) throws IOException {
        try {
            Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
            if (p.waitFor() != 0) {
                throw new IOException("command failed: " + String.join(" ", command) + ": " + out);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException(e);
        }
    }

    /** Frames (to a MAC nobody has: the kernel drops them after taking them in) written straight into a Linux TAP. */
    static Rate linuxDirectWrite(String ns, byte[] frame, Size size, long measureNs) throws Exception {
        try (LinuxTap tap = linuxTap(ns, "jtbd%d")) {
            ByteBuffer b = withHeader(frame, size);
            Rate r = null;
            long end = System.nanoTime() + measureNs / 4;
            for (int phase = 0; phase < 2; phase++) {
                long frames = 0;
                long t0 = System.nanoTime();
                while (System.nanoTime() < end) {
                    for (int i = 0; i < 64; i++) {
                        b.rewind();
                        if (tap.write(b) != 0) {
                            frames++;
                        }
                    }
                }
                r = new Rate(frames, frames * frame.length, System.nanoTime() - t0);
                end = System.nanoTime() + measureNs;
            }
            return r;
        }
    }

    /** The guest's frames through netback into a Linux TAP; counted as netback writes them (VifStats). */
    static Rate linuxGuestToTap(String ns, byte[] frame, Size size, long measureNs) throws Exception {
        try (SimulatedXen xen = new SimulatedXen()) {
            try (NetbackService service = NetbackService.start(xen.platform(SimulatedXen.DOM0),
                    name -> linuxTap(ns, "jtbn%d"), NetbackOptions.defaults().withMaxQueues(1));
                 SimulatedNetfront guest = SimulatedNetfront.create(xen, xen.createDomain("bench"), 0,
                         NetfrontOptions.linuxDefaults())) {
                guest.connect(WAIT);
                var stats = service.vifs().get(0).stats();
                TxPacket how = size.gso ? TxPacket.gso(Netif.XEN_NETIF_GSO_TYPE_TCPV4, 1448) : TxPacket.plain();
                int slots = (frame.length + 4095) / 4096 + (size.gso ? 1 : 0);
                long[] rxCounts = new long[2];
                Rate r = null;
                long end = System.nanoTime() + measureNs / 4;
                for (int phase = 0; phase < 2; phase++) {
                    long f0 = stats.txPackets.sum();
                    long b0 = stats.txBytes.sum();
                    long t0 = System.nanoTime();
                    while (System.nanoTime() < end) {
                        guest.pollTx(0);
                        // The kernel sends a few frames of its own out of an interface that comes up (IPv6 router
                        // solicitation, MLD reports); a netfront consumes them. Left on the rx ring, they would keep
                        // awaitEvent from ever sleeping and the guest would spin against netback for the CPU.
                        guest.drainRx(0, rxCounts);
                        // Refill in batches of half a ring, as a netfront under load does (one kick per batch).
                        if (guest.txFree(0) < Math.max(slots, Netif.NET_TX_RING_SIZE / 2)) {
                            guest.awaitEvent(1_000_000);
                            continue;
                        }
                        while (guest.txFree(0) >= slots) {
                            guest.send(0, frame, how);
                        }
                    }
                    r = new Rate(stats.txPackets.sum() - f0, stats.txBytes.sum() - b0, System.nanoTime() - t0);
                    end = System.nanoTime() + measureNs;
                }
                service.close();
                guest.assertNoViolations();
                return r;
            }
        }
    }

    private static void print(String direction, Size size, Rate[] netback, Rate[] direct) {
        Rate n = median(netback);
        Rate d = median(direct);
        System.out.printf(Locale.ROOT, "| %s | %s | %s | %s | %.2f (%.2f–%.2f) |%n", direction, size.label,
                format(n), format(d), n.pps() / d.pps(), min(netback) / max(direct), max(netback) / min(direct));
    }

    private static Rate median(Rate[] rates) {
        Rate[] sorted = rates.clone();
        java.util.Arrays.sort(sorted, java.util.Comparator.comparingDouble(Rate::pps));
        return sorted[sorted.length / 2];
    }

    private static double min(Rate[] rates) {
        return java.util.Arrays.stream(rates).mapToDouble(Rate::pps).min().orElse(0);
    }

    private static double max(Rate[] rates) {
        return java.util.Arrays.stream(rates).mapToDouble(Rate::pps).max().orElse(0);
    }

    private static String format(Rate r) {
        return String.format(Locale.ROOT, "%.0f kpps, %.2f Gbit/s", r.pps() / 1e3, r.gbitps());
    }

    /** An IPv4 TCP frame (checksum left partial) of exactly {@code size.length} bytes. */
    static byte[] frame(Size size) {
        byte[] f = new byte[size.length];
        ByteBuffer b = ByteBuffer.wrap(f);
        b.put(HOST_MAC).put(GUEST_MAC).putShort((short) 0x0800);
        b.put((byte) 0x45).put((byte) 0).putShort((short) (size.length - 14)).putShort((short) 1)
                .putShort((short) 0x4000).put((byte) 64).put((byte) 6).putShort((short) 0)
                .put(new byte[] {10, 0, 0, 2}).put(new byte[] {10, 0, 0, 1});
        b.putShort((short) 40000).putShort((short) 80).putInt(1).putInt(1).put((byte) 0x50).put((byte) 0x18)
                .putShort((short) 65535).putShort((short) 0).putShort((short) 0);
        for (int i = b.position(); i < f.length; i++) {
            f[i] = (byte) i;
        }
        return f;
    }

    private static ByteBuffer withHeader(byte[] frame, Size size) {
        ByteBuffer b = ByteBuffer.allocateDirect(12 + frame.length);
        if (size.gso) {
            VirtioNetHeaderDescriptor.put(b, 0, VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_F_NEEDS_CSUM,
                    VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_GSO_TCPV4, 54, 1448, 34, 16);
        } else {
            VirtioNetHeaderDescriptor.putNone(b, 0);
        }
        b.position(12);
        b.put(frame);
        b.flip();
        return b;
    }

    /** A thread that reads the host end until stopped, counting frames and bytes. */
    private static Thread hostReader(TapDevice host, AtomicLong frames, AtomicLong bytes, AtomicBoolean stop) {
        Thread t = new Thread(() -> {
            ByteBuffer buf = ByteBuffer.allocateDirect(12 + TapDevice.MAX_FRAME_BYTES);
            try {
                while (!stop.get()) {
                    buf.clear();
                    int n = host.read(buf);
                    if (n == 0) {
                        Syscalls.pollIn(new int[] {host.fd()}, 10); // sleep, as a host stack would, until a frame
                        continue;
                    }
                    frames.incrementAndGet();
                    bytes.addAndGet(n - 12);
                }
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        }, "bench-host-reader");
        t.setDaemon(true);
        t.start();
        return t;
    }

    static Rate directWrite(byte[] frame, Size size, long measureNs) throws Exception {
        try (SimulatedTap tap = SimulatedTap.open("benchtx0", 1024); SimulatedTap host = tap.host()) {
            AtomicLong frames = new AtomicLong();
            AtomicLong bytes = new AtomicLong();
            AtomicBoolean stop = new AtomicBoolean();
            Thread reader = hostReader(host, frames, bytes, stop);
            ByteBuffer b = withHeader(frame, size);
            long end = System.nanoTime() + measureNs / 4;
            Rate r = null;
            for (int phase = 0; phase < 2; phase++) { // warm-up, then measure
                long f0 = frames.get();
                long b0 = bytes.get();
                long t0 = System.nanoTime();
                while (System.nanoTime() < end) {
                    for (int i = 0; i < 64; i++) {
                        b.rewind();
                        while (tap.write(b) == 0) {
                            Thread.yield();
                        }
                    }
                }
                r = new Rate(frames.get() - f0, bytes.get() - b0, System.nanoTime() - t0);
                end = System.nanoTime() + measureNs;
            }
            stop.set(true);
            reader.join();
            return r;
        }
    }

    static Rate directRead(byte[] frame, Size size, long measureNs) throws Exception {
        try (SimulatedTap tap = SimulatedTap.open("benchrx0", 1024); SimulatedTap host = tap.host()) {
            tap.setOffload(TapDevice.TUN_F_CSUM | TapDevice.TUN_F_TSO4 | TapDevice.TUN_F_TSO6);
            AtomicBoolean stop = new AtomicBoolean();
            Thread writer = hostWriter(host, frame, size, stop);
            ByteBuffer buf = ByteBuffer.allocateDirect(12 + TapDevice.MAX_FRAME_BYTES);
            Rate r = null;
            long end = System.nanoTime() + measureNs / 4;
            for (int phase = 0; phase < 2; phase++) {
                long frames = 0;
                long bytes = 0;
                long t0 = System.nanoTime();
                while (System.nanoTime() < end) {
                    buf.clear();
                    int n = tap.read(buf);
                    if (n == 0) {
                        Syscalls.pollIn(new int[] {tap.fd()}, 10);
                        continue;
                    }
                    frames++;
                    bytes += n - 12;
                }
                r = new Rate(frames, bytes, System.nanoTime() - t0);
                end = System.nanoTime() + measureNs;
            }
            stop.set(true);
            writer.join();
            return r;
        }
    }

    /** A thread that writes the frame into the host end as fast as the TAP takes it. */
    private static Thread hostWriter(TapDevice host, byte[] frame, Size size, AtomicBoolean stop) {
        Thread t = new Thread(() -> {
            ByteBuffer b = withHeader(frame, size);
            try {
                while (!stop.get()) {
                    b.rewind();
                    if (host.write(b) == 0) {
                        Thread.yield(); // the TAP's queue is full: let its reader run
                    }
                }
            } catch (IOException e) {
                if (!stop.get()) {
                    throw new IllegalStateException(e);
                }
            }
        }, "bench-host-writer");
        t.setDaemon(true);
        t.start();
        return t;
    }

    static Rate guestToTap(byte[] frame, Size size, long measureNs) throws Exception {
        try (SimulatedXen xen = new SimulatedXen()) {
            SimulatedTap[] tap = new SimulatedTap[1];
            try (NetbackService service = NetbackService.start(xen.platform(SimulatedXen.DOM0), name -> {
                tap[0] = SimulatedTap.open(name, 1024);
                return tap[0];
            }, NetbackOptions.defaults().withMaxQueues(1));
                 SimulatedNetfront guest = SimulatedNetfront.create(xen, xen.createDomain("bench"), 0,
                         NetfrontOptions.linuxDefaults())) {
                guest.connect(WAIT);
                AtomicLong frames = new AtomicLong();
                AtomicLong bytes = new AtomicLong();
                AtomicBoolean stop = new AtomicBoolean();
                Thread reader = hostReader(tap[0].host(), frames, bytes, stop);
                TxPacket how = size.gso ? TxPacket.gso(Netif.XEN_NETIF_GSO_TYPE_TCPV4, 1448) : TxPacket.plain();
                int slots = (frame.length + 4095) / 4096 + (size.gso ? 1 : 0);
                Rate r = null;
                long end = System.nanoTime() + measureNs / 4;
                for (int phase = 0; phase < 2; phase++) {
                    long f0 = frames.get();
                    long b0 = bytes.get();
                    long t0 = System.nanoTime();
                    while (System.nanoTime() < end) {
                        guest.pollTx(0);
                        // Refill in batches of half a ring, as a netfront under load does (one kick per batch).
                        if (guest.txFree(0) < Math.max(slots, Netif.NET_TX_RING_SIZE / 2)) {
                            guest.awaitEvent(1_000_000);
                            continue;
                        }
                        while (guest.txFree(0) >= slots) {
                            guest.send(0, frame, how);
                        }
                    }
                    r = new Rate(frames.get() - f0, bytes.get() - b0, System.nanoTime() - t0);
                    end = System.nanoTime() + measureNs;
                }
                stop.set(true);
                reader.join();
                service.close();
                tap[0].host().close();
                guest.assertNoViolations();
                return r;
            }
        }
    }

    static Rate tapToGuest(byte[] frame, Size size, long measureNs) throws Exception {
        try (SimulatedXen xen = new SimulatedXen()) {
            SimulatedTap[] tap = new SimulatedTap[1];
            try (NetbackService service = NetbackService.start(xen.platform(SimulatedXen.DOM0), name -> {
                tap[0] = SimulatedTap.open(name, 1024);
                return tap[0];
            }, NetbackOptions.defaults().withMaxQueues(1));
                 SimulatedNetfront guest = SimulatedNetfront.create(xen, xen.createDomain("bench"), 0,
                         NetfrontOptions.linuxDefaults())) {
                guest.connect(WAIT);
                AtomicBoolean stop = new AtomicBoolean();
                Thread writer = hostWriter(tap[0].host(), frame, size, stop);
                long[] counts = new long[2];
                Rate r = null;
                long end = System.nanoTime() + measureNs / 4;
                for (int phase = 0; phase < 2; phase++) {
                    long f0 = counts[0];
                    long b0 = counts[1];
                    long t0 = System.nanoTime();
                    while (System.nanoTime() < end) {
                        guest.drainRx(0, counts);
                        guest.awaitEvent(1_000_000);
                    }
                    r = new Rate(counts[0] - f0, counts[1] - b0, System.nanoTime() - t0);
                    end = System.nanoTime() + measureNs;
                }
                stop.set(true);
                writer.join();
                service.close();
                tap[0].host().close();
                guest.assertNoViolations();
                return r;
            }
        }
    }
}
