package io.jtap.netback;

import io.jtap.tap.SimulatedTap;
import io.jtap.tap.TapDevice;
import io.jtap.xen.linux.Syscalls;
import io.jtap.xen.linux.WakeupFd;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.LongAdder;

/**
 * A guest-to-guest path without the host bridge: an in-process learning switch between the vifs of one daemon. Used
 * as the {@link TapFactory} of a {@link NetbackService}, it gives each vif an in-process TAP ({@link SimulatedTap})
 * and keeps the other end as a switch port; one forwarding thread learns source MACs and sends each frame to the port
 * that owns its destination, or floods it (broadcast, multicast, unknown destination) to every other port. Frames keep
 * their virtio-net header, so checksum offload and GSO travel from guest to guest without being resolved; a GSO frame
 * for a guest that cannot take GSO is dropped (nothing here segments), a partial checksum is completed for a guest
 * without checksum offload (by the TAP's own rule).
 *
 * <p>Threads: {@link #open} from netback's control thread; forwarding on {@code netback-switch}; {@link #close()}
 * stops the thread and closes the ports. A port goes away when netback closes its vif's TAP.
 */
public final class VifSwitch implements TapFactory, AutoCloseable {
    /** Frames each direction of a port holds. */
    static final int PORT_CAPACITY = 1024;
    /** {@code poll} takes at most 64 descriptors here: the wake-up and 63 ports. */
    static final int MAX_PORTS = 63;

    private record Port(String name, SimulatedTap host) {
    }

    private final List<Port> ports = new CopyOnWriteArrayList<>();
    private final Map<Long, Port> macTable = new ConcurrentHashMap<>();
    private final WakeupFd wakeup;
    private final Thread thread;
    private final LongAdder forwarded = new LongAdder();
    private final LongAdder dropped = new LongAdder();
    private volatile boolean running = true;

    private VifSwitch() throws IOException {
        wakeup = new WakeupFd();
        thread = new Thread(this::run, "netback-switch");
        thread.setDaemon(true);
    }

    public static VifSwitch start() throws IOException {
        VifSwitch s = new VifSwitch();
        s.thread.start();
        return s;
    }

    @Override
    public TapDevice open(String name) throws IOException {
        if (ports.size() >= MAX_PORTS) {
            throw new IOException("switch full: ports=" + ports.size() + ", name=" + name);
        }
        SimulatedTap device = SimulatedTap.open(name, PORT_CAPACITY);
        ports.add(new Port(name, device.host()));
        wakeup.signal();
        return device;
    }

    /** Frames delivered to a port. */
    public long forwarded() {
        return forwarded.sum();
    }

    /** Frames that could not be delivered (port full or gone, GSO to a guest without GSO). */
    public long dropped() {
        return dropped.sum();
    }

    public int ports() {
        return ports.size();
    }

    private void run() {
        ByteBuffer frame = ByteBuffer.allocateDirect(12 + TapDevice.MAX_FRAME_BYTES);
        try {
            while (running) {
                List<Port> snapshot = List.copyOf(ports);
                int[] fds = new int[snapshot.size() + 1];
                fds[0] = wakeup.fd();
                for (int i = 0; i < snapshot.size(); i++) {
                    fds[i + 1] = snapshot.get(i).host().fd();
                }
                long ready = Syscalls.pollIn(fds, 50);
                if ((ready & 1) != 0) {
                    wakeup.drain();
                }
                for (int i = 0; i < snapshot.size(); i++) {
                    if ((ready & (1L << (i + 1))) != 0) {
                        drain(snapshot.get(i), frame);
                    }
                }
            }
        } catch (IOException | RuntimeException e) {
            if (running) {
                System.getLogger("io.jtap.netback").log(System.Logger.Level.ERROR, "netback switch stopped: " + e);
            }
        }
    }

    private void drain(Port in, ByteBuffer frame) {
        for (int n = 0; n < 256; n++) {
            frame.clear();
            int length;
            try {
                length = in.host().read(frame);
            } catch (IOException e) {
                remove(in);
                return;
            }
            if (length == 0) {
                return;
            }
            long dst = mac(frame, 12);
            long src = mac(frame, 18);
            if ((src >>> 40 & 1) == 0) {
                macTable.put(src, in);
            }
            Port out = (dst >>> 40 & 1) == 0 ? macTable.get(dst) : null;
            if (out != null) {
                if (out != in) {
                    deliver(out, frame, length);
                }
            } else {
                for (Port p : ports) {
                    if (p != in) {
                        deliver(p, frame, length);
                    }
                }
            }
        }
    }

    private void deliver(Port out, ByteBuffer frame, int length) {
        ByteBuffer b = frame.duplicate();
        b.position(0).limit(length);
        try {
            if (out.host().write(b) != 0) {
                forwarded.increment();
            } else {
                dropped.increment();
            }
        } catch (IllegalArgumentException e) {
            dropped.increment(); // GSO towards a guest that did not ask for it: the simulation does not segment
        } catch (IOException e) {
            dropped.increment();
            remove(out);
        }
    }

    private void remove(Port p) {
        if (ports.remove(p)) {
            macTable.values().removeIf(v -> v == p);
            try {
                p.host().close();
            } catch (IOException e) {
                // closing an in-process queue does not fail in a way worth reporting
            }
        }
    }

    private static long mac(ByteBuffer b, int offset) {
        long m = 0;
        for (int i = 0; i < 6; i++) {
            m = m << 8 | (b.get(offset + i) & 0xff);
        }
        return m;
    }

    /** Stops forwarding and closes every port's switch end (netback closes the vif ends). Idempotent. */
    @Override
    public void close() throws IOException {
        if (!running) {
            return;
        }
        running = false;
        wakeup.signal();
        try {
            thread.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted stopping the switch", e);
        }
        for (Port p : List.copyOf(ports)) {
            remove(p);
        }
        wakeup.close();
    }
}
