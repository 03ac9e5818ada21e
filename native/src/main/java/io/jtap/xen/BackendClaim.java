package io.jtap.xen;

import java.io.IOException;
import java.lang.System.Logger;
import java.lang.System.Logger.Level;
import java.util.Optional;
import java.util.UUID;

/**
 * A backend device's claim on its backend directory ({@code /local/domain/<self>/backend/<kind>/<domid>/<devid>}), so
 * that the device writes only into the directory it was started for.
 *
 * <p>Why it exists: a toolstack may remove a device's directory and write it afresh at the same path (a detach and an
 * attach of the same devid, even in one transaction). xenstore gives a client no identity for a node, so a device that
 * checked only that its {@code state} node exists (as Linux's {@code xenbus_switch_state} does) took the new directory
 * for its own, went back to InitWait there and served the new frontend with its old configuration. The claim makes an
 * identity: {@link #claim} writes a random instance id into {@link #INSTANCE_NODE} before the device reads its
 * configuration, and every later write goes through {@link #publish}, which checks in the same transaction that the
 * node still holds that id. The toolstack's removal takes the node with it, so a directory written afresh never holds
 * it; a device whose write finds it gone or foreign writes nothing and is {@link #lost()} for good.
 *
 * <p>Threads: {@link #claim} and {@link #publish} on the device's control thread; the getters and
 * {@link #superseded} from any thread.
 */
public final class BackendClaim {
    /**
     * The backend node that names the device the directory belongs to. Documented for operators in the README: a
     * directory without it (written afresh) is a new device's.
     */
    public static final String INSTANCE_NODE = "jtap-instance";
    private static final Logger LOG = System.getLogger("io.jtap.xen");

    private final String backendPath;
    /** The value of {@link #INSTANCE_NODE} this claim writes: unique, also across daemon restarts. */
    private final String instance = UUID.randomUUID().toString();
    private volatile boolean claimed;
    private volatile boolean lost;

    /** The writes {@link #publish} makes inside its transaction. */
    @FunctionalInterface
    public interface Writes {
        void run(XenStore.Transaction tx) throws IOException;
    }

    /** @param backendPath the absolute backend directory, e.g. {@code /local/domain/0/backend/vif/5/0} */
    public BackendClaim(String backendPath) {
        this.backendPath = backendPath;
    }

    /**
     * Takes the directory: writes this claim's instance id into {@link #INSTANCE_NODE} if the directory's
     * {@code state} node is there (a write below a removed directory would re-create it, XS_WRITE makes missing
     * ancestors). A value left by an earlier daemon is overwritten. Call it once, before reading the configuration.
     *
     * @return whether the directory was there and is now this claim's
     */
    public boolean claim(XenStore xs) throws IOException {
        claimed = xs.transaction(tx -> {
            if (tx.read(backendPath + "/state").isEmpty()) {
                return false;
            }
            tx.write(backendPath + "/" + INSTANCE_NODE, instance);
            return true;
        });
        return claimed;
    }

    /**
     * Runs {@code writes} in one transaction if the directory is still this claim's ({@link #INSTANCE_NODE} holds its
     * id), else writes nothing and marks the claim {@link #lost()}. Nothing is written before {@link #claim} succeeded.
     *
     * @return whether the directory was this claim's and the writes were made
     */
    public boolean publish(XenStore xs, Writes writes) throws IOException {
        boolean mine = claimed && xs.transaction(tx -> {
            if (!isMine(tx.readString(backendPath + "/" + INSTANCE_NODE))) {
                return false;
            }
            writes.run(tx);
            return true;
        });
        if (!mine) {
            markLost();
        }
        return mine;
    }

    /**
     * Reads {@link #INSTANCE_NODE}: whether the directory is still this claim's. False (and the claim {@link #lost()})
     * when it never was, is gone or names another device. For a device about to act on what it reads from the
     * directory or its frontend without writing first.
     */
    public boolean holds(XenStoreAccess xs) throws IOException {
        boolean mine = claimed && !lost && isMine(xs.readString(backendPath + "/" + INSTANCE_NODE));
        if (!mine) {
            markLost();
        }
        return mine;
    }

    /**
     * Whether the directory at this path is no longer this claim's: never claimed (gone when the device started, or
     * xenstore failed), lost, or {@link #INSTANCE_NODE} no longer holds this claim's id (removed and written afresh,
     * whether or not the device has noticed yet). A service asks this when a watch event named the directory itself
     * ({@link BackendDirectoryEvents}) and then replaces the device with a new one. Reads only; marks nothing.
     */
    public boolean superseded(XenStoreAccess xs) throws IOException {
        if (!claimed || lost) {
            return true;
        }
        return !isMine(xs.readString(backendPath + "/" + INSTANCE_NODE));
    }

    /** Whether {@link #claim} took the directory. */
    public boolean claimed() {
        return claimed;
    }

    /**
     * Whether a write or a check found the directory gone or no longer this claim's. Final: the device no longer
     * follows its frontend, and its service closes it.
     */
    public boolean lost() {
        return lost;
    }

    /** This claim's value of {@link #INSTANCE_NODE}. */
    public String instance() {
        return instance;
    }

    private boolean isMine(Optional<String> instanceNode) {
        return instanceNode.isPresent() && instanceNode.get().equals(instance);
    }

    private void markLost() {
        boolean first = !lost;
        lost = true;
        if (first && claimed) {
            LOG.log(Level.INFO, "backend directory removed or written afresh, its device is finished: path="
                    + backendPath + ", instance=" + instance);
        }
    }

    @Override
    public String toString() {
        String status = lost ? ", lost" : claimed ? "" : ", unclaimed";
        return "BackendClaim{" + backendPath + ", instance=" + instance + status + "}";
    }
}
