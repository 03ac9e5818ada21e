package io.jtap.xen;

import java.io.IOException;

/**
 * A grant operation the hypervisor (or the simulation acting as it) refused.
 *
 * <p>{@link #errno()} is what the Linux gntdev device returns to userspace (a refused map fails {@code mmap} with
 * EINVAL); {@link #status()} is the {@code GNTST_*} code when the implementation knows it. The real device does not
 * pass Xen's per-ref status up through {@code mmap}, so {@code LinuxGrantTable} reports
 * {@link GrantStatus#GNTST_general_error}; the simulation reports the code Xen would have produced.
 */
public final class GrantTableException extends IOException {
    private static final long serialVersionUID = 1L;
    private final int errno;
    private final short status;

    public GrantTableException(String message, int errno, short status) {
        super(message + ", errno=" + errno + ", status=" + GrantStatus.name(status));
        this.errno = errno;
        this.status = status;
    }

    public GrantTableException(String message, int errno, short status, Throwable cause) {
        this(message, errno, status);
        initCause(cause);
    }

    /** The errno userspace sees (EINVAL for a refused map). */
    public int errno() {
        return errno;
    }

    /** The {@code GNTST_*} status, {@link GrantStatus#GNTST_general_error} when unknown. */
    public short status() {
        return status;
    }
}
