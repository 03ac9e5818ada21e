package io.jtap.aio;

import static io.jtap.aio.IoUringDescriptor.CQE_FLAGS_OFFSET;
import static io.jtap.aio.IoUringDescriptor.CQE_RES_OFFSET;
import static io.jtap.aio.IoUringDescriptor.CQE_SIZE;
import static io.jtap.aio.IoUringDescriptor.CQE_USER_DATA_OFFSET;
import static io.jtap.aio.IoUringDescriptor.CQRING_OFFSETS_SIZE;
import static io.jtap.aio.IoUringDescriptor.CQ_OFF_CQES;
import static io.jtap.aio.IoUringDescriptor.CQ_OFF_HEAD;
import static io.jtap.aio.IoUringDescriptor.CQ_OFF_OVERFLOW;
import static io.jtap.aio.IoUringDescriptor.CQ_OFF_RING_ENTRIES;
import static io.jtap.aio.IoUringDescriptor.CQ_OFF_RING_MASK;
import static io.jtap.aio.IoUringDescriptor.CQ_OFF_TAIL;
import static io.jtap.aio.IoUringDescriptor.IORING_ENTER_GETEVENTS;
import static io.jtap.aio.IoUringDescriptor.IORING_FEAT_NODROP;
import static io.jtap.aio.IoUringDescriptor.IORING_FEAT_SINGLE_MMAP;
import static io.jtap.aio.IoUringDescriptor.IORING_FEAT_SUBMIT_STABLE;
import static io.jtap.aio.IoUringDescriptor.IORING_FSYNC_DATASYNC;
import static io.jtap.aio.IoUringDescriptor.IORING_OFF_CQ_RING;
import static io.jtap.aio.IoUringDescriptor.IORING_OFF_SQES;
import static io.jtap.aio.IoUringDescriptor.IORING_OFF_SQ_RING;
import static io.jtap.aio.IoUringDescriptor.IORING_OP_FALLOCATE;
import static io.jtap.aio.IoUringDescriptor.IORING_OP_FSYNC;
import static io.jtap.aio.IoUringDescriptor.IORING_OP_NOP;
import static io.jtap.aio.IoUringDescriptor.IORING_OP_READV;
import static io.jtap.aio.IoUringDescriptor.IORING_OP_WRITEV;
import static io.jtap.aio.IoUringDescriptor.IORING_REGISTER_EVENTFD;
import static io.jtap.aio.IoUringDescriptor.IORING_SETUP_CLAMP;
import static io.jtap.aio.IoUringDescriptor.IORING_SETUP_CQSIZE;
import static io.jtap.aio.IoUringDescriptor.IORING_SETUP_SUBMIT_ALL;
import static io.jtap.aio.IoUringDescriptor.IORING_SQ_CQ_OVERFLOW;
import static io.jtap.aio.IoUringDescriptor.IORING_UNREGISTER_EVENTFD;
import static io.jtap.aio.IoUringDescriptor.IOSQE_ASYNC;
import static io.jtap.aio.IoUringDescriptor.IOSQE_IO_DRAIN;
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
import static io.jtap.aio.IoUringDescriptor.SQE_PERSONALITY_OFFSET;
import static io.jtap.aio.IoUringDescriptor.SQE_RW_FLAGS_OFFSET;
import static io.jtap.aio.IoUringDescriptor.SQE_SIZE;
import static io.jtap.aio.IoUringDescriptor.SQE_SPLICE_FD_IN_OFFSET;
import static io.jtap.aio.IoUringDescriptor.SQE_USER_DATA_OFFSET;
import static io.jtap.aio.IoUringDescriptor.SQRING_OFFSETS_SIZE;
import static io.jtap.aio.IoUringDescriptor.SQ_OFF_ARRAY;
import static io.jtap.aio.IoUringDescriptor.SQ_OFF_DROPPED;
import static io.jtap.aio.IoUringDescriptor.SQ_OFF_FLAGS;
import static io.jtap.aio.IoUringDescriptor.SQ_OFF_HEAD;
import static io.jtap.aio.IoUringDescriptor.SQ_OFF_RING_ENTRIES;
import static io.jtap.aio.IoUringDescriptor.SQ_OFF_RING_MASK;
import static io.jtap.aio.IoUringDescriptor.SQ_OFF_TAIL;

import io.jtap.xen.CLayoutProbe;
import io.jtap.xen.linux.LibC;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Interoperability with the kernel's uAPI: compiles a C program against the installed {@code linux/io_uring.h} (and
 * libc's headers for iovec, errno, O_DIRECT, fallocate modes and syscall numbers) and checks every offset, size and
 * constant the aio engines use against what C computes. In CI ({@code CI=true}) a missing gcc or header fails the
 * test; elsewhere it is skipped with the reason.
 */
class IoUringLayoutTest {
    private static final String HEADER = "/usr/include/linux/io_uring.h";

    /** C expression → the Java value that must equal it. */
    private static Map<String, Long> expectations() {
        Map<String, Long> e = new LinkedHashMap<>();
        String params = "struct io_uring_params";
        e.put("sizeof(" + params + ")", (long) PARAMS_SIZE);
        e.put("offsetof(" + params + ", sq_entries)", (long) PARAMS_SQ_ENTRIES_OFFSET);
        e.put("offsetof(" + params + ", cq_entries)", (long) PARAMS_CQ_ENTRIES_OFFSET);
        e.put("offsetof(" + params + ", flags)", (long) PARAMS_FLAGS_OFFSET);
        e.put("offsetof(" + params + ", features)", (long) PARAMS_FEATURES_OFFSET);
        e.put("offsetof(" + params + ", sq_off)", (long) PARAMS_SQ_OFF_OFFSET);
        e.put("offsetof(" + params + ", cq_off)", (long) PARAMS_CQ_OFF_OFFSET);
        String sq = "struct io_sqring_offsets";
        e.put("sizeof(" + sq + ")", (long) SQRING_OFFSETS_SIZE);
        e.put("offsetof(" + sq + ", head)", (long) SQ_OFF_HEAD);
        e.put("offsetof(" + sq + ", tail)", (long) SQ_OFF_TAIL);
        e.put("offsetof(" + sq + ", ring_mask)", (long) SQ_OFF_RING_MASK);
        e.put("offsetof(" + sq + ", ring_entries)", (long) SQ_OFF_RING_ENTRIES);
        e.put("offsetof(" + sq + ", flags)", (long) SQ_OFF_FLAGS);
        e.put("offsetof(" + sq + ", dropped)", (long) SQ_OFF_DROPPED);
        e.put("offsetof(" + sq + ", array)", (long) SQ_OFF_ARRAY);
        String cq = "struct io_cqring_offsets";
        e.put("sizeof(" + cq + ")", (long) CQRING_OFFSETS_SIZE);
        e.put("offsetof(" + cq + ", head)", (long) CQ_OFF_HEAD);
        e.put("offsetof(" + cq + ", tail)", (long) CQ_OFF_TAIL);
        e.put("offsetof(" + cq + ", ring_mask)", (long) CQ_OFF_RING_MASK);
        e.put("offsetof(" + cq + ", ring_entries)", (long) CQ_OFF_RING_ENTRIES);
        e.put("offsetof(" + cq + ", overflow)", (long) CQ_OFF_OVERFLOW);
        e.put("offsetof(" + cq + ", cqes)", (long) CQ_OFF_CQES);
        String sqe = "struct io_uring_sqe";
        e.put("sizeof(" + sqe + ")", (long) SQE_SIZE);
        e.put("offsetof(" + sqe + ", opcode)", (long) SQE_OPCODE_OFFSET);
        e.put("offsetof(" + sqe + ", flags)", (long) SQE_FLAGS_OFFSET);
        e.put("offsetof(" + sqe + ", ioprio)", (long) SQE_IOPRIO_OFFSET);
        e.put("offsetof(" + sqe + ", fd)", (long) SQE_FD_OFFSET);
        e.put("offsetof(" + sqe + ", off)", (long) SQE_OFF_OFFSET);
        e.put("offsetof(" + sqe + ", addr)", (long) SQE_ADDR_OFFSET);
        e.put("offsetof(" + sqe + ", len)", (long) SQE_LEN_OFFSET);
        e.put("offsetof(" + sqe + ", rw_flags)", (long) SQE_RW_FLAGS_OFFSET);
        e.put("offsetof(" + sqe + ", fsync_flags)", (long) SQE_RW_FLAGS_OFFSET);
        e.put("offsetof(" + sqe + ", user_data)", (long) SQE_USER_DATA_OFFSET);
        e.put("offsetof(" + sqe + ", buf_index)", (long) SQE_BUF_INDEX_OFFSET);
        e.put("offsetof(" + sqe + ", personality)", (long) SQE_PERSONALITY_OFFSET);
        e.put("offsetof(" + sqe + ", splice_fd_in)", (long) SQE_SPLICE_FD_IN_OFFSET);
        e.put("offsetof(" + sqe + ", addr3)", (long) SQE_ADDR3_OFFSET);
        e.put("sizeof(((" + sqe + " *)0)->user_data)", 8L);
        e.put("sizeof(((" + sqe + " *)0)->len)", 4L);
        String cqe = "struct io_uring_cqe";
        e.put("sizeof(" + cqe + ")", (long) CQE_SIZE);
        e.put("offsetof(" + cqe + ", user_data)", (long) CQE_USER_DATA_OFFSET);
        e.put("offsetof(" + cqe + ", res)", (long) CQE_RES_OFFSET);
        e.put("offsetof(" + cqe + ", flags)", (long) CQE_FLAGS_OFFSET);
        e.put("IORING_SETUP_CQSIZE", (long) IORING_SETUP_CQSIZE);
        e.put("IORING_SETUP_CLAMP", (long) IORING_SETUP_CLAMP);
        e.put("IORING_SETUP_SUBMIT_ALL", (long) IORING_SETUP_SUBMIT_ALL);
        e.put("IORING_FEAT_SINGLE_MMAP", (long) IORING_FEAT_SINGLE_MMAP);
        e.put("IORING_FEAT_NODROP", (long) IORING_FEAT_NODROP);
        e.put("IORING_FEAT_SUBMIT_STABLE", (long) IORING_FEAT_SUBMIT_STABLE);
        e.put("IORING_OFF_SQ_RING", IORING_OFF_SQ_RING);
        e.put("IORING_OFF_CQ_RING", IORING_OFF_CQ_RING);
        e.put("IORING_OFF_SQES", IORING_OFF_SQES);
        e.put("IORING_SQ_CQ_OVERFLOW", (long) IORING_SQ_CQ_OVERFLOW);
        e.put("IORING_ENTER_GETEVENTS", (long) IORING_ENTER_GETEVENTS);
        e.put("IORING_REGISTER_EVENTFD", (long) IORING_REGISTER_EVENTFD);
        e.put("IORING_UNREGISTER_EVENTFD", (long) IORING_UNREGISTER_EVENTFD);
        e.put("IORING_OP_NOP", (long) IORING_OP_NOP);
        e.put("IORING_OP_READV", (long) IORING_OP_READV);
        e.put("IORING_OP_WRITEV", (long) IORING_OP_WRITEV);
        e.put("IORING_OP_FSYNC", (long) IORING_OP_FSYNC);
        e.put("IORING_OP_FALLOCATE", (long) IORING_OP_FALLOCATE);
        e.put("IORING_FSYNC_DATASYNC", (long) IORING_FSYNC_DATASYNC);
        e.put("IOSQE_IO_DRAIN", (long) IOSQE_IO_DRAIN);
        e.put("IOSQE_ASYNC", (long) IOSQE_ASYNC);
        // libc and kernel constants the engines rely on
        e.put("__NR_io_uring_setup", LibC.SYS_io_uring_setup);
        e.put("__NR_io_uring_enter", LibC.SYS_io_uring_enter);
        e.put("__NR_io_uring_register", LibC.SYS_io_uring_register);
        e.put("sizeof(struct iovec)", (long) IoVector.IOVEC_SIZE);
        e.put("offsetof(struct iovec, iov_base)", 0L);
        e.put("offsetof(struct iovec, iov_len)", 8L);
        e.put("IOV_MAX", (long) IoSlots.UIO_MAXIOV);
        e.put("O_DIRECT", (long) LibC.O_DIRECT);
        e.put("FALLOC_FL_KEEP_SIZE", (long) LibC.FALLOC_FL_KEEP_SIZE);
        e.put("FALLOC_FL_PUNCH_HOLE", (long) LibC.FALLOC_FL_PUNCH_HOLE);
        e.put("FALLOC_FL_ZERO_RANGE", (long) LibC.FALLOC_FL_ZERO_RANGE);
        e.put("EFD_NONBLOCK", (long) LibC.EFD_NONBLOCK);
        e.put("EPERM", (long) LibC.EPERM);
        e.put("EINTR", (long) LibC.EINTR);
        e.put("EIO", (long) LibC.EIO);
        e.put("EBADF", (long) LibC.EBADF);
        e.put("EAGAIN", (long) LibC.EAGAIN);
        e.put("EBUSY", (long) LibC.EBUSY);
        e.put("EINVAL", (long) LibC.EINVAL);
        e.put("ESPIPE", (long) LibC.ESPIPE);
        e.put("ENOSYS", (long) LibC.ENOSYS);
        e.put("ENODATA", (long) LibC.ENODATA);
        e.put("EOPNOTSUPP", (long) LibC.EOPNOTSUPP);
        return e;
    }

    @Test
    void javaLayoutsEqualTheInstalledIoUringHeader(@TempDir Path dir) throws Exception {
        Map<String, Long> expected = expectations();
        CLayoutProbe.assertSameAsC(expected, compileAndRun(dir, expected), List.of(), "linux/io_uring.h and libc");
    }

    private static Map<String, Long> compileAndRun(Path dir, Map<String, Long> expected) throws Exception {
        return CLayoutProbe.evaluate(dir, "io_uring_layout", List.of(HEADER),
                "#define _GNU_SOURCE\n#include <stdio.h>\n#include <stddef.h>\n#include <errno.h>\n"
                        + "#include <fcntl.h>\n#include <limits.h>\n#include <sys/uio.h>\n#include <sys/eventfd.h>\n"
                        + "#include <sys/syscall.h>\n#include <linux/falloc.h>\n#include <linux/io_uring.h>\n",
                expected.keySet(), "gcc and linux-libc-dev");
    }
}
