package io.jtap.testkit.blkfront;

import io.jtap.xen.XenStore;
import io.jtap.xen.XenStoreAccess;
import io.jtap.xen.XenStorePermission;

import java.io.IOException;
import java.util.List;

/**
 * Plays the toolstack (libxl) for a virtual block device: writes the backend directory
 * {@code /local/domain/<backend>/backend/<kind>/<domid>/<devid>} and the frontend directory
 * {@code /local/domain/<domid>/device/vbd/<devid>} with the nodes libxl writes, in <em>one</em> transaction, each
 * directory's permissions set before its children are written (backend {@code n<backend>,r<domid>}, frontend
 * {@code n<domid>,r<backend>}), as blkfront would otherwise race the backend's InitWait (see xen-testbed.md).
 */
public final class SimulatedToolstack {
    private SimulatedToolstack() {
    }

    /** The backend directory of a device. */
    public static String backendPath(int backendDomid, String kind, int domid, int devid) {
        return "/local/domain/" + backendDomid + "/backend/" + kind + "/" + domid + "/" + devid;
    }

    /** The frontend directory of a device. */
    public static String frontendPath(int domid, int devid) {
        return "/local/domain/" + domid + "/device/vbd/" + devid;
    }

    /**
     * Creates both directories of a disk, as {@code xl block-attach} does.
     *
     * @param xs         a connection as the backend's domain (dom0)
     * @param params     e.g. {@code qcow2:/var/lib/jtap/disk.qcow2} or a bare path (raw)
     * @param mode       "w" or "r"
     * @param deviceType "disk" or "cdrom"
     * @return the backend directory
     */
    public static String addVbd(XenStore xs, int backendDomid, String kind, int domid, int devid, String params,
                                String mode, String deviceType) throws IOException {
        xs.transaction(tx -> writeVbd(tx, backendDomid, kind, domid, devid, params, mode, deviceType));
        return backendPath(backendDomid, kind, domid, devid);
    }

    /**
     * The writes of {@link #addVbd}, for a caller that makes them in its own transaction (for example one that also
     * removes the device's previous directories).
     *
     * @return the backend directory
     */
    public static String writeVbd(XenStoreAccess tx, int backendDomid, String kind, int domid, int devid,
                                  String params, String mode, String deviceType) throws IOException {
        String be = backendPath(backendDomid, kind, domid, devid);
        String fe = frontendPath(domid, devid);
        tx.mkdir(be);
        tx.setPermissions(be, List.of(XenStorePermission.parse("n" + backendDomid),
                XenStorePermission.parse("r" + domid)));
        tx.write(be + "/frontend", fe);
        tx.write(be + "/frontend-id", Integer.toString(domid));
        tx.write(be + "/online", "1");
        tx.write(be + "/removable", "0");
        tx.write(be + "/bootable", "1");
        tx.write(be + "/state", "1");
        tx.write(be + "/dev", "xvd" + (char) ('a' + ((devid >> 4) & 0xf)));
        tx.write(be + "/type", "phy");
        tx.write(be + "/mode", mode);
        tx.write(be + "/device-type", deviceType);
        tx.write(be + "/params", params);
        tx.write(be + "/discard-enable", "1");
        tx.mkdir(fe);
        tx.setPermissions(fe, List.of(XenStorePermission.parse("n" + domid),
                XenStorePermission.parse("r" + backendDomid)));
        tx.write(fe + "/backend", be);
        tx.write(fe + "/backend-id", Integer.toString(backendDomid));
        tx.write(fe + "/state", "1");
        tx.write(fe + "/virtual-device", Integer.toString(devid));
        tx.write(fe + "/device-type", deviceType);
        return be;
    }

    /** {@link #addVbd} with backend dom0 and kind "vbd". */
    public static String addVbd(XenStore xs, int domid, int devid, String params, String mode, String deviceType)
            throws IOException {
        return addVbd(xs, 0, "vbd", domid, devid, params, mode, deviceType);
    }

    /** Asks the backend to let go of the device, as {@code xl block-detach} starts doing. */
    public static void setOffline(XenStore xs, String backendPath) throws IOException {
        xs.write(backendPath + "/online", "0");
    }

    /** Removes both directories, as libxl does once the backend reached Closed. */
    public static void removeVbd(XenStore xs, String backendPath, int domid, int devid) throws IOException {
        xs.transaction(tx -> {
            tx.rm(backendPath);
            tx.rm(frontendPath(domid, devid));
            return null;
        });
    }
}
