/*
 * LD_PRELOAD shim that lets Xen's C xenstored (4.17) run on a host without Xen.
 *
 * xenstored talks to the hypervisor only at start-up and when domains come and go. This shim answers those calls:
 *   - libxenctrl:   xc_interface_open/close, xc_domain_getinfo (every asked-for domain exists and is running: not
 *                   dying, crashed or shut down, so check_domains() never reaps an introduced domain)
 *   - libxenevtchn: see "domain connections" below; without them, a handle whose fd is a pipe nobody writes
 *   - libxengnttab: open/close/set_max_grants succeed; map_grant_ref gives the domain's interface page (below), or
 *                   without domain connections a private zeroed page (an idle ring)
 *   - open() of /proc/xen/xsd_port ("1") and /proc/xen/xsd_kva (a zeroed page, so dom0's ring is empty), which
 *     xenstored reads to find dom0's ring; /proc/xen cannot be populated on a host without Xen.
 *
 * Domain connections (XS_INTRODUCE without Xen), when JTAP_XENSTORED_DOMAINS names a directory <dir>:
 *   - <dir>/dom<domid>.interface: a 4096-byte file the test creates before XS_INTRODUCE; xenstored's
 *     xengnttab_map_grant_ref(domid, GNTTAB_RESERVED_XENSTORE) maps it MAP_SHARED, so it is the shared
 *     struct xenstore_domain_interface (xen/io/xs_wire.h) between xenstored and the test, which plays the guest.
 *   - <dir>/evtchn: a FIFO standing in for /dev/xen/evtchn in the guest-to-xenstored direction. It is the handle's fd
 *     (xenstored polls it); the guest kicks by writing its domid as a 4-byte native-endian integer (one write, less
 *     than PIPE_BUF, so atomic), and xenevtchn_pending() answers the local port bound for that domid, as reading
 *     /dev/xen/evtchn answers the port that fired. One FIFO for all domains, because xenstored polls one fd.
 *   - <dir>/dom<domid>.notify: a FIFO per domain, created by xenevtchn_bind_interdomain(); xenevtchn_notify() on that
 *     port writes one byte into it (dropped when the FIFO is full: the guest drains it and rechecks the ring anyway).
 * Both FIFOs are opened O_RDWR|O_NONBLOCK here, so opening never blocks and xenstored never sees end-of-file.
 *
 * Nothing here is used by jtap itself; it exists for RealXenstoredTest (native/src/test/java/io/jtap/xen).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xenctrl.h>
#include <xenevtchn.h>
#include <xengnttab.h>

#define PAGE_SIZE 4096
/* Local ports handed out from FIRST_PORT; MAX_PORTS bounds the binding table (xenstored binds one per domain). */
#define FIRST_PORT 10
#define MAX_PORTS 256

/* Distinct non-NULL handles; xenstored only compares them with NULL and passes them back. */
static char fake_xc, fake_gnttab;
struct xenevtchn_handle { int fd; int write_fd; };
static struct xenevtchn_handle fake_evtchn = { -1, -1 };

/* What each local port is bound to; domid < 0 for a free or non-interdomain port. */
struct binding { int64_t domid; int notify_fd; };
static struct binding bindings[MAX_PORTS];
static int next_port = FIRST_PORT;

/* The domain-connection directory, or NULL when domain connections are off. */
static const char *domains_dir(void)
{
    const char *dir = getenv("JTAP_XENSTORED_DOMAINS");
    return dir != NULL && dir[0] != '\0' ? dir : NULL;
}

/* Creates (if missing) and opens the FIFO <dir>/<name>; -1 with errno on failure. */
static int open_fifo(const char *dir, const char *name)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (mkfifo(path, 0600) != 0 && errno != EEXIST)
        return -1;
    return open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
}

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
    memset(info, 0, sizeof(*info)); /* dying, crashed, shutdown: 0 */
    info->domid = first_domid;
    info->running = 1;
    return 1;
}

static xenevtchn_handle *evtchn_handle(void)
{
    if (fake_evtchn.fd >= 0)
        return &fake_evtchn;
    for (int i = 0; i < MAX_PORTS; i++) {
        bindings[i].domid = -1;
        bindings[i].notify_fd = -1;
    }
    const char *dir = domains_dir();
    if (dir != NULL) {
        fake_evtchn.fd = open_fifo(dir, "evtchn");
        return fake_evtchn.fd >= 0 ? &fake_evtchn : NULL;
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return NULL;
    fake_evtchn.fd = fds[0];
    fake_evtchn.write_fd = fds[1];
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
    return xce->fd;
}

static xenevtchn_port_or_error_t new_port(int64_t domid, int notify_fd)
{
    if (next_port >= MAX_PORTS) {
        errno = ENOSPC;
        return -1;
    }
    bindings[next_port].domid = domid;
    bindings[next_port].notify_fd = notify_fd;
    return next_port++;
}

xenevtchn_port_or_error_t xenevtchn_bind_interdomain(xenevtchn_handle *xce, uint32_t domid, evtchn_port_t remote)
{
    (void)xce; (void)remote;
    int notify_fd = -1;
    const char *dir = domains_dir();
    if (dir != NULL) {
        char name[32];
        snprintf(name, sizeof(name), "dom%u.notify", domid);
        notify_fd = open_fifo(dir, name);
        if (notify_fd < 0)
            return -1;
    }
    xenevtchn_port_or_error_t port = new_port(domid, notify_fd);
    if (port < 0 && notify_fd >= 0)
        close(notify_fd);
    return port;
}

xenevtchn_port_or_error_t xenevtchn_bind_virq(xenevtchn_handle *xce, unsigned int virq)
{
    (void)xce; (void)virq;
    return new_port(-1, -1);
}

int xenevtchn_notify(xenevtchn_handle *xce, evtchn_port_t port)
{
    (void)xce;
    if (port < MAX_PORTS && bindings[port].notify_fd >= 0) {
        char kick = 1;
        /* EAGAIN: the FIFO is full of unread kicks; one more adds nothing. */
        (void)!write(bindings[port].notify_fd, &kick, 1);
    }
    return 0;
}

/* The most recently bound port of domid, or 0 (a port no one binds) when there is none. */
static evtchn_port_t port_of(int64_t domid)
{
    for (int p = next_port - 1; p >= FIRST_PORT; p--) {
        if (bindings[p].domid == domid)
            return (evtchn_port_t)p;
    }
    return 0;
}

xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *xce)
{
    uint32_t domid;
    if (xce->write_fd >= 0) { /* no domain connections: nothing ever fires */
        errno = EAGAIN;
        return -1;
    }
    /* xenstored calls this only when poll() found the fd readable, and every kick is one atomic 4-byte write. */
    ssize_t n = read(xce->fd, &domid, sizeof(domid));
    if (n != (ssize_t)sizeof(domid)) {
        if (n >= 0)
            errno = EIO;
        return -1;
    }
    return port_of(domid);
}

int xenevtchn_unmask(xenevtchn_handle *xce, evtchn_port_t port)
{
    (void)xce; (void)port;
    return 0;
}

int xenevtchn_unbind(xenevtchn_handle *xce, evtchn_port_t port)
{
    (void)xce;
    if (port < MAX_PORTS) {
        if (bindings[port].notify_fd >= 0)
            close(bindings[port].notify_fd);
        bindings[port].domid = -1;
        bindings[port].notify_fd = -1;
    }
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

/* xenstored maps only a domain's xenstore page (GNTTAB_RESERVED_XENSTORE) this way. */
void *xengnttab_map_grant_ref(xengnttab_handle *xgt, uint32_t domid, uint32_t ref, int prot)
{
    (void)xgt; (void)ref;
    const char *dir = domains_dir();
    if (dir == NULL) {
        void *page = mmap(NULL, PAGE_SIZE, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return page == MAP_FAILED ? NULL : page;
    }
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/dom%u.interface", dir, domid) >= (int)sizeof(path)) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    int fd = open(path, O_RDWR | O_CLOEXEC); /* missing: XS_INTRODUCE fails with ENOENT */
    if (fd < 0)
        return NULL;
    void *page = mmap(NULL, PAGE_SIZE, prot, MAP_SHARED, fd, 0);
    int saved = errno;
    close(fd);
    errno = saved;
    return page == MAP_FAILED ? NULL : page;
}

int xengnttab_unmap(xengnttab_handle *xgt, void *start_address, uint32_t count)
{
    (void)xgt;
    return munmap(start_address, (size_t)count * PAGE_SIZE);
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
        return memfd_with("xsd_kva", NULL, PAGE_SIZE);
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
