package io.jtap.xen.linux;

import static io.jtap.xen.linux.Ioc._IOC;
import static io.jtap.xen.linux.Ioc._IOC_NONE;

import io.jtap.xen.GrantCopySegmentDescriptor;

/**
 * The ioctls of {@code /dev/xen/gntdev} and their argument layouts, mirroring Linux {@code include/uapi/xen/gntdev.h}
 * (LP64). The grant-copy argument is described by {@link GrantCopySegmentDescriptor}. Every number here is checked
 * against the installed header by {@code KernelUapiLayoutTest}.
 *
 * <pre>
 *   struct ioctl_gntdev_map_grant_ref {          struct ioctl_gntdev_unmap_grant_ref {
 *   0   __u32 count;                             0   __u64 index;
 *   4   __u32 pad;                               8   __u32 count;
 *   8   __u64 index;       (out: mmap offset)    12  __u32 pad;
 *   16  struct ioctl_gntdev_grant_ref refs[count];   }                                  (16)
 *   }  (sizeof 24: refs[1])                      struct ioctl_gntdev_grant_ref { __u32 domid @0; __u32 ref @4; } (8)
 *
 *   struct ioctl_gntdev_set_max_grants { __u32 count @0; }                                (4)
 *   struct ioctl_gntdev_unmap_notify { __u64 index @0; __u32 action @8; __u32 event_channel_port @12; }  (16)
 * </pre>
 */
public final class GntdevDescriptor {
    public static final String DEVICE = "/dev/xen/gntdev";

    public static final int GRANT_REF_SIZE = 8;
    public static final int GRANT_REF_DOMID_OFFSET = 0;
    public static final int GRANT_REF_REF_OFFSET = 4;

    public static final int MAP_GRANT_REF_SIZE = 24;
    public static final int MAP_GRANT_REF_COUNT_OFFSET = 0;
    public static final int MAP_GRANT_REF_INDEX_OFFSET = 8;
    public static final int MAP_GRANT_REF_REFS_OFFSET = 16;

    public static final int UNMAP_GRANT_REF_SIZE = 16;
    public static final int UNMAP_GRANT_REF_INDEX_OFFSET = 0;
    public static final int UNMAP_GRANT_REF_COUNT_OFFSET = 8;

    public static final int SET_MAX_GRANTS_SIZE = 4;
    public static final int SET_MAX_GRANTS_COUNT_OFFSET = 0;

    public static final int UNMAP_NOTIFY_SIZE = 16;
    public static final int UNMAP_NOTIFY_INDEX_OFFSET = 0;
    public static final int UNMAP_NOTIFY_ACTION_OFFSET = 8;
    public static final int UNMAP_NOTIFY_EVENT_CHANNEL_PORT_OFFSET = 12;

    public static final long IOCTL_GNTDEV_MAP_GRANT_REF = _IOC(_IOC_NONE, 'G', 0, MAP_GRANT_REF_SIZE);
    public static final long IOCTL_GNTDEV_UNMAP_GRANT_REF = _IOC(_IOC_NONE, 'G', 1, UNMAP_GRANT_REF_SIZE);
    public static final long IOCTL_GNTDEV_SET_MAX_GRANTS = _IOC(_IOC_NONE, 'G', 3, SET_MAX_GRANTS_SIZE);
    public static final long IOCTL_GNTDEV_SET_UNMAP_NOTIFY = _IOC(_IOC_NONE, 'G', 7, UNMAP_NOTIFY_SIZE);
    public static final long IOCTL_GNTDEV_GRANT_COPY =
            _IOC(_IOC_NONE, 'G', 8, GrantCopySegmentDescriptor.IOCTL_GNTDEV_GRANT_COPY_SIZE);

    private GntdevDescriptor() {
    }
}
