package io.jtap.aio;

import static io.jtap.aio.IoUringDescriptor.CQE_RES_OFFSET;
import static io.jtap.aio.IoUringDescriptor.CQE_SIZE;
import static io.jtap.aio.IoUringDescriptor.CQE_USER_DATA_OFFSET;
import static io.jtap.aio.IoUringDescriptor.CQ_OFF_CQES;
import static io.jtap.aio.IoUringDescriptor.CQ_OFF_HEAD;
import static io.jtap.aio.IoUringDescriptor.CQ_OFF_OVERFLOW;
import static io.jtap.aio.IoUringDescriptor.CQ_OFF_RING_ENTRIES;
import static io.jtap.aio.IoUringDescriptor.CQ_OFF_RING_MASK;
import static io.jtap.aio.IoUringDescriptor.CQ_OFF_TAIL;
import static io.jtap.aio.IoUringDescriptor.IORING_ENTER_GETEVENTS;
import static io.jtap.aio.IoUringDescriptor.IORING_FEAT_RW_CUR_POS;
import static io.jtap.aio.IoUringDescriptor.IORING_FEAT_SINGLE_MMAP;
import static io.jtap.aio.IoUringDescriptor.IORING_FSYNC_DATASYNC;
import static io.jtap.aio.IoUringDescriptor.IORING_OFF_CQ_RING;
import static io.jtap.aio.IoUringDescriptor.IORING_OFF_SQES;
import static io.jtap.aio.IoUringDescriptor.IORING_OFF_SQ_RING;
import static io.jtap.aio.IoUringDescriptor.IORING_OP_FALLOCATE;
import static io.jtap.aio.IoUringDescriptor.IORING_OP_FSYNC;
import static io.jtap.aio.IoUringDescriptor.IORING_OP_READ;
import static io.jtap.aio.IoUringDescriptor.IORING_OP_READV;
import static io.jtap.aio.IoUringDescriptor.IORING_OP_WRITE;
import static io.jtap.aio.IoUringDescriptor.IORING_OP_WRITEV;
import static io.jtap.aio.IoUringDescriptor.IORING_REGISTER_EVENTFD;
import static io.jtap.aio.IoUringDescriptor.IORING_SETUP_CLAMP;
import static io.jtap.aio.IoUringDescriptor.IORING_SETUP_CQSIZE;
import static io.jtap.aio.IoUringDescriptor.IORING_SETUP_SUBMIT_ALL;
import static io.jtap.aio.IoUringDescriptor.IOSQE_ASYNC;
import static io.jtap.aio.IoUringDescriptor.PARAMS_CQ_ENTRIES_OFFSET;
import static io.jtap.aio.IoUringDescriptor.PARAMS_CQ_OFF_OFFSET;
import static io.jtap.aio.IoUringDescriptor.PARAMS_FEATURES_OFFSET;
import static io.jtap.aio.IoUringDescriptor.PARAMS_FLAGS_OFFSET;
import static io.jtap.aio.IoUringDescriptor.PARAMS_SIZE;
import static io.jtap.aio.IoUringDescriptor.PARAMS_SQ_ENTRIES_OFFSET;
import static io.jtap.aio.IoUringDescriptor.PARAMS_SQ_OFF_OFFSET;
import static io.jtap.aio.IoUringDescriptor.SQE_ADDR3_OFFSET;
import static io.jtap.aio.IoUringDescriptor.SQE_ADDR_OFFSET;
import static io.jtap.aio.IoUringDescriptor.SQE_BUF_INDEX_OFFSET;
import static io.jtap.aio.IoUringDescriptor.SQE_FD_OFFSET;
import static io.jtap.aio.IoUringDescriptor.SQE_FLAGS_OFFSET;
import static io.jtap.aio.IoUringDescriptor.SQE_IOPRIO_OFFSET;
import static io.jtap.aio.IoUringDescriptor.SQE_LEN_OFFSET;
import static io.jtap.aio.IoUringDescriptor.SQE_OFF_OFFSET;
import static io.jtap.aio.IoUringDescriptor.SQE_OPCODE_OFFSET;
import static io.jtap.aio.IoUringDescriptor.SQE_RW_FLAGS_OFFSET;
import static io.jtap.aio.IoUringDescriptor.SQE_SIZE;
import static io.jtap.aio.IoUringDescriptor.SQE_SPLICE_FD_IN_OFFSET;
import static io.jtap.aio.IoUringDescriptor.SQE_USER_DATA_OFFSET;
import static io.jtap.aio.IoUringDescriptor.SQ_OFF_ARRAY;
import static io.jtap.aio.IoUringDescriptor.SQ_OFF_HEAD;
import static io.jtap.aio.IoUringDescriptor.SQ_OFF_RING_ENTRIES;
import static io.jtap.aio.IoUringDescriptor.SQ_OFF_RING_MASK;
import static io.jtap.aio.IoUringDescriptor.SQ_OFF_TAIL;

import com.sun.jna.Memory;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import io.jtap.xen.Availability;
import io.jtap.xen.linux.LibC;
import io.jtap.xen.linux.Syscalls;
import io.jtap.xen.linux.Syscalls.ErrnoException;
import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * {@link BlockIoEngine} over one Linux io_uring instance: SQ ring, CQ ring and SQE array mapped into the process,
 * completions signalled on a registered eventfd ({@code IORING_REGISTER_EVENTFD}).
 *
 * <p>Sizes: SQ and CQ both have {@code entries = nextPowerOfTwo(queueDepth)} entries ({@code IORING_SETUP_CQSIZE}),
 * and at most {@code queueDepth} operations hold a slot, so neither ring can overflow: the SQ never holds more than
 * the prepared operations, and the CQ never more than the operations in flight. Each SQE's user_data is its slot
 * index; the caller's userData stays in the slot.
 *
 * <p>Memory ordering follows liburing: the shared indices are accessed through {@link VarHandle} acquire loads and
 * release stores on the mapped buffers; each access says what it orders. Confined to the owner thread (see
 * {@link BlockIoEngine}).
 */
public final class LinuxIoUring implements BlockIoEngine {
    private static final VarHandle INT = MethodHandles.byteBufferViewVarHandle(int[].class, ByteOrder.nativeOrder());
    /** The most entries io_uring_setup accepts ({@code IORING_MAX_ENTRIES}). */
    private static final int MAX_ENTRIES = 32768;

    private static final class AvailabilityHolder {
        static final Availability AVAILABILITY = probe();
    }

    private final IoSlots slots;
    private final int ringFd;
    private final int eventFd;
    private final Pointer sqRingPointer;
    private final long sqRingSize;
    private final Pointer cqRingPointer;
    private final long cqRingSize;
    private final Pointer sqesPointer;
    private final long sqesSize;
    private final ByteBuffer sqRing;
    private final ByteBuffer cqRing;
    private final ByteBuffer sqes;
    private final int sqEntries;
    private final int sqMask;
    private final int cqMask;
    private final int cqEntries;
    private final int sqHeadOffset;
    private final int sqTailOffset;
    private final int cqHeadOffset;
    private final int cqTailOffset;
    private final int cqOverflowOffset;
    private final int cqesOffset;
    private final int features;
    /** The kernel has {@code IORING_OP_READ} and {@code IORING_OP_WRITE} (5.6 and later). */
    private final boolean singleBufferOps;
    /** eventfd_read's destination. */
    private final Memory scratch = new Memory(8);
    /** The SQ tail as the owner has produced it; published to the kernel at {@link #submit()}. */
    private int sqTail;
    /** The CQ head as the owner has consumed it; the owner is the only writer of the shared head. */
    private int cqHead;
    /** See {@link #offloadReadsFrom(long)}; 0: never. */
    private long offloadReadsFrom;
    private boolean closed;

    private LinuxIoUring(int queueDepth, int maxSegments) throws IOException {
        if (queueDepth <= 0 || queueDepth > MAX_ENTRIES) {
            throw new IllegalArgumentException("queue depth must be in 1.." + MAX_ENTRIES + ": queueDepth="
                    + queueDepth);
        }
        int entries = Integer.highestOneBit(queueDepth);
        if (entries < queueDepth) {
            entries <<= 1;
        }
        slots = new IoSlots(queueDepth, maxSegments);
        int fd = -1;
        int efd = -1;
        Pointer sqPtr = null;
        Pointer cqPtr = null;
        Pointer sqePtr = null;
        long sqSize = 0;
        long cqSize = 0;
        long sqeSize = 0;
        try (Memory params = new Memory(PARAMS_SIZE)) {
            params.clear();
            params.setInt(PARAMS_FLAGS_OFFSET, IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_SUBMIT_ALL);
            params.setInt(PARAMS_CQ_ENTRIES_OFFSET, entries);
            fd = AioSyscalls.ioUringSetup(entries, Pointer.nativeValue(params));
            if (fd == -LibC.EINVAL) {
                // IORING_SETUP_SUBMIT_ALL is Linux 5.18+; without it a failing SQE stops the batch, and the rest stay
                // in the SQ until the next submit, which this class handles.
                params.clear();
                params.setInt(PARAMS_FLAGS_OFFSET, IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP);
                params.setInt(PARAMS_CQ_ENTRIES_OFFSET, entries);
                fd = AioSyscalls.ioUringSetup(entries, Pointer.nativeValue(params));
            }
            if (fd < 0) {
                throw new ErrnoException("io_uring_setup(entries=" + entries + ")", -fd);
            }
            sqEntries = params.getInt(PARAMS_SQ_ENTRIES_OFFSET);
            cqEntries = params.getInt(PARAMS_CQ_ENTRIES_OFFSET);
            features = params.getInt(PARAMS_FEATURES_OFFSET);
            singleBufferOps = (features & IORING_FEAT_RW_CUR_POS) != 0;
            if (sqEntries < queueDepth || cqEntries < queueDepth) {
                throw new IOException("io_uring rings smaller than the queue depth: sqEntries=" + sqEntries
                        + ", cqEntries=" + cqEntries + ", queueDepth=" + queueDepth);
            }
            int sqOff = PARAMS_SQ_OFF_OFFSET;
            int cqOff = PARAMS_CQ_OFF_OFFSET;
            sqSize = params.getInt(sqOff + SQ_OFF_ARRAY) + 4L * sqEntries;
            cqSize = params.getInt(cqOff + CQ_OFF_CQES) + (long) CQE_SIZE * cqEntries;
            int prot = LibC.PROT_READ | LibC.PROT_WRITE;
            if ((features & IORING_FEAT_SINGLE_MMAP) != 0) {
                sqSize = Math.max(sqSize, cqSize);
                cqSize = sqSize;
                sqPtr = Syscalls.mmap(null, sqSize, prot, LibC.MAP_SHARED, fd, IORING_OFF_SQ_RING);
                cqPtr = sqPtr;
            } else {
                sqPtr = Syscalls.mmap(null, sqSize, prot, LibC.MAP_SHARED, fd, IORING_OFF_SQ_RING);
                cqPtr = Syscalls.mmap(null, cqSize, prot, LibC.MAP_SHARED, fd, IORING_OFF_CQ_RING);
            }
            sqeSize = (long) SQE_SIZE * sqEntries;
            sqePtr = Syscalls.mmap(null, sqeSize, prot, LibC.MAP_SHARED, fd, IORING_OFF_SQES);
            sqRing = sqPtr.getByteBuffer(0, sqSize).order(ByteOrder.nativeOrder());
            cqRing = cqPtr.getByteBuffer(0, cqSize).order(ByteOrder.nativeOrder());
            sqes = sqePtr.getByteBuffer(0, sqeSize).order(ByteOrder.nativeOrder());
            sqHeadOffset = params.getInt(sqOff + SQ_OFF_HEAD);
            sqTailOffset = params.getInt(sqOff + SQ_OFF_TAIL);
            sqMask = sqRing.getInt(params.getInt(sqOff + SQ_OFF_RING_MASK));
            int sqArray = params.getInt(sqOff + SQ_OFF_ARRAY);
            cqHeadOffset = params.getInt(cqOff + CQ_OFF_HEAD);
            cqTailOffset = params.getInt(cqOff + CQ_OFF_TAIL);
            cqMask = cqRing.getInt(params.getInt(cqOff + CQ_OFF_RING_MASK));
            cqOverflowOffset = params.getInt(cqOff + CQ_OFF_OVERFLOW);
            cqesOffset = params.getInt(cqOff + CQ_OFF_CQES);
            if (sqRing.getInt(params.getInt(sqOff + SQ_OFF_RING_ENTRIES)) != sqEntries
                    || cqRing.getInt(params.getInt(cqOff + CQ_OFF_RING_ENTRIES)) != cqEntries
                    || sqMask != sqEntries - 1 || cqMask != cqEntries - 1) {
                throw new IOException("io_uring rings disagree with io_uring_params: sqEntries=" + sqEntries
                        + ", cqEntries=" + cqEntries + ", sqMask=" + sqMask + ", cqMask=" + cqMask);
            }
            // The SQ array maps ring positions to SQE indices; the identity map lets SQE i sit at ring position i
            // (liburing does the same). Written before any SQE is published, so the kernel sees it on first enter.
            for (int i = 0; i < sqEntries; i++) {
                sqRing.putInt(sqArray + 4 * i, i);
            }
            sqTail = (int) INT.getAcquire(sqRing, sqTailOffset);
            cqHead = (int) INT.getAcquire(cqRing, cqHeadOffset);
            efd = Syscalls.eventfd(0, LibC.EFD_NONBLOCK);
            try (Memory arg = new Memory(4)) {
                arg.setInt(0, efd);
                int r = AioSyscalls.ioUringRegister(fd, IORING_REGISTER_EVENTFD, Pointer.nativeValue(arg), 1);
                if (r < 0) {
                    throw new ErrnoException("io_uring_register(IORING_REGISTER_EVENTFD)", -r);
                }
            }
        } catch (IOException | RuntimeException e) {
            unmapQuietly(sqePtr, sqeSize);
            if (cqPtr != null && cqPtr != sqPtr) {
                unmapQuietly(cqPtr, cqSize);
            }
            unmapQuietly(sqPtr, sqSize);
            closeQuietly(efd);
            closeQuietly(fd);
            slots.close();
            scratch.close();
            throw e;
        }
        ringFd = fd;
        eventFd = efd;
        sqRingPointer = sqPtr;
        sqRingSize = sqSize;
        cqRingPointer = cqPtr;
        cqRingSize = cqSize;
        sqesPointer = sqePtr;
        sqesSize = sqeSize;
    }

    /**
     * Opens an io_uring with room for {@code queueDepth} operations of up to {@code maxSegments} segments each.
     *
     * @throws UnsatisfiedLinkError when io_uring is unavailable (the cause says why)
     */
    public static LinuxIoUring open(int queueDepth, int maxSegments) throws IOException {
        ensureAvailability();
        return new LinuxIoUring(queueDepth, maxSegments);
    }

    public static Availability availability() {
        return AvailabilityHolder.AVAILABILITY;
    }

    public static boolean isAvailable() {
        return availability().isAvailable();
    }

    public static Throwable unavailabilityCause() {
        return availability().unavailabilityCause();
    }

    public static void ensureAvailability() {
        availability().ensureAvailability("io_uring");
    }

    private static Availability probe() {
        if (LibC.loadFailure() != null) {
            return Availability.unavailable(LibC.loadFailure());
        }
        if (Native.POINTER_SIZE != 8) {
            return Availability.unavailable("io_uring engine needs a 64-bit JVM: pointerSize=" + Native.POINTER_SIZE);
        }
        String disabled = readSysctl();
        if ("2".equals(disabled)) {
            return Availability.unavailable("io_uring is disabled: " + IoUringDescriptor.IO_URING_DISABLED_SYSCTL
                    + "=2");
        }
        try (Memory params = new Memory(PARAMS_SIZE)) {
            params.clear();
            int fd = AioSyscalls.ioUringSetup(2, Pointer.nativeValue(params));
            if (fd >= 0) {
                closeQuietly(fd);
                return Availability.available();
            }
            int errno = -fd;
            String why;
            if (errno == LibC.ENOSYS) {
                why = "the kernel has no io_uring (io_uring_setup: ENOSYS)";
            } else if (errno == LibC.EPERM) {
                why = "io_uring_setup refused (EPERM): " + IoUringDescriptor.IO_URING_DISABLED_SYSCTL + "="
                        + (disabled == null ? "absent" : disabled)
                        + " (1 = only the io_uring_group), or a seccomp/container policy";
            } else {
                why = "io_uring_setup failed";
            }
            return Availability.unavailable(new ErrnoException(why, errno));
        }
    }

    private static String readSysctl() {
        try {
            return Files.readString(Path.of(IoUringDescriptor.IO_URING_DISABLED_SYSCTL)).trim();
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }

    @Override
    public String kind() {
        return BlockIoEngines.IO_URING;
    }

    @Override
    public int capacity() {
        return slots.capacity;
    }

    @Override
    public int maxSegments() {
        return slots.maxSegments;
    }

    @Override
    public int inFlight() {
        return slots.inUse();
    }

    /** The number of SQ entries (a power of two, at least the queue depth). */
    public int sqEntries() {
        return sqEntries;
    }

    /** The number of CQ entries (a power of two, at least the queue depth). */
    public int cqEntries() {
        return cqEntries;
    }

    /** {@code IORING_FEAT_*} bits the kernel reported. */
    public int features() {
        return features;
    }

    /** The kernel's count of completions that did not fit in the CQ ring ({@code cq_off.overflow}); stays 0. */
    public int cqOverflow() {
        return (int) INT.getAcquire(cqRing, cqOverflowOffset);
    }

    /** Whether one-buffer transfers go out as {@code IORING_OP_READ}/{@code WRITE} (for tests). */
    boolean singleBufferOps() {
        return singleBufferOps;
    }

    @Override
    public IoVector vector() {
        ensureOpen();
        return slots.reserveVector();
    }

    @Override
    public void readv(int fd, long offset, IoVector vector, long userData) throws IOException {
        ensureOpen();
        int slot = slots.claim(vector, fd, offset, IoSlots.OP_READV, userData);
        queueTransfer(slot);
    }

    @Override
    public void writev(int fd, long offset, IoVector vector, long userData) throws IOException {
        ensureOpen();
        int slot = slots.claim(vector, fd, offset, IoSlots.OP_WRITEV, userData);
        queueTransfer(slot);
    }

    @Override
    public void fsync(int fd, boolean datasync, long userData) throws IOException {
        ensureOpen();
        int slot = slots.take();
        slots.set(slot, datasync ? IoSlots.OP_FDATASYNC : IoSlots.OP_FSYNC, fd, 0, userData);
        queueSqe(IORING_OP_FSYNC, fd, 0, 0, 0, datasync ? IORING_FSYNC_DATASYNC : 0, slot);
    }

    @Override
    public void fallocate(int fd, int mode, long offset, long length, long userData) throws IOException {
        ensureOpen();
        if (offset < 0 || length <= 0) {
            throw new IllegalArgumentException("bad fallocate range: offset=" + offset + ", length=" + length);
        }
        int slot = slots.take();
        slots.set(slot, IoSlots.OP_FALLOCATE, fd, offset, userData);
        slots.length[slot] = length;
        slots.mode[slot] = mode;
        // IORING_OP_FALLOCATE: off = offset, addr = length, len = mode.
        queueSqe(IORING_OP_FALLOCATE, fd, offset, length, mode, 0, slot);
    }

    /** Queues the SQE for a readv/writev slot from its current offset and the untransferred rest of its vector. */
    private void queueTransfer(int slot) throws IOException {
        IoVector v = slots.vectors[slot];
        boolean read = slots.op[slot] == IoSlots.OP_READV;
        byte sqeFlags = (byte) (read && offloadReadsFrom > 0 && v.length() >= offloadReadsFrom ? IOSQE_ASYNC : 0);
        if (singleBufferOps && v.remainingSegments() == 1) {
            // One buffer: the plain read/write skips the kernel's copy and check of an iovec array.
            queueSqe(read ? IORING_OP_READ : IORING_OP_WRITE, slots.fd[slot], slots.offset[slot], v.firstBase(),
                    (int) v.firstLength(), 0, slot, sqeFlags);
        } else {
            queueSqe(read ? IORING_OP_READV : IORING_OP_WRITEV, slots.fd[slot], slots.offset[slot],
                    v.firstEntryAddress(), v.remainingSegments(), 0, slot, sqeFlags);
        }
    }

    private void queueSqe(byte opcode, int fd, long off, long addr, int len, int rwFlags, int slot)
            throws IOException {
        queueSqe(opcode, fd, off, addr, len, rwFlags, slot, (byte) 0);
    }

    /** Writes one SQE at the local SQ tail (io_uring_get_sqe + io_uring_prep_rw). */
    private void queueSqe(byte opcode, int fd, long off, long addr, int len, int rwFlags, int slot, byte sqeFlags)
            throws IOException {
        // We see the kernel's advance of the SQ head (it has consumed those SQEs) /before/ we overwrite the SQEs it
        // consumed. Without SQPOLL the kernel consumes only inside io_uring_enter, so this is belt and braces.
        int head = (int) INT.getAcquire(sqRing, sqHeadOffset);
        if (sqTail - head == sqEntries) {
            flushAndEnter(0, 0);
            head = (int) INT.getAcquire(sqRing, sqHeadOffset);
            if (sqTail - head == sqEntries) {
                throw new IllegalStateException("io_uring SQ full after submit: sqEntries=" + sqEntries);
            }
        }
        int base = (sqTail & sqMask) * SQE_SIZE;
        sqes.put(base + SQE_OPCODE_OFFSET, opcode);
        sqes.put(base + SQE_FLAGS_OFFSET, sqeFlags);
        sqes.putShort(base + SQE_IOPRIO_OFFSET, (short) 0);
        sqes.putInt(base + SQE_FD_OFFSET, fd);
        sqes.putLong(base + SQE_OFF_OFFSET, off);
        sqes.putLong(base + SQE_ADDR_OFFSET, addr);
        sqes.putInt(base + SQE_LEN_OFFSET, len);
        sqes.putInt(base + SQE_RW_FLAGS_OFFSET, rwFlags);
        sqes.putLong(base + SQE_USER_DATA_OFFSET, slot);
        sqes.putShort(base + SQE_BUF_INDEX_OFFSET, (short) 0);
        sqes.putShort(base + SQE_BUF_INDEX_OFFSET + 2, (short) 0); // personality
        sqes.putInt(base + SQE_SPLICE_FD_IN_OFFSET, 0);
        sqes.putLong(base + SQE_ADDR3_OFFSET, 0);
        sqes.putLong(base + SQE_ADDR3_OFFSET + 8, 0);
        sqTail++;
    }

    @Override
    public int submit() throws IOException {
        ensureOpen();
        return flushAndEnter(0, 0);
    }

    /** Publishes the local SQ tail and calls io_uring_enter (io_uring_submit / io_uring_submit_and_wait). */
    private int flushAndEnter(int minComplete, int flags) throws IOException {
        int toSubmit = sqTail - (int) INT.getAcquire(sqRing, sqHeadOffset);
        if (toSubmit == 0 && minComplete == 0) {
            return 0;
        }
        // The kernel sees every SQE we wrote (and the SQ array) /before/ it sees the new SQ tail that publishes them.
        INT.setRelease(sqRing, sqTailOffset, sqTail);
        while (true) {
            int r = AioSyscalls.ioUringEnter(ringFd, toSubmit, minComplete, flags);
            if (r >= 0) {
                return r;
            }
            if (r == -LibC.EINTR) {
                continue;
            }
            if (r == -LibC.EAGAIN || r == -LibC.EBUSY) {
                // Transient kernel shortage: the unconsumed SQEs stay in the SQ for the next submit.
                return 0;
            }
            throw new ErrnoException("io_uring_enter(toSubmit=" + toSubmit + ", minComplete=" + minComplete + ")",
                    -r);
        }
    }

    /**
     * Reads of at least {@code bytes} are queued with {@code IOSQE_ASYNC}: one of io_uring's kernel workers does
     * them, so that a page-cache hit (which io_uring otherwise copies inside {@code io_uring_enter}, on the calling
     * thread) runs on another core while this thread goes on. 0 (the default) never does.
     */
    @Override
    public void offloadReadsFrom(long bytes) {
        if (bytes < 0) {
            throw new IllegalArgumentException("offloadReadsFrom: bytes=" + bytes);
        }
        offloadReadsFrom = bytes;
    }

    @Override
    public boolean completionsReady() {
        // A CQE the kernel has published (the acquire pairs with the kernel's release of the CQ tail).
        return (int) INT.getAcquire(cqRing, cqTailOffset) != cqHead;
    }

    @Override
    public int reapReady(CompletionHandler handler) throws IOException {
        ensureOpen();
        return reapCompletions(handler);
    }

    @Override
    public void resetCompletionFd() throws IOException {
        ensureOpen();
        AioSyscalls.resetEventfd(eventFd, Pointer.nativeValue(scratch), "io_uring completion eventfd");
    }

    private int reapCompletions(CompletionHandler handler) throws IOException {
        int delivered = 0;
        boolean continued = false;
        // We see each CQE's contents /before/ we see the CQ tail that publishes it.
        int tail = (int) INT.getAcquire(cqRing, cqTailOffset);
        while (cqHead != tail) {
            int base = cqesOffset + (cqHead & cqMask) * CQE_SIZE;
            long slotData = cqRing.getLong(base + CQE_USER_DATA_OFFSET);
            int res = cqRing.getInt(base + CQE_RES_OFFSET);
            cqHead++;
            // The kernel sees that we have finished reading this CQE /before/ it sees the new CQ head that lets it
            // reuse the entry: a handler below may submit, and the completion it causes needs the space.
            INT.setRelease(cqRing, cqHeadOffset, cqHead);
            if (slotData < 0 || slotData >= slots.capacity || !slots.isBusy((int) slotData)) {
                throw new IllegalStateException("io_uring completion for no operation in flight: user_data="
                        + slotData + ", res=" + res);
            }
            int slot = (int) slotData;
            long outcome = slots.progress(slot, res);
            if (outcome == IoSlots.CONTINUE) {
                queueTransfer(slot);
                continued = true;
                continue;
            }
            long userData = slots.userData[slot];
            slots.release(slot);
            handler.complete(userData, outcome);
            delivered++;
        }
        if (continued) {
            flushAndEnter(0, 0);
        }
        return delivered;
    }

    @Override
    public int completionFd() {
        return eventFd;
    }

    @Override
    public void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        IOException failure = null;
        try {
            // The kernel may still be writing into buffers the caller owns: wait for everything in flight.
            flushAndEnter(0, 0);
            int reservedSlot = slots.inUse() - inFlightOperations();
            while (slots.inUse() > reservedSlot) {
                if (reapCompletions((u, res) -> { }) == 0 && slots.inUse() > reservedSlot) {
                    int r = AioSyscalls.ioUringEnter(ringFd, 0, 1, IORING_ENTER_GETEVENTS);
                    if (r < 0 && r != -LibC.EINTR && r != -LibC.EAGAIN && r != -LibC.EBUSY) {
                        throw new ErrnoException("io_uring_enter(GETEVENTS) while closing", -r);
                    }
                }
            }
        } catch (IOException e) {
            failure = e;
        }
        unmapQuietly(sqesPointer, sqesSize);
        if (cqRingPointer != sqRingPointer) {
            unmapQuietly(cqRingPointer, cqRingSize);
        }
        unmapQuietly(sqRingPointer, sqRingSize);
        try {
            Syscalls.close(ringFd);
        } catch (IOException e) {
            failure = failure == null ? e : failure;
        }
        try {
            Syscalls.close(eventFd);
        } catch (IOException e) {
            failure = failure == null ? e : failure;
        }
        slots.close();
        scratch.close();
        if (failure != null) {
            throw failure;
        }
    }

    /** Slots whose operation has been prepared (a reserved, unused vector holds a slot but no operation). */
    private int inFlightOperations() {
        int n = 0;
        for (int i = 0; i < slots.capacity; i++) {
            if (slots.isBusy(i)) {
                n++;
            }
        }
        return n;
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("io_uring engine closed");
        }
    }

    private static void unmapQuietly(Pointer p, long size) {
        if (p != null) {
            try {
                Syscalls.munmap(p, size);
            } catch (IOException e) {
                // Nothing more to do while cleaning up; the mapping goes with the process.
            }
        }
    }

    private static void closeQuietly(int fd) {
        if (fd >= 0) {
            try {
                Syscalls.close(fd);
            } catch (IOException e) {
                // Cleaning up after a failure: the first error is the one reported.
            }
        }
    }
}
