package io.jtap.aio;

import com.sun.jna.Memory;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import io.jtap.xen.Availability;
import io.jtap.xen.linux.LibC;
import io.jtap.xen.linux.Syscalls;
import java.io.IOException;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The portable {@link BlockIoEngine}: each operation runs as a blocking {@code preadv}/{@code pwritev}/
 * {@code fdatasync}/{@code fallocate} on a bounded pool of worker threads; workers queue the finished slot and add 1
 * to an eventfd, which is {@link #completionFd()}. For hosts without io_uring; chosen explicitly through
 * {@link BlockIoEngines#open}, never as a silent fallback.
 *
 * <p>Short transfers are continued on the worker, in a loop, until the vector is done, an error occurs, or a call
 * transfers nothing. The work queue and the completion queue are arrays sized to the capacity, and each slot has its
 * own preallocated task, so the owner's path allocates nothing. Confined to the owner thread (see
 * {@link BlockIoEngine}); workers touch only the slot they run, handed over by the executor and handed back under
 * {@link #completionLock}.
 */
public final class ThreadPoolIoEngine implements BlockIoEngine {
    private static final AtomicInteger POOLS = new AtomicInteger();

    private static final class AvailabilityHolder {
        static final Availability AVAILABILITY = probe();
    }

    private final IoSlots slots;
    private final ThreadPoolExecutor executor;
    private final Runnable[] tasks;
    /** Per-slot final result, written by the worker before it queues the slot under the lock. */
    private final long[] results;
    /** Prepared slots not yet submitted; owner only. */
    private final int[] prepared;
    private int preparedCount;
    private final Object completionLock = new Object();
    /** Completed slots, a ring of a power-of-two size at least the capacity; guarded by {@link #completionLock}. */
    private final int[] completed;
    private int completedHead;
    private int completedTail;
    /** The owner's copy of a batch taken from {@link #completed}. */
    private final int[] batch;
    private final int eventFd;
    private final Memory scratch = new Memory(8);
    private final int threads;
    private boolean closed;

    private ThreadPoolIoEngine(int queueDepth, int maxSegments, int threads) throws IOException {
        if (threads <= 0) {
            throw new IllegalArgumentException("threads must be positive: threads=" + threads);
        }
        this.threads = threads;
        slots = new IoSlots(queueDepth, maxSegments);
        results = new long[queueDepth];
        prepared = new int[queueDepth];
        int ring = Integer.highestOneBit(queueDepth);
        completed = new int[ring < queueDepth ? ring << 1 : ring];
        batch = new int[queueDepth];
        tasks = new Runnable[queueDepth];
        for (int i = 0; i < queueDepth; i++) {
            int slot = i;
            tasks[i] = () -> run(slot);
        }
        try {
            eventFd = Syscalls.eventfd(0, LibC.EFD_NONBLOCK);
        } catch (IOException e) {
            slots.close();
            scratch.close();
            throw e;
        }
        int pool = POOLS.incrementAndGet();
        AtomicInteger workers = new AtomicInteger();
        ThreadFactory factory = r -> {
            Thread t = new Thread(r, "jtap-aio-" + pool + "-" + workers.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
        // At most queueDepth tasks are ever queued (one per slot in flight), so the bounded queue never rejects.
        executor = new ThreadPoolExecutor(threads, threads, 0, TimeUnit.SECONDS,
                new ArrayBlockingQueue<>(queueDepth), factory);
    }

    /**
     * Opens a pool of {@code threads} workers with room for {@code queueDepth} operations of up to
     * {@code maxSegments} segments each.
     */
    public static ThreadPoolIoEngine open(int queueDepth, int maxSegments, int threads) throws IOException {
        ensureAvailability();
        return new ThreadPoolIoEngine(queueDepth, maxSegments, threads);
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
        availability().ensureAvailability("thread-pool block IO (preadv/pwritev)");
    }

    private static Availability probe() {
        if (LibC.loadFailure() != null) {
            return Availability.unavailable(LibC.loadFailure());
        }
        if (Native.POINTER_SIZE != 8) {
            return Availability.unavailable("thread-pool block IO needs a 64-bit JVM: pointerSize="
                    + Native.POINTER_SIZE);
        }
        return Availability.available();
    }

    @Override
    public String kind() {
        return BlockIoEngines.THREADS;
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

    /** The number of worker threads. */
    public int threads() {
        return threads;
    }

    @Override
    public IoVector vector() {
        ensureOpen();
        return slots.reserveVector();
    }

    @Override
    public void readv(int fd, long offset, IoVector vector, long userData) {
        ensureOpen();
        int slot = slots.claim(vector, fd, offset, IoSlots.OP_READV, userData);
        prepared[preparedCount++] = slot;
    }

    @Override
    public void writev(int fd, long offset, IoVector vector, long userData) {
        ensureOpen();
        int slot = slots.claim(vector, fd, offset, IoSlots.OP_WRITEV, userData);
        prepared[preparedCount++] = slot;
    }

    @Override
    public void fsync(int fd, boolean datasync, long userData) {
        ensureOpen();
        int slot = slots.take();
        slots.set(slot, datasync ? IoSlots.OP_FDATASYNC : IoSlots.OP_FSYNC, fd, 0, userData);
        prepared[preparedCount++] = slot;
    }

    @Override
    public void fallocate(int fd, int mode, long offset, long length, long userData) {
        ensureOpen();
        if (offset < 0 || length <= 0) {
            throw new IllegalArgumentException("bad fallocate range: offset=" + offset + ", length=" + length);
        }
        int slot = slots.take();
        slots.set(slot, IoSlots.OP_FALLOCATE, fd, offset, userData);
        slots.length[slot] = length;
        slots.mode[slot] = mode;
        prepared[preparedCount++] = slot;
    }

    @Override
    public int submit() {
        ensureOpen();
        return dispatchPrepared();
    }

    private int dispatchPrepared() {
        int n = preparedCount;
        for (int i = 0; i < n; i++) {
            // The executor's queue hands the slot's fields to the worker (happens-before).
            executor.execute(tasks[prepared[i]]);
        }
        preparedCount = 0;
        return n;
    }

    /** Runs one slot's operation to its final result on a worker thread. */
    private void run(int slot) {
        long result;
        try {
            result = execute(slot);
        } catch (Throwable t) {
            // A JNA failure: report it as an IO error for the slot rather than lose the completion.
            result = -LibC.EIO;
        }
        synchronized (completionLock) {
            results[slot] = result;
            completed[completedTail++ & (completed.length - 1)] = slot;
        }
        int r = AioSyscalls.eventfdWrite(eventFd, 1);
        if (r < 0) {
            // Only EAGAIN (counter at 2^64-2) is possible on a valid eventfd; the owner reaps without a wakeup then.
            Thread.yield();
        }
    }

    private long execute(int slot) {
        int fd = slots.fd[slot];
        switch (slots.op[slot]) {
            case IoSlots.OP_READV:
            case IoSlots.OP_WRITEV: {
                boolean read = slots.op[slot] == IoSlots.OP_READV;
                IoVector v = slots.vectors[slot];
                while (true) {
                    long r = read
                            ? AioSyscalls.preadv(fd, v.firstEntryAddress(), v.remainingSegments(), slots.offset[slot])
                            : AioSyscalls.pwritev(fd, v.firstEntryAddress(), v.remainingSegments(),
                                    slots.offset[slot]);
                    long outcome = slots.progress(slot, r);
                    if (outcome != IoSlots.CONTINUE) {
                        return outcome;
                    }
                }
            }
            case IoSlots.OP_FSYNC:
                return AioSyscalls.fsync(fd, false);
            case IoSlots.OP_FDATASYNC:
                return AioSyscalls.fsync(fd, true);
            case IoSlots.OP_FALLOCATE:
                return AioSyscalls.fallocate(fd, slots.mode[slot], slots.offset[slot], slots.length[slot]);
            default:
                return -LibC.EINVAL;
        }
    }

    @Override
    public boolean completionsReady() {
        synchronized (completionLock) {
            return completedTail != completedHead;
        }
    }

    @Override
    public int reapReady(CompletionHandler handler) throws IOException {
        ensureOpen();
        return reapCompletions(handler);
    }

    @Override
    public void resetCompletionFd() throws IOException {
        ensureOpen();
        AioSyscalls.resetEventfd(eventFd, Pointer.nativeValue(scratch), "thread-pool completion eventfd");
    }

    private int reapCompletions(CompletionHandler handler) throws IOException {
        int n;
        synchronized (completionLock) {
            n = completedTail - completedHead;
            for (int i = 0; i < n; i++) {
                batch[i] = completed[completedHead++ & (completed.length - 1)];
            }
        }
        for (int i = 0; i < n; i++) {
            int slot = batch[i];
            long userData = slots.userData[slot];
            long result = results[slot];
            slots.release(slot);
            handler.complete(userData, result);
        }
        return n;
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
        // Workers may still be writing into buffers the caller owns: let every submitted operation finish.
        dispatchPrepared();
        executor.shutdown();
        boolean interrupted = false;
        while (true) {
            try {
                if (executor.awaitTermination(1, TimeUnit.SECONDS)) {
                    break;
                }
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        reapCompletions((u, res) -> { });
        slots.close();
        scratch.close();
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        Syscalls.close(eventFd);
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("thread-pool engine closed");
        }
    }
}
