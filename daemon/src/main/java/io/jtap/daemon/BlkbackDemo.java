package io.jtap.daemon;

import io.jtap.blkback.BlkbackConfig;
import io.jtap.blkback.BlkbackService;
import io.jtap.formats.CreateOptions;
import io.jtap.formats.ImageFormats;
import io.jtap.testkit.blkfront.SimulatedBlkfront;
import io.jtap.testkit.blkfront.SimulatedToolstack;
import io.jtap.xen.XenStore;
import io.jtap.xen.sim.SimulatedDomain;
import io.jtap.xen.sim.SimulatedXen;

import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/**
 * {@code jtap demo-blkback}: the block backend end to end on the simulated Xen. The service watches dom0's
 * {@code backend/vbd}; the toolstack adds a raw and a qcow2 disk for two guests; each guest's blkfront negotiates,
 * writes 16 MiB of self-describing data in 1 MiB indirect requests over several queues, flushes, reads it back and
 * verifies it, then detaches. Prints what was negotiated and the throughput; exits 1 if anything did not match.
 */
final class BlkbackDemo {
    private static final int DISK = 32 << 20;
    private static final int DATA = 16 << 20;
    private static final int IO = 1 << 20;

    private BlkbackDemo() {
    }

    static int run(String[] args, PrintStream out) throws Exception {
        if (args.length != 0) {
            throw new UsageException("demo-blkback takes no options: option=" + args[0]);
        }
        Path dir = Files.createTempDirectory("jtap-demo");
        try (SimulatedXen xen = new SimulatedXen()) {
            Path raw = dir.resolve("guest1.raw");
            Path qcow2 = dir.resolve("guest2.qcow2");
            ImageFormats.defaults().get("raw").create(raw, CreateOptions.ofSize(DISK));
            ImageFormats.defaults().get("qcow2").create(qcow2, CreateOptions.ofSize(DISK));
            boolean ok;
            try (BlkbackService service = new BlkbackService(xen.platform(SimulatedXen.DOM0), "vbd",
                    BlkbackConfig.defaults(), ImageFormats.defaults(), 2);
                 XenStore xs = xen.platform(SimulatedXen.DOM0).openXenStore()) {
                service.start();
                out.println("jtap demo-blkback: serving " + service.root() + " on simulated Xen");
                ok = guest(xen, xs, out, "raw", raw.toString(),
                        SimulatedBlkfront.Features.defaults().withQueues(2).withRingPageOrder(2));
                ok &= guest(xen, xs, out, "qcow2", "qcow2:" + qcow2,
                        SimulatedBlkfront.Features.defaults().withPersistent(false).withQueues(4));
            }
            xen.assertNoLeaks();
            out.println(ok ? "jtap demo-blkback: OK" : "jtap demo-blkback: FAILED");
            return ok ? 0 : 1;
        } finally {
            try (Stream<Path> files = Files.walk(dir)) {
                for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(p);
                }
            }
        }
    }

    private static boolean guest(SimulatedXen xen, XenStore xs, PrintStream out, String name, String params,
                                 SimulatedBlkfront.Features features) throws Exception {
        SimulatedDomain guest = xen.createDomain(name + "-guest");
        int devid = 51712;
        String be = SimulatedToolstack.addVbd(xs, guest.domid(), devid, params, "w", "disk");
        boolean ok = true;
        try (SimulatedBlkfront f = new SimulatedBlkfront(xen, guest, devid, features)) {
            f.connect();
            out.printf("  %s: domid=%d connected: queues=%d, ring-page-order=%d, indirect=%d, persistent=%s%n",
                    name, guest.domid(), f.queueCount(), f.ringPageOrder(), f.indirectSegments(), f.persistent());
            long t0 = System.nanoTime();
            List<SimulatedBlkfront.Request> writes = new ArrayList<>();
            for (int at = 0; at < DATA; at += IO) {
                writes.add(f.submitWrite((at / IO) % f.queueCount(), 1, at / 512, pattern(at, IO), 0));
            }
            f.awaitAll();
            for (SimulatedBlkfront.Request r : writes) {
                ok &= r.status() == 0;
            }
            ok &= f.await(f.submitFlush(0)) == 0;
            long t1 = System.nanoTime();
            List<SimulatedBlkfront.Request> reads = new ArrayList<>();
            for (int at = 0; at < DATA; at += IO) {
                reads.add(f.submitRead((at / IO) % f.queueCount(), at / 512, IO / 512, 0));
            }
            f.awaitAll();
            long t2 = System.nanoTime();
            for (int i = 0; i < reads.size(); i++) {
                ok &= reads.get(i).status() == 0 && Arrays.equals(reads.get(i).data(), pattern((long) i * IO, IO));
            }
            out.printf("  %s: wrote %d MiB at %.0f MiB/s, read back at %.0f MiB/s, verified: %s%n", name, DATA >> 20,
                    mibPerS(t1 - t0), mibPerS(t2 - t1), ok ? "yes" : "NO");
            f.disconnect();
        }
        SimulatedToolstack.removeVbd(xs, be, guest.domid(), devid);
        return ok;
    }

    private static double mibPerS(long ns) {
        return (DATA / (double) (1 << 20)) / (ns / 1e9);
    }

    private static byte[] pattern(long offset, int length) {
        ByteBuffer b = ByteBuffer.allocate(length).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < length; i += 8) {
            b.putLong(i, offset + i);
        }
        return b.array();
    }

}
