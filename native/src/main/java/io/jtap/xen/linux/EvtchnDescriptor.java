package io.jtap.xen.linux;

import static io.jtap.xen.linux.Ioc._IOC;
import static io.jtap.xen.linux.Ioc._IOC_NONE;

/**
 * The ioctls of {@code /dev/xen/evtchn} and their argument layouts, mirroring Linux {@code include/uapi/xen/evtchn.h}.
 * Each ioctl that binds returns the new local port as its result. {@code read()} yields pending ports and
 * {@code write()} unmasks ports, both as arrays of {@code evtchn_port_t} (uint32). Every number here is checked
 * against the installed header by {@code KernelUapiLayoutTest}.
 *
 * <pre>
 *   struct ioctl_evtchn_bind_interdomain { unsigned int remote_domain @0, remote_port @4; }  (8)
 *   struct ioctl_evtchn_bind_unbound_port { unsigned int remote_domain @0; }                   (4)
 *   struct ioctl_evtchn_unbind { unsigned int port @0; }                                        (4)
 *   struct ioctl_evtchn_notify { unsigned int port @0; }                                        (4)
 * </pre>
 */
public final class EvtchnDescriptor {
    public static final String DEVICE = "/dev/xen/evtchn";

    public static final int BIND_INTERDOMAIN_SIZE = 8;
    public static final int BIND_INTERDOMAIN_REMOTE_DOMAIN_OFFSET = 0;
    public static final int BIND_INTERDOMAIN_REMOTE_PORT_OFFSET = 4;
    public static final int BIND_UNBOUND_PORT_SIZE = 4;
    public static final int BIND_UNBOUND_PORT_REMOTE_DOMAIN_OFFSET = 0;
    public static final int UNBIND_SIZE = 4;
    public static final int UNBIND_PORT_OFFSET = 0;
    public static final int NOTIFY_SIZE = 4;
    public static final int NOTIFY_PORT_OFFSET = 0;
    /** {@code sizeof(evtchn_port_t)}: the unit of read() and write() on the device. */
    public static final int EVTCHN_PORT_SIZE = 4;
    /** The device's ring of pending ports is one page of ports; a read asks for at most this many. */
    public static final int EVTCHN_RING_PORTS = 4096 / EVTCHN_PORT_SIZE;

    public static final long IOCTL_EVTCHN_BIND_INTERDOMAIN = _IOC(_IOC_NONE, 'E', 1, BIND_INTERDOMAIN_SIZE);
    public static final long IOCTL_EVTCHN_BIND_UNBOUND_PORT = _IOC(_IOC_NONE, 'E', 2, BIND_UNBOUND_PORT_SIZE);
    public static final long IOCTL_EVTCHN_UNBIND = _IOC(_IOC_NONE, 'E', 3, UNBIND_SIZE);
    public static final long IOCTL_EVTCHN_NOTIFY = _IOC(_IOC_NONE, 'E', 4, NOTIFY_SIZE);
    public static final long IOCTL_EVTCHN_RESET = _IOC(_IOC_NONE, 'E', 5, 0);

    private EvtchnDescriptor() {
    }
}
