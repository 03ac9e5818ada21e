package io.jtap.xen;

import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Which device directories below a backend root ({@code /local/domain/<self>/backend/<kind>}) a watch event named
 * itself since the service last looked: the keys ({@code <domid>/<devid>}, as listed) whose directory may have been
 * removed and written afresh between two rescans. xenstored fires an event naming a directory for its creation and
 * its removal (and a write of the directory node itself), not for writes below it, so a service asks only the devices
 * of these keys whether their directory is still theirs ({@link BackendClaim#superseded}; Linux:
 * {@code xenbus_dev_changed} on the event's path), and children's events never restart a device.
 *
 * <p>Threads: {@link #note} on the watch's delivery thread, {@link #drain} on the service's rescanning thread.
 */
public final class BackendDirectoryEvents {
    private final String root;
    /**
     * Paths relative to {@link #root} ({@code ""}, {@code <domid>} or {@code <domid>/<devid>}) that an event named
     * exactly, not yet drained.
     */
    private final Set<String> touched = ConcurrentHashMap.newKeySet();

    /** @param root the watched backend root, e.g. {@code /local/domain/0/backend/vif} */
    public BackendDirectoryEvents(String root) {
        this.root = root;
    }

    /**
     * Notes the path of a watch event on the root: the root itself, a domain's directory or a device's directory is
     * kept; anything deeper (a device's own nodes) is not.
     */
    public void note(String path) {
        String key = keyOrNull(path);
        if (key != null) {
            touched.add(key);
        }
    }

    /** The paths noted since the last drain, for {@link #covers}; later events are kept for the next drain. */
    public Set<String> drain() {
        Set<String> drained = new HashSet<>();
        for (String t : List.copyOf(touched)) {
            touched.remove(t);
            drained.add(t);
        }
        return drained;
    }

    /**
     * Whether an event in {@code drained} named the device directory {@code key} ({@code <domid>/<devid>}) or one of
     * its ancestors up to the root (whose removal removes the device's directory too).
     */
    public static boolean covers(Set<String> drained, String key) {
        for (String t : drained) {
            if (t.isEmpty() || key.equals(t) || key.startsWith(t + "/")) {
                return true;
            }
        }
        return false;
    }

    /**
     * For an event path at most two levels below the root, the path relative to it ({@code ""} for the root itself);
     * null for anything deeper or outside.
     */
    private String keyOrNull(String path) {
        if (path.equals(root)) {
            return "";
        }
        if (!path.startsWith(root + "/")) {
            return null;
        }
        String rest = path.substring(root.length() + 1);
        return rest.chars().filter(c -> c == '/').count() <= 1 ? rest : null;
    }
}
