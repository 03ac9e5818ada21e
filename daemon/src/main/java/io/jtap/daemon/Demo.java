package io.jtap.daemon;

import io.jtap.blkback.BlkbackDevice;
import io.jtap.formats.BlockStatus;
import io.jtap.formats.CreateOptions;
import io.jtap.formats.Image;
import io.jtap.formats.ImageFormats;
import io.jtap.formats.OpenOptions;
import io.jtap.netback.VifStats;
import io.jtap.netback.VifXenbus;
import io.jtap.ring.blkif.Blkif;
import io.jtap.tap.TapDevice;
import io.jtap.testkit.blkfront.SimulatedBlkfront;
import io.jtap.testkit.blkfront.SimulatedToolstack;
import io.jtap.testkit.netfront.NetfrontOptions;
import io.jtap.testkit.netfront.RxPacket;
import io.jtap.testkit.netfront.SimulatedNetfront;
import io.jtap.testkit.netfront.TxPacket;
import io.jtap.xen.XenStore;
import io.jtap.xen.sim.SimulatedDomain;
import io.jtap.xen.sim.SimulatedXen;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.stream.Stream;

/**
 * {@code jtap demo}: the main job without a hypervisor. jtap's daemon runs on the embedded simulated Xen exactly as
 * {@code jtap serve} runs on a real host (the block and network backends watching dom0's {@code backend/vbd} and
 * {@code backend/vif}); the simulated toolstack gives one guest a qcow2 disk backed by a real image file and a NIC;
 * the guest's blkfront writes, flushes, reads back and discards, and its netfront sends frames to the host side of
 * its TAP and receives frames from it. Every byte is verified, and jtap reports what it served. Exit status 0 only
 * if everything matched and nothing leaked.
 */
final class Demo {
    private static final Duration WAIT = Duration.ofSeconds(30);
    private static final int DEVID_DISK = 51712;
    private static final int DEVID_NIC = 0;
    private static final byte[] GUEST_MAC = {0x00, 0x16, 0x3e, 0x00, 0x00, 0x01};
    private static final byte[] HOST_MAC = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};

    private Demo() {
    }

    static int run(String[] args, PrintStream out, PrintStream err) throws Exception {
        long diskMiB = 64;
        int frames = 2000;
        Path keep = null;
        for (String a : args) {
            if (a.startsWith("--disk-mib=")) {
                diskMiB = positive(a, a.substring("--disk-mib=".length()), 4, 1 << 20);
            } else if (a.startsWith("--frames=")) {
                frames = (int) positive(a, a.substring("--frames=".length()), 1, 10_000_000);
            } else if (a.startsWith("--image=")) {
                keep = Path.of(a.substring("--image=".length()));
            } else {
                throw new UsageException("unknown demo option: " + a + " (options: --disk-mib=N --frames=N"
                        + " --image=PATH)");
            }
        }
        Path dir = Files.createTempDirectory("jtap-demo");
        Path image = keep != null ? keep : dir.resolve("guest.qcow2");
        try {
            return run(out, image, diskMiB << 20, frames);
        } finally {
            try (Stream<Path> files = Files.walk(dir)) {
                for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(p);
                }
            }
        }
    }

    private static int run(PrintStream out, Path image, long diskBytes, int frames) throws Exception {
        ImageFormats.defaults().get("qcow2").create(image, CreateOptions.ofSize(diskBytes));
        ServeOptions options = ServeOptions.parse(List.of("--xen=simulated"));
        boolean ok = true;
        try (SimulatedXen xen = new SimulatedXen()) {
            try (Backends backends = Backends.start(xen.platform(SimulatedXen.DOM0), options, true);
                 XenStore toolstack = xen.platform(SimulatedXen.DOM0).openXenStore()) {
                for (String line : backends.describe(xen.platform(SimulatedXen.DOM0), options)) {
                    out.println("jtap demo: serving " + line);
                }
                SimulatedDomain guest = xen.createDomain("demo-guest");
                out.printf("jtap demo: guest domid=%d gets disk %s (qcow2, %d MiB) and a NIC%n", guest.domid(),
                        image, diskBytes >> 20);
                String vbd = SimulatedToolstack.addVbd(toolstack, guest.domid(), DEVID_DISK, "qcow2:" + image, "w",
                        "disk");
                ok &= disk(xen, guest, backends, out, diskBytes, options.config().ioEngine());
                SimulatedToolstack.removeVbd(toolstack, vbd, guest.domid(), DEVID_DISK);
                ok &= nic(xen, guest, backends, out, frames);
            }
            xen.assertNoLeaks();
            out.println("jtap demo: no leaked grant mapping, event channel, xenstore watch or connection");
        }
        ok &= imageReport(out, image);
        out.println(ok ? "jtap demo: OK" : "jtap demo: FAILED");
        return ok ? 0 : 1;
    }

    /** The guest's disk: random 4 KiB writes, 1 MiB sequential writes, flush, read back, discard, verify. */
    private static boolean disk(SimulatedXen xen, SimulatedDomain guest, Backends backends, PrintStream out,
                                long diskBytes, String engine) throws Exception {
        boolean ok = true;
        try (SimulatedBlkfront f = new SimulatedBlkfront(xen, guest, DEVID_DISK,
                SimulatedBlkfront.Features.defaults().withQueues(2))) {
            f.connect();
            out.printf("jtap demo: blkfront connected: %d sectors, queues=%d, ring-page-order=%d,"
                    + " indirect-segments=%d, persistent-grants=%s%n", f.sectors(), f.queueCount(),
                    f.ringPageOrder(), f.indirectSegments(), f.persistent());
            byte[] model = new byte[(int) Math.min(diskBytes, 1L << 30)];
            Random random = new Random(42);
            long t0 = System.nanoTime();
            // 1 MiB sequential writes over the first half of the disk, in indirect requests.
            List<SimulatedBlkfront.Request> pending = new ArrayList<>();
            int mib = 1 << 20;
            for (int at = 0; at + mib <= model.length / 2; at += mib) {
                byte[] data = pattern(at, mib);
                System.arraycopy(data, 0, model, at, mib);
                pending.add(f.submitWrite((at / mib) % f.queueCount(), Blkif.BLKIF_OP_WRITE, at / 512, data, 0));
            }
            ok &= drain(f, pending);
            // 4 KiB random writes anywhere, up to 32 in flight. Writes in flight together are unordered (blkif
            // promises nothing between them), so a block is written again only after its earlier write completed.
            Set<Integer> inFlight = new HashSet<>();
            for (int i = 0; i < 2048; i++) {
                int at = random.nextInt(model.length / 4096) * 4096;
                if (pending.size() >= 32 || !inFlight.add(at)) {
                    ok &= drain(f, pending);
                    inFlight.clear();
                    inFlight.add(at);
                }
                byte[] data = pattern(((long) i << 32) | at, 4096);
                pending.add(f.submitWrite(i % f.queueCount(), Blkif.BLKIF_OP_WRITE, at / 512, data, 0));
                System.arraycopy(data, 0, model, at, 4096);
            }
            ok &= drain(f, pending);
            ok &= f.await(f.submitFlush(0)) == Blkif.BLKIF_RSP_OKAY;
            long t1 = System.nanoTime();
            // Discard the last quarter: it reads back as zeros from a qcow2 image.
            int quarter = model.length / 4;
            ok &= f.await(f.submitDiscard(0, (model.length - quarter) / 512, quarter / 512, false))
                    == Blkif.BLKIF_RSP_OKAY;
            Arrays.fill(model, model.length - quarter, model.length, (byte) 0);
            // Read everything back in 1 MiB requests and compare with the model.
            long t2 = System.nanoTime();
            List<SimulatedBlkfront.Request> reads = new ArrayList<>();
            for (int at = 0; at < model.length; at += mib) {
                reads.add(f.submitRead((at / mib) % f.queueCount(), at / 512, mib / 512, 0));
            }
            f.awaitAll();
            long t3 = System.nanoTime();
            int mismatches = 0;
            for (int i = 0; i < reads.size(); i++) {
                SimulatedBlkfront.Request r = reads.get(i);
                if (r.status() != Blkif.BLKIF_RSP_OKAY
                        || !Arrays.equals(r.data(), 0, mib, model, i * mib, (i + 1) * mib)) {
                    mismatches++;
                }
            }
            ok &= mismatches == 0;
            BlkbackDevice device = backends.blkback().devices().values().iterator().next();
            out.printf("jtap demo: disk: wrote %d MiB + 2048 random 4 KiB blocks in %d ms, flushed, discarded %d MiB,"
                    + " read %d MiB back in %d ms: %s%n", model.length / 2 / mib, ms(t1 - t0), quarter / mib,
                    model.length / mib, ms(t3 - t2), mismatches == 0 ? "every byte matches" : mismatches
                    + " MiB differ");
            out.printf("jtap demo: blkback served %d requests (%d reads and %d writes through %s), %d grants mapped"
                    + " persistently%n", device.requestsServed(), device.engineReads(), device.engineWrites(),
                    engine, device.persistentGrants());
            f.disconnect();
            ok &= f.grantsStillMapped() == 0;
        }
        return ok;
    }

    private static boolean drain(SimulatedBlkfront f, List<SimulatedBlkfront.Request> pending) throws Exception {
        boolean ok = true;
        for (SimulatedBlkfront.Request r : pending) {
            ok &= f.await(r) == Blkif.BLKIF_RSP_OKAY;
        }
        pending.clear();
        return ok;
    }

    /** The guest's NIC: UDP frames to the host side of its TAP and back, checked byte for byte. */
    private static boolean nic(SimulatedXen xen, SimulatedDomain guest, Backends backends, PrintStream out,
                               int frames) throws Exception {
        boolean ok = true;
        try (SimulatedNetfront f = SimulatedNetfront.create(xen, guest, DEVID_NIC,
                NetfrontOptions.linuxDefaults().withQueues(2))) {
            f.connect(WAIT);
            VifXenbus vif = backends.netback().vif(guest.domid(), DEVID_NIC).orElseThrow();
            String tapName = vif.tapName().orElseThrow();
            TapDevice host = backends.simulatedHost(tapName);
            out.printf("jtap demo: netfront connected: %s, queues=%d, split event channels=%s%n", tapName,
                    f.queueCount(), f.splitChannels());
            long t0 = System.nanoTime();
            ByteBuffer buf = ByteBuffer.allocateDirect(TapDevice.MAX_FRAME_BYTES + 12);
            int txOk = 0;
            int sent = 0;
            while (sent < frames) {
                int batch = Math.min(Math.min(64, f.txFree(0)), frames - sent);
                for (int i = 0; i < batch; i++) {
                    f.send(0, udpFrame(HOST_MAC, GUEST_MAC, sent + i, 1000), TxPacket.plain());
                }
                for (SimulatedNetfront.TxResult r : f.awaitTx(0, batch, WAIT)) {
                    txOk += r.status() == 0 ? 1 : 0;
                }
                sent += batch;
            }
            int txSeen = 0;
            for (int i = 0; i < frames; i++) {
                buf.clear();
                if (!readFrame(host, buf)) {
                    break;
                }
                buf.flip();
                byte[] frame = new byte[buf.remaining() - 12];
                buf.position(12).get(frame);
                txSeen += Arrays.equals(frame, udpFrame(HOST_MAC, GUEST_MAC, i, 1000)) ? 1 : 0;
            }
            long t1 = System.nanoTime();
            int rxSeen = 0;
            int received = 0;
            while (received < frames) {
                int batch = Math.min(128, frames - received);
                for (int i = 0; i < batch; i++) {
                    buf.clear();
                    buf.put(new byte[12]).put(udpFrame(GUEST_MAC, HOST_MAC, received + i, 1000)).flip();
                    host.write(buf);
                }
                List<List<RxPacket>> got = f.awaitRxAnyQueue(batch, WAIT);
                List<RxPacket> all = got.stream().flatMap(List::stream).toList();
                for (RxPacket p : all) {
                    int seq = ByteBuffer.wrap(p.frame()).getInt(42);
                    rxSeen += seq >= received && seq < received + batch
                            && Arrays.equals(p.frame(), udpFrame(GUEST_MAC, HOST_MAC, seq, 1000)) ? 1 : 0;
                }
                received += batch;
            }
            long t2 = System.nanoTime();
            ok &= txOk == frames && txSeen == frames && rxSeen == frames;
            VifStats stats = vif.stats();
            out.printf("jtap demo: NIC: guest->host %d/%d frames intact in %d ms, host->guest %d/%d frames intact"
                    + " in %d ms%n", txSeen, frames, ms(t1 - t0), rxSeen, frames, ms(t2 - t1));
            out.printf("jtap demo: netback served tx %d packets / %d bytes, rx %d packets / %d bytes, %d errors,"
                    + " %d dropped%n", stats.txPackets.sum(), stats.txBytes.sum(), stats.rxPackets.sum(),
                    stats.rxBytes.sum(), stats.txErrors.sum(), stats.txDropped.sum() + stats.rxDropped.sum());
            f.disconnect(WAIT);
            f.assertNoViolations();
        }
        return ok;
    }

    private static boolean readFrame(TapDevice host, ByteBuffer buf) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (host.read(buf) == 0) {
            if (System.nanoTime() > deadline) {
                return false;
            }
            Thread.sleep(1);
        }
        return true;
    }

    /** What the image file holds now, as the format sees it after the backend closed it. */
    private static boolean imageReport(PrintStream out, Path path) throws IOException {
        try (Image image = ImageFormats.defaults().get("qcow2").open(path, OpenOptions.defaults().withReadOnly(true))) {
            long data = 0;
            for (long at = 0; at < image.size(); ) {
                BlockStatus s = image.blockStatus(at, image.size() - at);
                if (s.kind() == BlockStatus.Kind.DATA) {
                    data += s.length();
                }
                at += s.length();
            }
            out.printf("jtap demo: image %s: %d MiB virtual, %d MiB allocated, file size %d MiB%n", path,
                    image.size() >> 20, data >> 20, Files.size(path) >> 20);
            return data > 0;
        }
    }

    /** An Ethernet/IPv4/UDP frame whose payload starts with {@code seq} and encodes it throughout. */
    static byte[] udpFrame(byte[] dst, byte[] src, int seq, int payloadBytes) {
        ByteBuffer b = ByteBuffer.allocate(14 + 20 + 8 + payloadBytes).order(ByteOrder.BIG_ENDIAN);
        b.put(dst).put(src).putShort((short) 0x0800);
        b.put((byte) 0x45).put((byte) 0).putShort((short) (20 + 8 + payloadBytes)).putShort((short) seq)
                .putShort((short) 0x4000).put((byte) 64).put((byte) 17).putShort((short) 0)
                .put(new byte[] {10, (byte) 213, 0, 2}).put(new byte[] {10, (byte) 213, 0, 1});
        int sum = 0;
        for (int i = 14; i < 34; i += 2) {
            sum += b.getShort(i) & 0xffff;
        }
        sum = (sum & 0xffff) + (sum >>> 16);
        sum = (sum & 0xffff) + (sum >>> 16);
        b.putShort(24, (short) ~sum);
        // UDP checksum 0: "not computed", valid for IPv4.
        b.putShort((short) 40000).putShort((short) 40001).putShort((short) (8 + payloadBytes)).putShort((short) 0);
        for (int i = 0; i < payloadBytes; i += 4) {
            b.putInt(seq + i);
        }
        return b.array();
    }

    private static byte[] pattern(long tag, int length) {
        ByteBuffer b = ByteBuffer.allocate(length).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < length; i += 8) {
            b.putLong(i, tag + i);
        }
        return b.array();
    }

    private static long ms(long ns) {
        return ns / 1_000_000;
    }

    private static long positive(String option, String value, long min, long max) throws UsageException {
        try {
            long n = Long.parseLong(value);
            if (n >= min && n <= max) {
                return n;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new UsageException("bad value: option=" + option + ", expected " + min + ".." + max);
    }
}
