package io.jtap.xen.linux;

import static io.jtap.xen.linux.XsWireDescriptor.XS_READ;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Linux's {@code /dev/xen/xenbus} queues a request with its body still in the file's one message buffer and copies the
 * body to the ring later, so a second request written before that replaces the first one's body. In the e2e testbed
 * this made a read of a disk's {@code params} come back with the value of a {@code state} node, and a directory
 * listing fail with EINVAL. {@link KernelLikeTransport} models that buffer; over it, concurrent callers must each get
 * the answer to their own request, which needs {@link WireXenStore} to keep one request in flight.
 */
class XenbusDeviceOneInFlightTest {
    private static final int THREADS = 8;
    private static final int READS_PER_THREAD = 25;

    @Test
    void concurrentCallersEachGetTheirOwnReplyOverTheXenbusDevice() throws Exception {
        assertEquals(0, wrongAnswers(false), "a reply answered another request's body");
    }

    /** The model shows the kernel's behaviour: with requests pipelined, bodies get replaced. */
    @Test
    void theModelReplacesBodiesWhenRequestsArePipelined() throws Exception {
        assertTrue(wrongAnswers(true) > 0, "the kernel-like transport did not mix up pipelined requests");
    }

    /** Concurrent reads of distinct paths, each answered with its own path; returns how many got another's. */
    private static int wrongAnswers(boolean pipelined) throws Exception {
        KernelLikeTransport transport = new KernelLikeTransport(pipelined);
        ExecutorService pool = Executors.newFixedThreadPool(THREADS);
        try (WireXenStore xs = WireXenStore.over(transport)) {
            CountDownLatch start = new CountDownLatch(1);
            List<Future<Integer>> results = new ArrayList<>();
            for (int t = 0; t < THREADS; t++) {
                int thread = t;
                results.add(pool.submit(() -> {
                    start.await();
                    int wrong = 0;
                    for (int i = 0; i < READS_PER_THREAD; i++) {
                        String path = "/local/domain/0/backend/vbd/1/" + thread + "/key" + i;
                        Optional<String> v = xs.readString(path);
                        if (!v.equals(Optional.of(path))) {
                            wrong++;
                        }
                    }
                    return wrong;
                }));
            }
            start.countDown();
            int wrong = 0;
            for (Future<Integer> r : results) {
                wrong += r.get(60, TimeUnit.SECONDS);
            }
            return wrong;
        } finally {
            pool.shutdownNow();
        }
    }

    /**
     * The kernel's xenbus device as xenstore clients see it: {@code write} keeps the header of a complete message and
     * a reference to the body in one shared buffer; a separate thread (the kernel's xenbus thread) sends queued
     * requests later, reading the body from the buffer then, and answers an XS_READ with the path it read. It sends a
     * request as soon as a second one is queued behind it, or after 10 ms.
     */
    private static final class KernelLikeTransport implements XenStoreTransport {
        private final boolean pipelined;
        private final byte[] buffer = new byte[XsWireDescriptor.HEADER_LENGTH + XsWireDescriptor.XENSTORE_PAYLOAD_MAX];
        private final ArrayDeque<int[]> queued = new ArrayDeque<>();   // {type, reqId, txId, len}
        private final LinkedBlockingQueue<ByteBuffer> replies = new LinkedBlockingQueue<>();
        private final Thread xenbusThread;
        private volatile boolean closed;
        private ByteBuffer current;

        KernelLikeTransport(boolean pipelined) {
            this.pipelined = pipelined;
            xenbusThread = new Thread(this::sendQueued, "kernel-xenbus");
            xenbusThread.setDaemon(true);
            xenbusThread.start();
        }

        @Override
        public boolean pipelines() {
            return pipelined;
        }

        @Override
        public synchronized void write(ByteBuffer message) {
            ByteBuffer m = message.duplicate().order(java.nio.ByteOrder.LITTLE_ENDIAN);
            int type = m.getInt(0);
            int reqId = m.getInt(4);
            int txId = m.getInt(8);
            int len = m.getInt(12);
            m.get(m.position(), buffer, 0, message.remaining());   // the file's one buffer, overwritten each time
            message.position(message.limit());
            queued.add(new int[] {type, reqId, txId, len});
            notifyAll();
        }

        private void sendQueued() {
            while (!closed) {
                int[] h;
                String body;
                synchronized (this) {
                    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(10);
                    try {
                        while (!closed && (queued.isEmpty()
                                || queued.size() < 2 && System.nanoTime() < deadline)) {
                            wait(Math.max(1, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime())));
                            if (queued.isEmpty()) {
                                deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(10);
                            }
                        }
                    } catch (InterruptedException e) {
                        return;
                    }
                    if (closed) {
                        return;
                    }
                    h = queued.poll();
                    // the body as the buffer holds it now, up to the first NUL (a path)
                    int n = 0;
                    while (n < h[3] && buffer[XsWireDescriptor.HEADER_LENGTH + n] != 0) {
                        n++;
                    }
                    body = new String(buffer, XsWireDescriptor.HEADER_LENGTH, n, StandardCharsets.US_ASCII);
                }
                byte[] value = h[0] == XS_READ ? body.getBytes(StandardCharsets.US_ASCII) : new byte[0];
                replies.add(XsWireDescriptor.encode(h[0], h[1], h[2], value));
            }
        }

        @Override
        public int read(ByteBuffer dst) throws IOException {
            try {
                while (current == null || !current.hasRemaining()) {
                    if (closed) {
                        return -1;
                    }
                    current = replies.poll(50, TimeUnit.MILLISECONDS);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return -1;
            }
            int n = Math.min(dst.remaining(), current.remaining());
            ByteBuffer slice = current.slice();
            slice.limit(n);
            dst.put(slice);
            current.position(current.position() + n);
            return n;
        }

        @Override
        public String describe() {
            return "kernel-like xenbus device model";
        }

        @Override
        public void close() {
            closed = true;
            synchronized (this) {
                notifyAll();
            }
        }
    }
}
