package io.jtap.daemon;

import io.jtap.xen.XenStore;
import io.jtap.xen.XenStoreAccess;
import io.jtap.xen.XenStorePermission;
import io.jtap.xen.XenbusState;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/**
 * The toolstack's part of a virtual block device, as libxl does it for {@code xl block-attach} and
 * {@code xl block-detach} ({@code libxl__device_generic_add}, {@code libxl__initiate_device_generic_remove},
 * {@code libxl__device_destroy}): both xenstore directories written in one transaction, waiting for the backend's
 * {@code state}, both directories removed in one transaction. Used by {@code jtap attach} and {@code jtap detach}.
 *
 * <p>The nodes are the ones a real libxl (Xen 4.17) writes for a disk, less what its hotplug script adds
 * ({@code script}, {@code physical-device-path}, {@code hotplug-status}); nothing the guest can write is ever read
 * here, so a guest cannot point a detach at another device.
 *
 * <p>Stateless; the caller owns the xenstore connection, which must act as a privileged domain (dom0).
 */
final class VbdToolstack {
    /** How often a wait re-reads the state even without a watch event. */
    private static final long POLL_NS = TimeUnit.MILLISECONDS.toNanos(500);

    private VbdToolstack() {
    }

    /** A toolstack-side refusal or failure, with the message the command prints. */
    static final class ToolstackException extends IOException {
        private static final long serialVersionUID = 1L;

        ToolstackException(String message) {
            super(message);
        }
    }

    /**
     * Where one disk's directories are.
     *
     * @param backendDomid the domain that serves it (where {@code jtap serve} runs)
     * @param kind         the backend kind, e.g. "vbd"
     * @param domid        the guest
     * @param vdev         the guest's virtual device
     */
    record Device(int backendDomid, String kind, int domid, Vdev vdev) {
        String backendPath() {
            return backendParent() + "/" + vdev.devid();
        }

        String frontendPath() {
            return frontendParent() + "/" + vdev.devid();
        }

        /** {@code /local/domain/<backend>/backend/<kind>/<domid>}, removed with the last of the guest's devices. */
        String backendParent() {
            return "/local/domain/" + backendDomid + "/backend/" + kind + "/" + domid;
        }

        /** {@code /local/domain/<domid>/device/vbd}, removed when it holds no device any more. */
        String frontendParent() {
            return "/local/domain/" + domid + "/device/vbd";
        }
    }

    /**
     * What the backend reads: {@code params}, {@code mode}, {@code device-type}.
     *
     * @param params     {@code format:/absolute/path}
     * @param mode       "r" or "w"
     * @param deviceType "disk" or "cdrom"
     */
    record Disk(String params, String mode, String deviceType) {
    }

    /**
     * Writes both directories in one transaction (redone on EAGAIN): the frontend's owned by the guest and readable
     * by the backend domain, the backend's owned by the backend domain and readable by the guest, each directory's
     * permissions set before its nodes are written so that the nodes inherit them. Refuses, writing nothing, when the
     * guest or the backend domain does not exist or either directory does.
     */
    static void create(XenStore xs, Device d, Disk disk) throws IOException {
        String be = d.backendPath();
        String fe = d.frontendPath();
        xs.transaction(tx -> {
            if (tx.read("/local/domain/" + d.domid()).isEmpty()) {
                throw new ToolstackException("no such domain: domid=" + d.domid() + " (/local/domain/" + d.domid()
                        + " is missing)");
            }
            if (tx.read("/local/domain/" + d.backendDomid()).isEmpty()) {
                throw new ToolstackException("no such backend domain: backend-domid=" + d.backendDomid()
                        + " (/local/domain/" + d.backendDomid() + " is missing)");
            }
            for (String dir : List.of(fe, be)) {
                if (tx.read(dir).isPresent()) {
                    throw new ToolstackException("device exists: domid=" + d.domid() + ", vdev=" + d.vdev()
                            + ", path=" + dir);
                }
            }
            tx.mkdir(fe);
            tx.setPermissions(fe, List.of(XenStorePermission.of(d.domid(), XenStorePermission.Access.NONE),
                    XenStorePermission.of(d.backendDomid(), XenStorePermission.Access.READ)));
            tx.write(fe + "/backend", be);
            tx.write(fe + "/backend-id", Integer.toString(d.backendDomid()));
            tx.write(fe + "/virtual-device", Integer.toString(d.vdev().devid()));
            tx.write(fe + "/device-type", disk.deviceType());
            tx.write(fe + "/trusted", "1");
            tx.write(fe + "/state", XenbusState.Initialising.toXenStore());

            tx.mkdir(be);
            tx.setPermissions(be, List.of(XenStorePermission.of(d.backendDomid(), XenStorePermission.Access.NONE),
                    XenStorePermission.of(d.domid(), XenStorePermission.Access.READ)));
            tx.write(be + "/frontend", fe);
            tx.write(be + "/frontend-id", Integer.toString(d.domid()));
            tx.write(be + "/online", "1");
            tx.write(be + "/removable", disk.deviceType().equals("cdrom") ? "1" : "0");
            tx.write(be + "/bootable", "1");
            tx.write(be + "/dev", d.vdev().name());
            tx.write(be + "/type", "phy");
            tx.write(be + "/mode", disk.mode());
            tx.write(be + "/device-type", disk.deviceType());
            tx.write(be + "/params", disk.params());
            // libxl's default: discard on for a writable disk (libxl__device_disk_setdefault).
            tx.write(be + "/discard-enable", disk.mode().equals("w") ? "1" : "0");
            tx.write(be + "/specification", "xen");
            tx.write(be + "/state", XenbusState.Initialising.toXenStore());
            return null;
        });
    }

    /**
     * What a wait saw last.
     *
     * @param state   the backend's state, or empty when its {@code state} node (its directory) was gone
     * @param reached whether the wait ended because the state matched
     * @param waited  how long the wait took
     */
    record Observed(Optional<XenbusState> state, boolean reached, Duration waited) {
        String describe() {
            return state.map(XenbusState::toString).orElse("gone");
        }
    }

    /**
     * Waits until the backend's {@code state} satisfies {@code done}, its state node disappears, or {@code timeout}
     * passes; driven by a watch on the node, with a re-read every 500 ms as well.
     */
    static Observed awaitBackend(XenStore xs, Device d, Predicate<XenbusState> done, Duration timeout)
            throws IOException {
        String path = d.backendPath() + "/state";
        Semaphore changed = new Semaphore(0);
        long start = System.nanoTime();
        long deadline = start + timeout.toNanos();
        try (XenStore.Watch w = xs.watch(path, (p, token) -> changed.release())) {
            while (true) {
                Optional<String> text = xs.readString(path);
                Duration waited = Duration.ofNanos(System.nanoTime() - start);
                if (text.isEmpty()) {
                    return new Observed(Optional.empty(), false, waited);
                }
                XenbusState s = XenbusState.parse(text.get());
                if (done.test(s)) {
                    return new Observed(Optional.of(s), true, waited);
                }
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return new Observed(Optional.of(s), false, waited);
                }
                if (changed.tryAcquire(Math.min(left, POLL_NS), TimeUnit.NANOSECONDS)) {
                    changed.drainPermits();
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while waiting for the backend: path=" + path, e);
        }
    }

    /** The backend's {@code state} now, or empty when the node (the directory) does not exist. */
    static Optional<XenbusState> backendState(XenStoreAccess xs, Device d) throws IOException {
        return xs.readString(d.backendPath() + "/state").map(XenbusState::parse);
    }

    /**
     * Asks the backend to let go, as libxl does: {@code online} = 0 and {@code state} = Closing in one transaction,
     * written only while the backend directory exists (so a directory removed meanwhile is not re-created).
     *
     * @return whether the directory was there
     */
    static boolean setOffline(XenStore xs, Device d) throws IOException {
        String be = d.backendPath();
        return xs.transaction(tx -> {
            if (tx.read(be + "/state").isEmpty()) {
                return false;
            }
            tx.write(be + "/online", "0");
            tx.write(be + "/state", XenbusState.Closing.toXenStore());
            return true;
        });
    }

    /**
     * Removes both directories in one transaction (each only if it exists: the guest may be gone), then the backend
     * parent {@code backend/<kind>/<domid>} and the frontend parent {@code device/vbd} if they are left empty.
     *
     * @return the device directories that were there and are removed
     */
    static List<String> remove(XenStore xs, Device d) throws IOException {
        return xs.transaction(tx -> {
            List<String> removed = new ArrayList<>();
            for (String dir : List.of(d.frontendPath(), d.backendPath())) {
                if (tx.read(dir).isPresent()) {
                    tx.rm(dir);
                    removed.add(dir);
                }
            }
            for (String parent : List.of(d.backendParent(), d.frontendParent())) {
                if (tx.read(parent).isPresent() && tx.directory(parent).isEmpty()) {
                    tx.rm(parent);
                }
            }
            return removed;
        });
    }

    /** Whether either directory of the device exists. */
    static boolean exists(XenStoreAccess xs, Device d) throws IOException {
        return xs.read(d.frontendPath()).isPresent() || xs.read(d.backendPath()).isPresent();
    }
}
