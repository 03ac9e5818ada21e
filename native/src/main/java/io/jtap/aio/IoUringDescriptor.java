package io.jtap.aio;

/**
 * The io_uring shared-memory layouts and constants jtap uses, mirroring {@code linux/io_uring.h} (checked against the
 * installed header by {@code IoUringLayoutTest}). Offsets are bytes from the start of the structure.
 *
 * <pre>
 * io_uring_setup(entries, &amp;params) -&gt; ring fd; the kernel fills params.sq_off / cq_off with the ring offsets.
 *
 *   mmap(fd, IORING_OFF_SQ_RING)            mmap(fd, IORING_OFF_CQ_RING)   (one mapping with IORING_FEAT_SINGLE_MMAP)
 *   +-----------------------------+         +-----------------------------+
 *   | sq_off.head   u32 (kernel)  |         | cq_off.head   u32 (user)    |
 *   | sq_off.tail   u32 (user)    |         | cq_off.tail   u32 (kernel)  |
 *   | sq_off.ring_mask            |         | cq_off.ring_mask            |
 *   | sq_off.flags  (CQ_OVERFLOW) |         | cq_off.overflow u32         |
 *   | sq_off.array  u32[entries]  |--+      | cq_off.cqes   cqe[entries]  |  16 bytes each
 *   +-----------------------------+  |      +-----------------------------+
 *                                    |  index
 *   mmap(fd, IORING_OFF_SQES)        v
 *   +-----------------------------+
 *   | sqe[entries]  64 bytes each |
 *   +-----------------------------+
 *
 * Indices are free-running u32, masked with ring_mask (entries is a power of two). The user produces SQ tail and
 * consumes CQ head; the kernel consumes SQ head and produces CQ tail.
 * </pre>
 */
final class IoUringDescriptor {
    private IoUringDescriptor() {
    }

    // struct io_uring_params
    static final int PARAMS_SIZE = 120;
    static final int PARAMS_SQ_ENTRIES_OFFSET = 0;
    static final int PARAMS_CQ_ENTRIES_OFFSET = 4;
    static final int PARAMS_FLAGS_OFFSET = 8;
    static final int PARAMS_FEATURES_OFFSET = 20;
    static final int PARAMS_SQ_OFF_OFFSET = 40;
    static final int PARAMS_CQ_OFF_OFFSET = 80;

    // struct io_sqring_offsets (40 bytes)
    static final int SQRING_OFFSETS_SIZE = 40;
    static final int SQ_OFF_HEAD = 0;
    static final int SQ_OFF_TAIL = 4;
    static final int SQ_OFF_RING_MASK = 8;
    static final int SQ_OFF_RING_ENTRIES = 12;
    static final int SQ_OFF_FLAGS = 16;
    static final int SQ_OFF_DROPPED = 20;
    static final int SQ_OFF_ARRAY = 24;

    // struct io_cqring_offsets (40 bytes)
    static final int CQRING_OFFSETS_SIZE = 40;
    static final int CQ_OFF_HEAD = 0;
    static final int CQ_OFF_TAIL = 4;
    static final int CQ_OFF_RING_MASK = 8;
    static final int CQ_OFF_RING_ENTRIES = 12;
    static final int CQ_OFF_OVERFLOW = 16;
    static final int CQ_OFF_CQES = 20;

    // struct io_uring_sqe (64 bytes without IORING_SETUP_SQE128)
    static final int SQE_SIZE = 64;
    static final int SQE_OPCODE_OFFSET = 0;
    static final int SQE_FLAGS_OFFSET = 1;
    static final int SQE_IOPRIO_OFFSET = 2;
    static final int SQE_FD_OFFSET = 4;
    static final int SQE_OFF_OFFSET = 8;
    static final int SQE_ADDR_OFFSET = 16;
    static final int SQE_LEN_OFFSET = 24;
    /** The union of rw_flags, fsync_flags, ... */
    static final int SQE_RW_FLAGS_OFFSET = 28;
    static final int SQE_USER_DATA_OFFSET = 32;
    static final int SQE_BUF_INDEX_OFFSET = 40;
    static final int SQE_PERSONALITY_OFFSET = 42;
    static final int SQE_SPLICE_FD_IN_OFFSET = 44;
    static final int SQE_ADDR3_OFFSET = 48;

    // struct io_uring_cqe (16 bytes without IORING_SETUP_CQE32)
    static final int CQE_SIZE = 16;
    static final int CQE_USER_DATA_OFFSET = 0;
    static final int CQE_RES_OFFSET = 8;
    static final int CQE_FLAGS_OFFSET = 12;

    // io_uring_setup flags and features
    static final int IORING_SETUP_CQSIZE = 1 << 3;
    static final int IORING_SETUP_CLAMP = 1 << 4;
    static final int IORING_SETUP_SUBMIT_ALL = 1 << 7;
    static final int IORING_FEAT_SINGLE_MMAP = 1 << 0;
    static final int IORING_FEAT_NODROP = 1 << 1;
    static final int IORING_FEAT_SUBMIT_STABLE = 1 << 2;
    /** Linux 5.6, the release that added {@code IORING_OP_READ} and {@code IORING_OP_WRITE}. */
    static final int IORING_FEAT_RW_CUR_POS = 1 << 3;

    // mmap offsets
    static final long IORING_OFF_SQ_RING = 0L;
    static final long IORING_OFF_CQ_RING = 0x8000000L;
    static final long IORING_OFF_SQES = 0x10000000L;

    // sq ring flags
    static final int IORING_SQ_CQ_OVERFLOW = 1 << 1;

    // io_uring_enter flags
    static final int IORING_ENTER_GETEVENTS = 1 << 0;

    // io_uring_register opcodes
    static final int IORING_REGISTER_EVENTFD = 4;
    static final int IORING_UNREGISTER_EVENTFD = 5;

    // opcodes (enum io_uring_op)
    static final byte IORING_OP_NOP = 0;
    static final byte IORING_OP_READV = 1;
    static final byte IORING_OP_WRITEV = 2;
    static final byte IORING_OP_FSYNC = 3;
    static final byte IORING_OP_FALLOCATE = 17;
    static final byte IORING_OP_READ = 22;
    static final byte IORING_OP_WRITE = 23;

    // sqe->fsync_flags
    static final int IORING_FSYNC_DATASYNC = 1 << 0;

    // sqe->flags
    static final int IOSQE_IO_DRAIN = 1 << 1;
    static final int IOSQE_ASYNC = 1 << 4;

    /** {@code /proc/sys/kernel/io_uring_disabled}: 0 all, 1 only members of io_uring_group, 2 nobody (Linux 6.6+). */
    static final String IO_URING_DISABLED_SYSCTL = "/proc/sys/kernel/io_uring_disabled";
}
