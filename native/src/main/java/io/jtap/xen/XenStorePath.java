package io.jtap.xen;

/**
 * xenstore path rules, as C xenstored 4.17 enforces them ({@code is_valid_nodename}), so that every implementation
 * rejects the same paths with {@link XenStoreException#EINVAL} before anything reaches the store.
 *
 * <ul>
 *   <li>An absolute path starts with '/'; a relative path is relative to the connection's home,
 *       {@code /local/domain/<domid>} ({@link #home(int)}).</li>
 *   <li>Characters: ASCII letters, digits and {@code - / _ @}. No empty component ("//"), no trailing '/' except the
 *       root "/" itself.</li>
 *   <li>Length: at most {@link #XENSTORE_ABS_PATH_MAX} characters absolute; and, measured after stripping the
 *       connection's own home prefix, at most {@link #XENSTORE_REL_PATH_MAX} (xenstored's default path-max quota,
 *       which it applies to dom0 too).</li>
 *   <li>Watch paths may also be the special names {@code @introduceDomain} and {@code @releaseDomain}.</li>
 * </ul>
 */
public final class XenStorePath {
    /** {@code XENSTORE_ABS_PATH_MAX} in xen/io/xs_wire.h. */
    public static final int XENSTORE_ABS_PATH_MAX = 3072;
    /** {@code XENSTORE_REL_PATH_MAX} in xen/io/xs_wire.h; also xenstored's default per-connection path-max quota. */
    public static final int XENSTORE_REL_PATH_MAX = 2048;
    public static final String INTRODUCE_DOMAIN = "@introduceDomain";
    public static final String RELEASE_DOMAIN = "@releaseDomain";

    private XenStorePath() {
    }

    /** The home of a domain's relative paths: {@code /local/domain/<domid>}. */
    public static String home(int domid) {
        return "/local/domain/" + domid;
    }

    public static boolean isSpecial(String path) {
        return INTRODUCE_DOMAIN.equals(path) || RELEASE_DOMAIN.equals(path);
    }

    /**
     * Checks the syntax of a node path (absolute or relative) without knowing the connection.
     *
     * @throws XenStoreException EINVAL naming {@code operation} when the path is malformed or too long
     */
    public static void check(String operation, String path) throws XenStoreException {
        String problem = problem(path);
        if (problem != null) {
            throw new XenStoreException(operation, path, XenStoreException.EINVAL, problem);
        }
    }

    /** Like {@link #check} but also accepts {@code @introduceDomain} / {@code @releaseDomain}. */
    public static void checkWatch(String operation, String path) throws XenStoreException {
        if (!isSpecial(path)) {
            check(operation, path);
        }
    }

    /**
     * Resolves {@code path} for a connection of {@code domid} and checks it, including the path-max quota.
     *
     * @return the absolute path
     * @throws XenStoreException EINVAL when malformed or too long
     */
    public static String canonical(String operation, String path, int domid) throws XenStoreException {
        check(operation, path);
        String home = home(domid);
        String absolute = path.startsWith("/") ? path : home + "/" + path;
        int quotaLength = absolute.startsWith(home + "/") ? absolute.length() - home.length() - 1 : absolute.length();
        if (absolute.length() > XENSTORE_ABS_PATH_MAX || quotaLength > XENSTORE_REL_PATH_MAX) {
            throw new XenStoreException(operation, path, XenStoreException.EINVAL,
                    "length=" + absolute.length() + " exceeds the path limit");
        }
        return absolute;
    }

    /** The parent of an absolute path other than "/". */
    public static String parent(String absolute) {
        int slash = absolute.lastIndexOf('/');
        return slash == 0 ? "/" : absolute.substring(0, slash);
    }

    /** The last component of an absolute path other than "/". */
    public static String name(String absolute) {
        return absolute.substring(absolute.lastIndexOf('/') + 1);
    }

    /** {@code child} is {@code ancestor} itself or lies below it (xenstored: {@code is_child}). */
    public static boolean isSelfOrBelow(String child, String ancestor) {
        if (ancestor.equals("/")) {
            return child.startsWith("/");
        }
        return child.equals(ancestor) || (child.startsWith(ancestor) && child.charAt(ancestor.length()) == '/');
    }

    private static String problem(String path) {
        if (path == null || path.isEmpty()) {
            return "empty path";
        }
        if (path.length() > XENSTORE_ABS_PATH_MAX) {
            return "length=" + path.length() + " exceeds XENSTORE_ABS_PATH_MAX";
        }
        if (!path.startsWith("/") && path.length() > XENSTORE_REL_PATH_MAX) {
            return "length=" + path.length() + " exceeds XENSTORE_REL_PATH_MAX";
        }
        if (path.equals("/")) {
            return null;
        }
        for (int i = 0; i < path.length(); i++) {
            char c = path.charAt(i);
            boolean ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                    || c == '-' || c == '/' || c == '_' || c == '@';
            if (!ok) {
                return "bad character at index " + i;
            }
        }
        if (path.endsWith("/")) {
            return "trailing '/'";
        }
        if (path.contains("//")) {
            return "empty component";
        }
        return null;
    }
}
