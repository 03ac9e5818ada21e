package io.jtap.netback;

import io.jtap.xen.BadXenStoreValueException;
import io.jtap.xen.XenStoreAccess;
import java.io.IOException;
import java.util.Optional;

/**
 * What the toolstack wrote into the vif's backend directory: the frontend's location, {@code handle},
 * {@code vifname}, {@code mac} and {@code rate}. Immutable.
 *
 * @param frontend     the frontend directory ({@code frontend})
 * @param frontendId   the guest's domid ({@code frontend-id})
 * @param handle       the device handle ({@code handle}, defaults to the devid)
 * @param tapName      {@code vifname}, or {@code vif<domid>.<handle>}
 * @param mac          the guest's MAC as 48 bits ({@code mac}), or -1 when not given
 * @param creditBytes  {@code rate} bytes per window, {@code Long.MAX_VALUE} when unlimited
 * @param creditUsec   {@code rate} window in microseconds, 0 when unlimited
 * @param mtu          {@code mtu} (what netfront also reads from here), 1500 when not given; netback sets it on the TAP
 *                     ({@code SIOCSIFMTU}) when it creates it and when it changed at a reconnect
 */
public record BackendConfig(String frontend, int frontendId, int handle, String tapName, long mac, long creditBytes,
        long creditUsec, int mtu) {
    /** Ethernet's default MTU, Linux's {@code ETH_DATA_LEN}. */
    static final int ETH_DATA_LEN = 1500;
    /** IPv4's minimum MTU; the maximum is the largest IP packet. */
    static final int MIN_MTU = 68;

    static BackendConfig read(XenStoreAccess xs, String backend, int domid, int devid) throws IOException {
        Optional<String> frontend = xs.readString(backend + "/frontend");
        if (frontend.isEmpty() || !frontend.get().startsWith("/")) {
            throw new BadXenStoreValueException(backend + "/frontend", frontend.orElse(null),
                    "needs an absolute path");
        }
        long frontendId = FrontendConfig.readRequired(xs, backend + "/frontend-id", 0x7fef);
        if (frontendId != domid) {
            throw new BadXenStoreValueException(backend + "/frontend-id", Long.toString(frontendId),
                    "differs from the domid in the backend path " + domid);
        }
        int handle = (int) FrontendConfig.readUnsigned(xs, backend + "/handle", devid, 0xffff);
        String tapName = xs.readString(backend + "/vifname").map(String::trim).filter(s -> !s.isEmpty())
                .orElse("vif" + domid + "." + handle);
        if (tapName.length() > 15 || tapName.contains("/") || tapName.contains(" ")) {
            throw new BadXenStoreValueException(backend + "/vifname", tapName, "not a valid interface name");
        }
        long mac = -1;
        Optional<String> macText = xs.readString(backend + "/mac");
        if (macText.isPresent()) {
            mac = parseMac(backend + "/mac", macText.get());
        }
        long creditBytes = Long.MAX_VALUE;
        long creditUsec = 0;
        Optional<String> rate = xs.readString(backend + "/rate");
        if (rate.isPresent()) {
            long[] parsed = parseRate(backend + "/rate", rate.get());
            creditBytes = parsed[0];
            creditUsec = parsed[1];
        }
        int mtu = (int) FrontendConfig.readUnsigned(xs, backend + "/mtu", ETH_DATA_LEN, 65535);
        if (mtu < MIN_MTU) {
            throw new BadXenStoreValueException(backend + "/mtu", Integer.toString(mtu),
                    "below the minimum " + MIN_MTU);
        }
        return new BackendConfig(frontend.get(), domid, handle, tapName, mac, creditBytes, creditUsec, mtu);
    }

    /** "xx:xx:xx:xx:xx:xx", as Linux's {@code xen_net_read_mac}. */
    static long parseMac(String path, String text) throws BadXenStoreValueException {
        String[] parts = text.trim().split(":");
        if (parts.length != 6) {
            throw new BadXenStoreValueException(path, text, "a MAC address needs six colon-separated bytes");
        }
        long mac = 0;
        for (String p : parts) {
            if (p.length() != 2) {
                throw new BadXenStoreValueException(path, text, "a MAC address byte needs two hex digits");
            }
            try {
                mac = mac << 8 | Integer.parseInt(p, 16);
            } catch (NumberFormatException e) {
                throw new BadXenStoreValueException(path, text, "a MAC address byte needs two hex digits");
            }
        }
        return mac;
    }

    /**
     * "bytes,usec" as Linux's {@code xen_net_read_rate} reads it ({@code "%llu,%lu"}). Linux ignores a malformed
     * value with a warning and runs unlimited; jtap refuses it, so that a typo never silently lifts a limit.
     */
    static long[] parseRate(String path, String text) throws BadXenStoreValueException {
        String[] parts = text.trim().split(",", -1);
        if (parts.length != 2) {
            throw new BadXenStoreValueException(path, text, "rate must be \"bytes,usec\"");
        }
        long bytes = FrontendConfig.parseUnsigned(path, parts[0], Long.MAX_VALUE - 1);
        long usec = FrontendConfig.parseUnsigned(path, parts[1], 0xffff_ffffL);
        if (bytes == 0 || usec == 0) {
            throw new BadXenStoreValueException(path, text, "rate needs positive bytes and usec");
        }
        return new long[] {bytes, usec};
    }
}
