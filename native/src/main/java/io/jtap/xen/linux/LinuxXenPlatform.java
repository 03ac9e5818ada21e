package io.jtap.xen.linux;

import io.jtap.xen.Availability;
import io.jtap.xen.EventChannels;
import io.jtap.xen.GrantTable;
import io.jtap.xen.XenPlatform;
import io.jtap.xen.XenStore;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * Real Xen through Linux's devices: {@code /dev/xen/gntdev}, {@code /dev/xen/evtchn}, and xenstore over
 * {@code /dev/xen/xenbus} or xenstored's socket. Nothing here falls back to the simulation: {@link #open()} fails with
 * every facility's reason when one is missing.
 */
public final class LinuxXenPlatform implements XenPlatform {
    private final int domid;

    private LinuxXenPlatform(int domid) {
        this.domid = domid;
    }

    /** Whether all three facilities can be used here; the cause names each one that cannot. */
    public static Availability availability() {
        List<String> missing = new ArrayList<>();
        addIfMissing(missing, "grant table", LinuxGrantTable.availability());
        addIfMissing(missing, "event channels", LinuxEventChannels.availability());
        addIfMissing(missing, "xenstore", WireXenStore.availability());
        return missing.isEmpty() ? Availability.available()
                : Availability.unavailable("real Xen is unavailable: " + String.join("; ", missing));
    }

    private static void addIfMissing(List<String> missing, String facility, Availability availability) {
        if (!availability.isAvailable()) {
            missing.add(facility + ": " + availability.unavailabilityCause().getMessage());
        }
    }

    /**
     * Opens the real platform, learning this domain's id from xenstore (the relative node {@code domid}, which
     * resolves under the connection's own {@code /local/domain/<id>}).
     *
     * @throws UnsatisfiedLinkError naming every missing facility
     */
    public static LinuxXenPlatform open() throws IOException {
        availability().ensureAvailability("Linux Xen platform");
        try (XenStore store = WireXenStore.openDefault()) {
            String value = store.readString("domid").orElseThrow(() -> new IOException(
                    "cannot learn this domain's id: xenstore node 'domid' is missing"));
            return new LinuxXenPlatform(parseDomid(value));
        }
    }

    /** Opens the real platform acting as {@code domid}, without asking xenstore. */
    public static LinuxXenPlatform open(int domid) {
        availability().ensureAvailability("Linux Xen platform");
        return new LinuxXenPlatform(domid);
    }

    static int parseDomid(String value) throws IOException {
        try {
            int domid = Integer.parseInt(value.trim());
            if (domid < 0 || domid >= 0x7ff0) {
                throw new NumberFormatException("out of range");
            }
            return domid;
        } catch (NumberFormatException e) {
            throw new IOException("bad domid in xenstore: value=" + value, e);
        }
    }

    @Override
    public int domid() {
        return domid;
    }

    @Override
    public GrantTable openGrantTable() throws IOException {
        return LinuxGrantTable.open();
    }

    @Override
    public EventChannels openEventChannels() throws IOException {
        return LinuxEventChannels.open();
    }

    @Override
    public XenStore openXenStore() throws IOException {
        return WireXenStore.openDefault();
    }

    @Override
    public String describe() {
        return "Linux Xen (/dev/xen), domid=" + domid;
    }
}
