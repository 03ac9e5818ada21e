package io.jtap.xen.sim;

import io.jtap.xen.GrantMapping;
import io.jtap.xen.GrantTable;
import io.jtap.xen.linux.LibC;
import io.jtap.xen.linux.Syscalls;
import io.jtap.xen.linux.Syscalls.ErrnoException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import com.sun.jna.Pointer;

/** A mapping made by {@link SimulatedGrantTable}; see there. State guarded by the world's lock. */
final class SimulatedGrantMapping implements GrantMapping {
    private final SimulatedGrantTable table;
    private final SimulatedDomain granter;
    private final int[] refs;
    private final boolean writable;
    private final long address;
    private final ByteBuffer buffer;
    private final Object lock;
    private boolean closed;
    private int notifyAction;
    private int notifyOffset;
    private int notifyPort;

    SimulatedGrantMapping(SimulatedGrantTable table, SimulatedDomain granter, int[] refs, boolean writable,
            long address, ByteBuffer buffer) {
        this.table = table;
        this.granter = granter;
        this.refs = refs;
        this.writable = writable;
        this.address = address;
        this.buffer = buffer;
        this.lock = granter.xen().lock;
    }

    @Override
    public ByteBuffer buffer() {
        synchronized (lock) {
            if (closed) {
                throw new IllegalStateException("grant mapping is closed: " + this);
            }
            return buffer;
        }
    }

    @Override
    public int pages() {
        return refs.length;
    }

    @Override
    public int domid() {
        return granter.domid();
    }

    @Override
    public int[] refs() {
        return refs.clone();
    }

    @Override
    public boolean writable() {
        return writable;
    }

    /** Validates as gntdev's {@code IOCTL_GNTDEV_SET_UNMAP_NOTIFY} does. */
    @Override
    public void setUnmapNotify(int action, int offset, int port) throws IOException {
        String call = "IOCTL_GNTDEV_SET_UNMAP_NOTIFY(action=" + action + ", offset=" + offset + ", port=" + port
                + ") [simulated dom" + table.domain().domid() + "]";
        if ((action & ~(GrantTable.UNMAP_NOTIFY_CLEAR_BYTE | GrantTable.UNMAP_NOTIFY_SEND_EVENT)) != 0) {
            throw new ErrnoException(call, LibC.EINVAL);
        }
        synchronized (lock) {
            if (closed || offset < 0 || offset >= refs.length * GrantTable.PAGE_SIZE) {
                throw new ErrnoException(call, LibC.ENOENT);
            }
            if ((action & GrantTable.UNMAP_NOTIFY_CLEAR_BYTE) != 0 && !writable) {
                throw new ErrnoException(call, LibC.EINVAL);
            }
            if ((action & GrantTable.UNMAP_NOTIFY_SEND_EVENT) != 0) {
                SimulatedPort p = table.domain().port(port);
                if (p == null) {
                    throw new ErrnoException(call, LibC.EINVAL);
                }
            }
            notifyAction = action;
            notifyOffset = offset;
            notifyPort = port;
        }
    }

    /** Clears the notify byte, unmaps, releases the grants, then sends the notify event (gntdev's order). */
    @Override
    public void close() throws IOException {
        synchronized (lock) {
            if (closed) {
                return;
            }
            closed = true;
            if ((notifyAction & GrantTable.UNMAP_NOTIFY_CLEAR_BYTE) != 0) {
                buffer.put(notifyOffset, (byte) 0);
            }
            try {
                Syscalls.munmap(new Pointer(address), (long) refs.length * GrantTable.PAGE_SIZE);
            } finally {
                boolean liveGranter = granter.alive();
                for (int ref : refs) {
                    if (liveGranter) {
                        granter.unpin(ref, writable);
                    }
                }
                table.unmapped(this);
                if ((notifyAction & GrantTable.UNMAP_NOTIFY_SEND_EVENT) != 0) {
                    SimulatedPort p = table.domain().port(notifyPort);
                    if (p != null) {
                        SimulatedEventChannels kick = SimulatedEventChannels.send(granter.xen(), table.domain(), p);
                        if (kick != null) {
                            kick.kick();
                        }
                    }
                }
            }
        }
    }

    @Override
    public String toString() {
        return "mapper=dom" + table.domain().domid() + ", domid=" + granter.domid() + ", refs=" + Arrays.toString(refs)
                + ", writable=" + writable;
    }
}
