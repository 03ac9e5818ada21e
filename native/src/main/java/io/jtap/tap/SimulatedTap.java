package io.jtap.tap;

import com.sun.jna.Memory;
import io.jtap.xen.linux.LibC;
import io.jtap.xen.linux.Syscalls;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ReadOnlyBufferException;
import java.nio.channels.ClosedChannelException;
import java.util.ArrayDeque;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * An in-process TAP device: two bounded frame queues between a device end (what netback holds) and a {@link #host()}
 * end (what a test or the simulated network holds). Both ends are {@link TapDevice}s: what one writes, the other
 * reads, virtio-net header included. Each end's {@link #fd()} is an eventfd that polls readable exactly while that
 * end has a frame waiting, so the same event loop drives this and a {@link LinuxTap}.
 *
 * <p>Offloads follow the tun driver's rules from the device end's point of view: {@link #setOffload} on the device end
 * says what the device end can read. A frame the host end writes with {@code NEEDS_CSUM} towards a device end without
 * {@link #TUN_F_CSUM} has its checksum completed on the way (as Linux's {@code skb_checksum_help()} would); a GSO frame
 * towards a device end without the matching TSO flag is refused with {@link IllegalArgumentException}, because the
 * simulation does not segment. Frames the device end writes are passed on as they are.
 *
 * <p>Ownership: the device end and the host end are closed separately by their owners; each close releases that end's
 * eventfd. {@link #openEnds()} counts ends not yet closed, for leak checks. Writing towards a closed end throws
 * {@code EIO}-like {@link IOException}, as writing to a Linux TAP whose interface is down does.
 */
public final class SimulatedTap implements TapDevice {
    private static final AtomicInteger OPEN_ENDS = new AtomicInteger();

    private final String name;
    private final boolean deviceEnd;
    private final Queue inbound;
    private final int capacityFrames;
    private SimulatedTap peer;
    private volatile int offload;
    private volatile boolean closed;
    private volatile int mtu = 1500;
    // Multi-queue, device end only: queues[0] is this end; a queue end (owned) has queues == null.
    private final int maxQueues;
    private final SimulatedTap[] queues;
    private final boolean ownedQueue;
    private volatile int queueCount = 1;

    private SimulatedTap(String name, boolean deviceEnd, int capacityFrames, int maxQueues, boolean ownedQueue)
            throws IOException {
        this.name = name;
        this.deviceEnd = deviceEnd;
        this.capacityFrames = capacityFrames;
        this.maxQueues = maxQueues;
        this.ownedQueue = ownedQueue;
        this.queues = deviceEnd && !ownedQueue ? new SimulatedTap[maxQueues] : null;
        if (queues != null) {
            queues[0] = this;
        }
        this.inbound = new Queue(capacityFrames);
    }

    /**
     * Opens a simulated TAP device; its {@link #host()} end is open too and must be closed as well.
     *
     * @param name           validated like a Linux interface name
     * @param capacityFrames how many frames each direction holds before {@link #write} returns 0
     */
    public static SimulatedTap open(String name, int capacityFrames) throws IOException {
        return open(name, capacityFrames, 1);
    }

    /**
     * Opens a simulated TAP device whose device end can have up to {@code maxQueues} queues (as Linux's
     * {@code IFF_MULTI_QUEUE}): each attached queue is an end of its own with its own queue and eventfd; frames the
     * host end writes are spread over the attached queues by a flow hash (IPv4/IPv6 addresses and TCP/UDP ports, as
     * the kernel's), so the frames of one flow stay in order on one queue.
     */
    public static SimulatedTap open(String name, int capacityFrames, int maxQueues) throws IOException {
        IfReqDescriptor.validateName(name);
        if (capacityFrames < 1) {
            throw new IllegalArgumentException("capacity must be positive: capacityFrames=" + capacityFrames);
        }
        if (maxQueues < 1 || maxQueues > 256) {
            throw new IllegalArgumentException("maxQueues out of range: maxQueues=" + maxQueues + ", range=1..256");
        }
        SimulatedTap device = new SimulatedTap(name, true, capacityFrames, maxQueues, false);
        SimulatedTap host;
        try {
            host = new SimulatedTap(name, false, capacityFrames, 1, false);
        } catch (IOException | RuntimeException e) {
            device.close();
            throw e;
        }
        device.peer = host;
        host.peer = device;
        return device;
    }

    /** The other end: the host end for a device end, and the device end for the host end. */
    public SimulatedTap host() {
        return peer;
    }

    /** Whether this is the device end (the one {@link #open} returned). */
    public boolean isDeviceEnd() {
        return deviceEnd;
    }

    /** Ends opened and not yet closed, across all simulated TAPs of this JVM. */
    public static int openEnds() {
        return OPEN_ENDS.get();
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public int vnetHeaderBytes() {
        return VirtioNetHeaderDescriptor.LENGTH;
    }

    @Override
    public void setOffload(int flags) throws IOException {
        TapDevice.checkOffload(flags);
        ensureOpen();
        offload = flags;
        if (queues != null) {
            for (int q = 1; q < queueCount; q++) {
                SimulatedTap queue = queues[q];
                if (queue != null) {
                    queue.offload = flags;
                }
            }
        }
    }

    @Override
    public int offload() {
        return offload;
    }

    @Override
    public int read(ByteBuffer frame) throws IOException {
        ensureOpen();
        if (frame.isReadOnly()) {
            throw new ReadOnlyBufferException();
        }
        TapDevice.checkReadRoom(this, frame.remaining());
        byte[] next = inbound.poll();
        if (next == null) {
            return 0;
        }
        frame.put(next);
        return next.length;
    }

    @Override
    public int write(ByteBuffer frame) throws IOException {
        ensureOpen();
        int length = frame.remaining();
        TapDevice.checkWriteLength(this, length);
        byte[] copy = new byte[length];
        frame.duplicate().get(copy);
        if (!deviceEnd) {
            adaptToDeviceOffload(copy, peer.offload);
        }
        SimulatedTap target = deviceEnd ? peer : peer.steer(copy);
        if (!target.inbound.offer(copy)) {
            return 0;
        }
        frame.position(frame.limit());
        return length;
    }

    @Override
    public int fd() {
        return inbound.eventFd;
    }

    @Override
    public int maxQueues() {
        return queues == null ? 1 : maxQueues;
    }

    @Override
    public int queueCount() {
        return queueCount;
    }

    /** Device end only: adds or removes queue ends; frames waiting in a removed queue are dropped. */
    @Override
    public synchronized void setQueueCount(int count) throws IOException {
        ensureOpen();
        if (queues == null || count < 1 || count > maxQueues) {
            throw new IllegalArgumentException("queue count out of range: device=" + name + ", count=" + count
                    + ", maxQueues=" + maxQueues());
        }
        for (int q = queueCount; q < count; q++) {
            SimulatedTap queue = new SimulatedTap(name, true, capacityFrames, 1, true);
            queue.peer = peer;
            queue.offload = offload;
            queues[q] = queue;
            queueCount = q + 1;
        }
        for (int q = queueCount - 1; q >= count; q--) {
            SimulatedTap queue = queues[q];
            queueCount = q;
            queues[q] = null;
            queue.closeEnd();
        }
    }

    @Override
    public TapDevice queue(int index) {
        int count = queueCount;
        if (index < 0 || index >= count) {
            throw new IndexOutOfBoundsException("no such queue: device=" + name + ", index=" + index + ", queues="
                    + count);
        }
        return queues == null ? this : queues[index];
    }

    @Override
    public int mtu() throws IOException {
        ensureOpen();
        return mtu;
    }

    @Override
    public void setMtu(int bytes) throws IOException {
        TapDevice.checkMtu(this, bytes);
        ensureOpen();
        mtu = bytes;
    }

    /** The queue end a frame towards this device end goes to: by flow hash over the attached queues. */
    private SimulatedTap steer(byte[] frame) {
        int count = queueCount;
        if (count == 1) {
            return this;
        }
        SimulatedTap target = queues[Integer.remainderUnsigned(flowHash(frame), count)];
        return target != null ? target : this;
    }

    /**
     * A flow hash of a frame with its virtio-net header: IPv4 or IPv6 addresses plus, for TCP and UDP (IPv4 without
     * options' length taken into account, IPv6 without extension headers), the ports; the EtherType otherwise.
     */
    static int flowHash(byte[] frame) {
        int eth = VirtioNetHeaderDescriptor.LENGTH;
        if (frame.length < eth + ETH_HLEN) {
            return 0;
        }
        int type = (frame[eth + 12] & 0xff) << 8 | (frame[eth + 13] & 0xff);
        int h = type;
        int l3 = eth + ETH_HLEN;
        int from;
        int to;
        int l4;
        int proto;
        if (type == 0x0800 && frame.length >= l3 + 20) {
            from = l3 + 12;
            to = l3 + 20;
            proto = frame[l3 + 9] & 0xff;
            l4 = l3 + (frame[l3] & 0x0f) * 4;
        } else if (type == 0x86dd && frame.length >= l3 + 40) {
            from = l3 + 8;
            to = l3 + 40;
            proto = frame[l3 + 6] & 0xff;
            l4 = l3 + 40;
        } else {
            return h;
        }
        if ((proto == 6 || proto == 17) && frame.length >= l4 + 4) {
            to = l4 + 4; // addresses and ports; the bytes between them (IPv4 options) are fixed per flow
        }
        for (int i = from; i < to; i++) {
            h = h * 31 + (frame[i] & 0xff);
        }
        return h ^ (h >>> 16);
    }

    /** Closes this end; for the device end also every queue end. A queue end returned by {@link #queue} is owned by
     * the device end: closing it is a no-op. */
    @Override
    public void close() throws IOException {
        if (ownedQueue) {
            return;
        }
        if (queues != null) {
            synchronized (this) {
                for (int q = queueCount - 1; q >= 1; q--) {
                    SimulatedTap queue = queues[q];
                    queues[q] = null;
                    queue.closeEnd();
                }
                queueCount = 1;
            }
        }
        closeEnd();
    }

    private void closeEnd() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        inbound.close();
        OPEN_ENDS.decrementAndGet();
    }

    @Override
    public String toString() {
        return "SimulatedTap{name=" + name + (deviceEnd ? ", device end" : ", host end") + (closed ? ", closed" : "")
                + "}";
    }

    private void ensureOpen() throws ClosedChannelException {
        if (closed) {
            throw new ClosedChannelException();
        }
    }

    /** What the tun driver does to a frame on its way to a reader with offload flags {@code readerOffload}. */
    private void adaptToDeviceOffload(byte[] frame, int readerOffload) {
        int gsoType = frame[VirtioNetHeaderDescriptor.GSO_TYPE_OFFSET] & 0xff;
        int needed = switch (gsoType & ~VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_GSO_ECN) {
            case VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_GSO_NONE -> 0;
            case VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_GSO_TCPV4 -> TUN_F_TSO4;
            case VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_GSO_TCPV6 -> TUN_F_TSO6;
            case VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_GSO_UDP_L4 -> TUN_F_USO4;
            default -> -1;
        };
        if ((gsoType & VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_GSO_ECN) != 0) {
            needed |= TUN_F_TSO_ECN;
        }
        if (needed == -1 || (needed & readerOffload) != needed) {
            throw new IllegalArgumentException("simulated TAP does not segment: the device end did not enable this GSO"
                    + " type: device=" + name + ", gso_type=0x" + Integer.toHexString(gsoType) + ", offload=0x"
                    + Integer.toHexString(readerOffload));
        }
        ByteBuffer buf = ByteBuffer.wrap(frame);
        int flags = VirtioNetHeaderDescriptor.flags(buf, 0);
        if ((flags & VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_F_NEEDS_CSUM) != 0 && (readerOffload & TUN_F_CSUM) == 0) {
            int start = vnetHeaderBytes() + VirtioNetHeaderDescriptor.csumStart(buf, 0);
            int field = start + VirtioNetHeaderDescriptor.csumOffset(buf, 0);
            if (field + 2 > frame.length) {
                throw new IllegalArgumentException("csum_start/csum_offset beyond the frame: device=" + name
                        + ", " + VirtioNetHeaderDescriptor.toString(buf, 0) + ", length=" + frame.length);
            }
            long sum = 0;
            for (int i = start; i < frame.length; i += 2) {
                int hi = frame[i] & 0xff;
                int lo = i + 1 < frame.length ? frame[i + 1] & 0xff : 0;
                sum += hi << 8 | lo;
            }
            while ((sum >>> 16) != 0) {
                sum = (sum & 0xffff) + (sum >>> 16);
            }
            int checksum = (int) ~sum & 0xffff;
            frame[field] = (byte) (checksum >>> 8);
            frame[field + 1] = (byte) checksum;
            frame[VirtioNetHeaderDescriptor.FLAGS_OFFSET] = (byte) (flags
                    & ~VirtioNetHeaderDescriptor.VIRTIO_NET_HDR_F_NEEDS_CSUM);
            buf.putShort(VirtioNetHeaderDescriptor.CSUM_START_OFFSET, (short) 0);
            buf.putShort(VirtioNetHeaderDescriptor.CSUM_OFFSET_OFFSET, (short) 0);
        }
    }

    /**
     * One direction: a bounded FIFO and the eventfd of its reader. Invariant, held under the monitor: the eventfd
     * counter is non-zero exactly when the queue is non-empty, so the reader's poll never misses a frame and never
     * wakes for nothing.
     */
    private static final class Queue {
        private final ArrayDeque<byte[]> frames = new ArrayDeque<>();
        private final int capacity;
        private final Memory counter = new Memory(8);
        final int eventFd;
        private boolean closed;

        Queue(int capacity) throws IOException {
            this.capacity = capacity;
            this.eventFd = Syscalls.eventfd(0, LibC.EFD_NONBLOCK);
            OPEN_ENDS.incrementAndGet();
        }

        synchronized boolean offer(byte[] frame) throws IOException {
            if (closed) {
                throw new IOException("simulated TAP peer is closed (Linux would say EIO: the link is down)");
            }
            if (frames.size() >= capacity) {
                return false;
            }
            frames.addLast(frame);
            if (frames.size() == 1) {
                counter.setLong(0, 1);
                Syscalls.write(eventFd, counter, 8);
            }
            return true;
        }

        synchronized byte[] poll() throws IOException {
            byte[] frame = frames.pollFirst();
            if (frame != null && frames.isEmpty()) {
                // Resets the counter to 0: an eventfd read returns and clears the whole count.
                Syscalls.read(eventFd, counter, 8);
            }
            return frame;
        }

        synchronized void close() throws IOException {
            closed = true;
            frames.clear();
            try {
                Syscalls.close(eventFd);
            } finally {
                counter.close();
            }
        }
    }
}
