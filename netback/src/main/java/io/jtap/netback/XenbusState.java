package io.jtap.netback;

/** Xen {@code io/xenbus.h}: {@code enum xenbus_state}, the value of a device's {@code state} node. */
public enum XenbusState {
    Unknown, Initialising, InitWait, Initialised, Connected, Closing, Closed, Reconfiguring, Reconfigured;

    /** The decimal form xenstore holds. */
    public String value() {
        return Integer.toString(ordinal());
    }

    /** Parses a {@code state} node; a missing, empty or unknown value is {@link #Unknown}. */
    public static XenbusState parse(String text) {
        if (text == null) {
            return Unknown;
        }
        try {
            int v = Integer.parseInt(text.trim());
            return v >= 0 && v < values().length ? values()[v] : Unknown;
        } catch (NumberFormatException e) {
            return Unknown;
        }
    }
}
