package io.jtap.xen;

/**
 * Whether a real (Linux) Xen facility can be used here, and if not, why (Netty's {@code isAvailable()} /
 * {@code unavailabilityCause()} / {@code ensureAvailability()}). Nothing in jtap falls back to the simulation when a
 * facility is unavailable: callers ask, and fail with the cause.
 */
public final class Availability {
    private static final Availability AVAILABLE = new Availability(null);
    private final Throwable cause;

    private Availability(Throwable cause) {
        this.cause = cause;
    }

    public static Availability available() {
        return AVAILABLE;
    }

    public static Availability unavailable(Throwable cause) {
        if (cause == null) {
            throw new IllegalArgumentException("unavailable needs a cause");
        }
        return new Availability(cause);
    }

    public static Availability unavailable(String what) {
        return unavailable(new UnsupportedOperationException(what));
    }

    public boolean isAvailable() {
        return cause == null;
    }

    /** The reason the facility cannot be used, or {@code null} when it can. */
    public Throwable unavailabilityCause() {
        return cause;
    }

    /** Throws an {@link UnsatisfiedLinkError} carrying the cause when the facility is unavailable. */
    public void ensureAvailability(String facility) {
        if (cause != null) {
            UnsatisfiedLinkError error = new UnsatisfiedLinkError(facility + " is unavailable: " + cause.getMessage());
            error.initCause(cause);
            throw error;
        }
    }

    @Override
    public String toString() {
        return cause == null ? "available" : "unavailable: " + cause.getMessage();
    }
}
