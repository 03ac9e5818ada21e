package io.jtap.daemon;

import io.jtap.ring.BackRing;
import io.jtap.ring.FrontRing;
import io.jtap.ring.RingOverflowException;
import io.jtap.ring.blkif.Blkif;
import io.jtap.ring.blkif.BlkifAbi;
import io.jtap.ring.blkif.BlkifRequestDescriptor;
import io.jtap.ring.blkif.BlkifResponseDescriptor;
import io.jtap.xen.EventChannels;
import io.jtap.xen.GrantMapping;
import io.jtap.xen.GrantTable;
import io.jtap.xen.XenPlatform;
import io.jtap.xen.XenStore;
import io.jtap.xen.XenStorePermission;
import io.jtap.xen.XenStorePermission.Access;
import io.jtap.xen.sim.GuestPages;
import io.jtap.xen.sim.SimulatedDomain;
import io.jtap.xen.sim.SimulatedXen;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The main job on the simulated Xen, at the foundation's stage: a simulated guest publishes a blkif ring in xenstore
 * the way blkfront does (granted ring page, unbound event channel, {@code ring-ref} / {@code event-channel}); the
 * backend side finds it through xenstore, maps the ring through the grant table, binds the channel, and answers every
 * request through the shared ring with notification suppression. It reports what it served.
 */
final class Demo {
    private static final long WAIT_NS = TimeUnit.SECONDS.toNanos(10);

    private Demo() {
    }

    static int run(String[] args, PrintStream out, PrintStream err) throws IOException, RingOverflowException {
        int requests = 100_000;
        for (String a : args) {
            if (a.startsWith("--requests=")) {
                requests = parsePositive(a, a.substring("--requests=".length()));
            } else {
                throw new IllegalArgumentException("unknown option: " + a);
            }
        }
        long start = System.nanoTime();
        try (SimulatedXen xen = new SimulatedXen()) {
            SimulatedDomain guest = xen.createDomain("demo-guest");
            XenPlatform backend = xen.platform(SimulatedXen.DOM0);
            XenPlatform frontend = xen.platform(guest.domid());
            out.println("jtap demo: " + backend.describe() + "; guest domid=" + guest.domid());

            GuestPages ringPage = guest.allocatePages(1);
            BlkifAbi abi = BlkifAbi.X86_64;
            FrontRing front = FrontRing.init(ringPage.buffer(), 0, abi.entryLength());
            int ringRef = ringPage.grantAll(SimulatedXen.DOM0, false)[0];
            String frontDir = "/local/domain/" + guest.domid() + "/device/vbd/51712";
            try (XenStore guestStore = frontend.openXenStore();
                 EventChannels guestChannels = frontend.openEventChannels();
                 XenStore store = backend.openXenStore();
                 GrantTable grants = backend.openGrantTable();
                 EventChannels channels = backend.openEventChannels()) {
                // The toolstack's part: the frontend directory, owned by the guest and readable by the backend.
                store.mkdir(frontDir);
                store.setPermissions(frontDir, List.of(XenStorePermission.of(guest.domid(), Access.NONE),
                        XenStorePermission.of(SimulatedXen.DOM0, Access.READ)));
                int guestPort = guestChannels.bindUnboundPort(SimulatedXen.DOM0);
                guestStore.transaction(tx -> {
                    tx.write(frontDir + "/ring-ref", Integer.toString(ringRef));
                    tx.write(frontDir + "/event-channel", Integer.toString(guestPort));
                    tx.write(frontDir + "/protocol", abi.protocol());
                    return null;
                });

                // The backend's side: everything it learns comes from xenstore.
                int ref = Integer.parseInt(store.readString(frontDir + "/ring-ref").orElseThrow());
                int remotePort = Integer.parseInt(store.readString(frontDir + "/event-channel").orElseThrow());
                try (GrantMapping mapping = grants.map(guest.domid(), new int[] {ref}, true)) {
                    int port = channels.bindInterdomain(guest.domid(), remotePort);
                    BackRing back = BackRing.attach(mapping.buffer(), 0, abi.entryLength());
                    Counts counts = exchange(requests, front, back, abi, guestChannels, guestPort, channels, port);
                    channels.unbind(port);
                    long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
                    out.printf("jtap demo: served %d blkif requests (%d reads, %d writes) on a %d-slot ring in %d ms,"
                            + " %d rounds; event-channel kicks: guest->backend %d, backend->guest %d%n",
                            counts.served, counts.reads, counts.writes, back.size(), ms, counts.rounds,
                            counts.guestKicks, counts.backendKicks);
                }
                guestChannels.unbind(guestPort);
            }
            if (!guest.endAccess(ringRef)) {
                throw new IOException("demo: the backend still maps the ring page: ref=" + ringRef);
            }
            xen.assertNoLeaks();
            out.println("jtap demo: no leaked mapping, channel, watch or connection");
        }
        return 0;
    }

    private static final class Counts {
        long served;
        long reads;
        long writes;
        long rounds;
        long guestKicks;
        long backendKicks;
    }

    /**
     * Runs the guest and the backend in one thread, alternating: the guest fills the ring and kicks when the ring
     * macros say so; the backend drains it, answers, and kicks back; each side sleeps on its event channel only after
     * its final check.
     */
    private static Counts exchange(int requests, FrontRing front, BackRing back, BlkifAbi abi,
                                   EventChannels guestChannels, int guestPort, EventChannels channels, int port)
            throws IOException, RingOverflowException {
        Counts counts = new Counts();
        BlkifRequestDescriptor req = abi.request();
        ByteBuffer copy = ByteBuffer.allocateDirect(abi.entryLength());
        int[] pending = new int[8];
        int sent = 0;
        int answered = 0;
        while (answered < requests) {
            // Guest: queue as many requests as fit, then push.
            while (sent < requests && !front.full()) {
                int op = (sent & 1) == 0 ? Blkif.BLKIF_OP_READ : Blkif.BLKIF_OP_WRITE;
                req.put(front.buffer(), front.nextRequestSlot(), op, 0, 0, sent, (long) sent * 8);
                sent++;
            }
            if (front.pushRequestsAndCheckNotify()) {
                guestChannels.notify(guestPort);
                counts.guestKicks++;
            }
            // Backend: wait for a kick only when its final check says there is nothing to do.
            if (!back.finalCheckForRequests()) {
                awaitKick(channels, pending, "backend");
            }
            counts.rounds++;
            int n = back.pollRequests();
            while (n-- > 0) {
                back.copyRequest(copy, 0);
                long id = req.id(copy, 0);
                int op = req.operation(copy, 0);
                if (op == Blkif.BLKIF_OP_READ) {
                    counts.reads++;
                } else {
                    counts.writes++;
                }
                BlkifResponseDescriptor.put(back.buffer(), back.nextResponseSlot(), id, op, Blkif.BLKIF_RSP_OKAY);
                counts.served++;
            }
            if (back.pushResponsesAndCheckNotify()) {
                channels.notify(port);
                counts.backendKicks++;
            }
            // Guest: consume responses, sleeping only after its final check.
            if (!front.finalCheckForResponses()) {
                awaitKick(guestChannels, pending, "guest");
            }
            int r = front.unconsumedResponses();
            while (r-- > 0) {
                int slot = front.nextResponseSlot();
                long id = BlkifResponseDescriptor.id(front.buffer(), slot);
                if (id != answered || BlkifResponseDescriptor.status(front.buffer(), slot) != Blkif.BLKIF_RSP_OKAY) {
                    throw new IOException("demo: unexpected response: id=" + id + ", expected=" + answered);
                }
                answered++;
            }
        }
        return counts;
    }

    private static void awaitKick(EventChannels channels, int[] pending, String who) throws IOException {
        int n = channels.awaitPending(pending, WAIT_NS);
        if (n == 0) {
            throw new IOException("demo: " + who + " waited " + TimeUnit.NANOSECONDS.toSeconds(WAIT_NS)
                    + " s for an event that never came (lost wake-up)");
        }
        for (int i = 0; i < n; i++) {
            channels.unmask(pending[i]);
        }
    }

    private static int parsePositive(String option, String value) {
        try {
            int n = Integer.parseInt(value);
            if (n <= 0) {
                throw new NumberFormatException();
            }
            return n;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("bad value: option=" + option + " (a positive integer)");
        }
    }
}
