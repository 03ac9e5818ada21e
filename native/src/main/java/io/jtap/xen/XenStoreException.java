package io.jtap.xen;

import java.io.IOException;

/**
 * A xenstore request failed with one of xenstored's error names ({@code xsd_errors} in {@code xen/io/xs_wire.h}:
 * ENOENT, EACCES, EAGAIN, EINVAL, EEXIST, E2BIG, ...). Every implementation reports the same name for the same
 * failure, so callers branch on {@link #error()}, never on the message.
 *
 * <p>Message form: {@code xenstore read failed: path=/local/domain/5/x, error=ENOENT}.
 */
public class XenStoreException extends IOException {
    private static final long serialVersionUID = 1L;

    public static final String ENOENT = "ENOENT";
    public static final String EACCES = "EACCES";
    public static final String EAGAIN = "EAGAIN";
    public static final String EINVAL = "EINVAL";
    public static final String EEXIST = "EEXIST";
    public static final String E2BIG = "E2BIG";
    public static final String EPERM = "EPERM";
    public static final String EIO = "EIO";

    private final String operation;
    private final String path;
    private final String error;

    /**
     * @param operation the request, e.g. "read", "transaction commit"
     * @param path the node (may be {@code null} for requests without one)
     * @param error xenstored's error name, e.g. {@link #ENOENT}
     * @param detail extra context appended to the message, or {@code null}
     */
    public XenStoreException(String operation, String path, String error, String detail) {
        super("xenstore " + operation + " failed: " + (path == null ? "" : "path=" + path + ", ") + "error=" + error
                + (detail == null ? "" : ", " + detail));
        this.operation = operation;
        this.path = path;
        this.error = error;
    }

    public XenStoreException(String operation, String path, String error) {
        this(operation, path, error, null);
    }

    /** xenstored's error name, e.g. "ENOENT". */
    public String error() {
        return error;
    }

    public String operation() {
        return operation;
    }

    /** The node the request named, or {@code null}. */
    public String path() {
        return path;
    }

    public boolean is(String errorName) {
        return error.equals(errorName);
    }
}
