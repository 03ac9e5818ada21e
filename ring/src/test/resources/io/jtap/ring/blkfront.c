/*
 * A block front end built only from Xen's io/ring.h and io/blkif.h macros, for CFrontendInteropTest.
 *
 * usage: blkfront SHM_PATH ORDER TOTAL SEED START_INDEX MAX_BATCH
 *
 * Maps the ring pages from SHM_PATH (shared with the Java back end), initialises the shared ring with every index
 * at START_INDEX, says "ready" with one byte on stdout, then sends TOTAL requests and checks their responses.
 * Event channel: one byte on stdout kicks the back end; one byte on stdin is a kick from it. Kicks are sent only
 * when RING_PUSH_REQUESTS_AND_CHECK_NOTIFY says so; the front end blocks on stdin only after
 * RING_FINAL_CHECK_FOR_RESPONSES found nothing, so a lost wake-up hangs it. Prints its counts on stderr; exits
 * non-zero on any protocol violation.
 *
 * Request seq (0, 1, ...) is self-describing: id = seq ^ ID_MAGIC, sector_number = seq * 8 + 3, handle = seq,
 * operation = seq % 2, nr_segments = seq % 12, seg[i] = { seq * 16 + i, i % 8, 7 }. The back end answers with
 * status BLKIF_RSP_ERROR for seq % 7 == 0, else BLKIF_RSP_OKAY, in any order.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ring.h's legacy interface (no __XEN_INTERFACE_VERSION__) maps xen_mb() etc. to these; userspace supplies them. */
#define mb()  __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define wmb() __atomic_thread_fence(__ATOMIC_RELEASE)

#include <xen/io/blkif.h>

#define ID_MAGIC 0x5a5a000000000000ULL

static unsigned long long kicks_sent, kicks_received;

static void die(const char *what, unsigned long long a, unsigned long long b)
{
    fprintf(stderr, "blkfront: %s: %llu %llu\n", what, a, b);
    exit(1);
}

static void kick(void)
{
    char c = 'k';
    while (write(STDOUT_FILENO, &c, 1) != 1) {
        if (errno != EINTR) {
            die("write kick failed", errno, 0);
        }
    }
    kicks_sent++;
}

static void wait_kick(void)
{
    char c;
    ssize_t n;
    while ((n = read(STDIN_FILENO, &c, 1)) < 0 && errno == EINTR) {
    }
    if (n != 1) {
        die("back end closed the event channel", (unsigned long long) n, errno);
    }
    kicks_received++;
}

static int expected_status(uint64_t seq)
{
    return seq % 7 == 0 ? BLKIF_RSP_ERROR : BLKIF_RSP_OKAY;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: blkfront SHM_PATH ORDER TOTAL SEED START_INDEX MAX_BATCH\n");
        return 2;
    }
    const unsigned int order = (unsigned int) strtoul(argv[2], NULL, 0);
    const uint64_t total = strtoull(argv[3], NULL, 0);
    srand((unsigned int) strtoul(argv[4], NULL, 0));
    const RING_IDX start = (RING_IDX) strtoul(argv[5], NULL, 0);
    const unsigned int max_batch = (unsigned int) strtoul(argv[6], NULL, 0);
    const size_t ring_bytes = (size_t) 4096 << order;

    const int fd = open(argv[1], O_RDWR);
    if (fd < 0) {
        die("open shm failed", errno, 0);
    }
    blkif_sring_t *sring = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (sring == MAP_FAILED) {
        die("mmap failed", errno, ring_bytes);
    }
    uint8_t *answered = calloc(total, 1);
    if (answered == NULL) {
        die("calloc failed", total, 0);
    }

    blkif_front_ring_t front;
    SHARED_RING_INIT(sring);
    FRONT_RING_ATTACH(&front, sring, start, ring_bytes);
    /* Move the shared indices with the private ones, as if this many requests had already gone round. */
    sring->req_prod = sring->rsp_prod = start;
    sring->req_event = sring->rsp_event = start + 1;
    wmb(); /* back end sees the initialised ring /before/ it hears we are ready */
    kick();
    kicks_sent = 0;

    uint64_t sent = 0, received = 0;
    while (received < total) {
        /* Produce a batch of random size, as much as fits. */
        unsigned int want = 1 + (unsigned int) rand() % max_batch, produced = 0;
        while (produced < want && sent < total && !RING_FULL(&front)) {
            blkif_request_t *req = RING_GET_REQUEST(&front, front.req_prod_pvt);
            req->operation = sent % 2 ? BLKIF_OP_WRITE : BLKIF_OP_READ;
            req->nr_segments = sent % (BLKIF_MAX_SEGMENTS_PER_REQUEST + 1);
            req->handle = (blkif_vdev_t) sent;
            req->id = sent ^ ID_MAGIC;
            req->sector_number = sent * 8 + 3;
            for (unsigned int i = 0; i < req->nr_segments; i++) {
                req->seg[i].gref = (grant_ref_t) (sent * 16 + i);
                req->seg[i].first_sect = i % 8;
                req->seg[i].last_sect = 7;
            }
            front.req_prod_pvt++;
            sent++;
            produced++;
        }
        if (produced) {
            int notify;
            RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&front, notify);
            if (notify) {
                kick();
            }
        }

        /* Consume what responses there are. */
        unsigned int consumed = 0;
        RING_IDX rp = sring->rsp_prod;
        rmb(); /* we see responses up to rp /before/ we read them */
        if (RING_RESPONSE_PROD_OVERFLOW(&front, rp)) {
            die("bogus rsp_prod", rp, front.rsp_cons);
        }
        while (front.rsp_cons != rp) {
            blkif_response_t *rsp = RING_GET_RESPONSE(&front, front.rsp_cons);
            const uint64_t seq = rsp->id ^ ID_MAGIC;
            if (seq >= sent) {
                die("response for a request never sent", seq, sent);
            }
            if (answered[seq]) {
                die("duplicate response", seq, received);
            }
            answered[seq] = 1;
            if (rsp->operation != (seq % 2 ? BLKIF_OP_WRITE : BLKIF_OP_READ)) {
                die("response operation", seq, rsp->operation);
            }
            if (rsp->status != expected_status(seq)) {
                die("response status", seq, (unsigned long long) rsp->status);
            }
            front.rsp_cons++;
            received++;
            consumed++;
        }

        /* Sleep when nothing can be done, and now and then while requests are in flight anyway. */
        const int can_produce = sent < total && !RING_FULL(&front);
        const int in_flight = sent > received;
        if ((!produced && !consumed && !can_produce) || (in_flight && rand() % 8 == 0)) {
            int more;
            RING_FINAL_CHECK_FOR_RESPONSES(&front, more);
            if (!more && in_flight) {
                wait_kick();
            }
        }
    }
    fprintf(stderr, "blkfront: requests=%llu responses=%llu kicks_sent=%llu kicks_received=%llu"
        " req_prod=%u rsp_prod=%u\n", (unsigned long long) sent, (unsigned long long) received, kicks_sent,
        kicks_received, sring->req_prod, sring->rsp_prod);
    return 0;
}
