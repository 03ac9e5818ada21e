/*
 * LD_PRELOAD shim that lets Xen's C xenstored (4.17) serve its unix socket on a host without Xen.
 *
 * xenstored talks to the hypervisor only at start-up and when domains come and go. This shim answers those calls:
 *   - libxenctrl:   xc_interface_open/close, xc_domain_getinfo (every asked-for domain exists and is running)
 *   - libxenevtchn: a handle whose fd is the read end of a pipe nobody writes, so no event ever arrives;
 *                   bind_* hand out increasing local ports; notify/unmask/unbind succeed
 *   - libxengnttab: open/close/set_max_grants succeed; map_grant_ref gives a private zeroed page (an idle ring)
 *   - open() of /proc/xen/xsd_port ("1") and /proc/xen/xsd_kva (a zeroed page, so dom0's ring is empty), which
 *     xenstored reads to find dom0's ring; /proc/xen cannot be populated on a host without Xen.
 * Nothing here is used by jtap itself; it exists for RealXenstoredTest (native/src/test/java/io/jtap/xen).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xenctrl.h>
#include <xenevtchn.h>
#include <xengnttab.h>

/* Distinct non-NULL handles; xenstored only compares them with NULL and passes them back. */
static char fake_xc, fake_gnttab;
struct xenevtchn_handle { int pipe_fds[2]; };
static struct xenevtchn_handle fake_evtchn = { { -1, -1 } };
static int next_port = 10;

xc_interface *xc_interface_open(xentoollog_logger *logger, xentoollog_logger *dombuild_logger, unsigned flags)
{
    (void)logger; (void)dombuild_logger; (void)flags;
    return (xc_interface *)&fake_xc;
}

int xc_interface_close(xc_interface *xch)
{
    (void)xch;
    return 0;
}

int xc_domain_getinfo(xc_interface *xch, uint32_t first_domid, unsigned int max_doms, xc_dominfo_t *info)
{
    (void)xch;
    if (max_doms == 0)
        return 0;
    memset(info, 0, sizeof(*info));
    info->domid = first_domid;
    info->running = 1;
    return 1;
}

static xenevtchn_handle *evtchn_handle(void)
{
    if (fake_evtchn.pipe_fds[0] < 0 && pipe2(fake_evtchn.pipe_fds, O_CLOEXEC) != 0)
        return NULL;
    return &fake_evtchn;
}

xenevtchn_handle *xenevtchn_open(xentoollog_logger *logger, unsigned flags)
{
    (void)logger; (void)flags;
    return evtchn_handle();
}

xenevtchn_handle *xenevtchn_fdopen(xentoollog_logger *logger, int fd, unsigned flags)
{
    (void)logger; (void)fd; (void)flags;
    return evtchn_handle();
}

int xenevtchn_close(xenevtchn_handle *xce)
{
    (void)xce;
    return 0;
}

int xenevtchn_fd(xenevtchn_handle *xce)
{
    return xce->pipe_fds[0];
}

xenevtchn_port_or_error_t xenevtchn_bind_interdomain(xenevtchn_handle *xce, uint32_t domid, evtchn_port_t remote)
{
    (void)xce; (void)domid; (void)remote;
    return next_port++;
}

xenevtchn_port_or_error_t xenevtchn_bind_virq(xenevtchn_handle *xce, unsigned int virq)
{
    (void)xce; (void)virq;
    return next_port++;
}

int xenevtchn_notify(xenevtchn_handle *xce, evtchn_port_t port)
{
    (void)xce; (void)port;
    return 0;
}

xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *xce)
{
    (void)xce;
    errno = EAGAIN;
    return -1;
}

int xenevtchn_unmask(xenevtchn_handle *xce, evtchn_port_t port)
{
    (void)xce; (void)port;
    return 0;
}

int xenevtchn_unbind(xenevtchn_handle *xce, evtchn_port_t port)
{
    (void)xce; (void)port;
    return 0;
}

xengnttab_handle *xengnttab_open(xentoollog_logger *logger, unsigned open_flags)
{
    (void)logger; (void)open_flags;
    return (xengnttab_handle *)&fake_gnttab;
}

int xengnttab_close(xengnttab_handle *xgt)
{
    (void)xgt;
    return 0;
}

int xengnttab_set_max_grants(xengnttab_handle *xgt, uint32_t nr_grants)
{
    (void)xgt; (void)nr_grants;
    return 0;
}

void *xengnttab_map_grant_ref(xengnttab_handle *xgt, uint32_t domid, uint32_t ref, int prot)
{
    (void)xgt; (void)domid; (void)ref;
    void *page = mmap(NULL, 4096, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return page == MAP_FAILED ? NULL : page;
}

int xengnttab_unmap(xengnttab_handle *xgt, void *start_address, uint32_t count)
{
    (void)xgt;
    return munmap(start_address, (size_t)count * 4096);
}

/* A memfd holding `length` bytes of `content` (zero-padded), positioned at offset 0. */
static int memfd_with(const char *name, const char *content, size_t length)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    if (ftruncate(fd, (off_t)length) != 0 ||
        (content != NULL && pwrite(fd, content, strlen(content), 0) != (ssize_t)strlen(content))) {
        close(fd);
        return -1;
    }
    return fd;
}

static int fake_proc_xen(const char *path)
{
    if (strcmp(path, "/proc/xen/xsd_port") == 0)
        return memfd_with("xsd_port", "1", 1);
    if (strcmp(path, "/proc/xen/xsd_kva") == 0)
        return memfd_with("xsd_kva", NULL, 4096);
    return -2;
}

static int real_open(const char *name, const char *path, int flags, mode_t mode)
{
    int (*next)(const char *, int, ...) = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, name);
    if (next == NULL) {
        errno = ENOSYS;
        return -1;
    }
    return next(path, flags, mode);
}

int open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    int fd = fake_proc_xen(path);
    return fd != -2 ? fd : real_open("open", path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    int fd = fake_proc_xen(path);
    return fd != -2 ? fd : real_open("open64", path, flags, mode);
}
