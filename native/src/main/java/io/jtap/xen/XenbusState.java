package io.jtap.xen;

/**
 * The xenbus device states both ends publish in their {@code state} node. Xen: {@code enum xenbus_state},
 * {@code xen/io/xenbus.h}. Shared by every backend's control path.
 */
public enum XenbusState {
    Unknown(0), Initialising(1), InitWait(2), Initialised(3), Connected(4), Closing(5), Closed(6),
    Reconfiguring(7), Reconfigured(8);

    private final int value;

    XenbusState(int value) {
        this.value = value;
    }

    /** The number written to xenstore. */
    public int value() {
        return value;
    }

    /** The {@code state} node's text for this state: its number in decimal. */
    public String toXenStore() {
        return Integer.toString(value);
    }

    /** The state for a xenstore value; {@link #Unknown} for anything that is not one of the defined numbers. */
    public static XenbusState parse(String text) {
        if (text == null) {
            return Unknown;
        }
        try {
            int v = Integer.parseInt(text.trim());
            for (XenbusState s : values()) {
                if (s.value == v) {
                    return s;
                }
            }
        } catch (NumberFormatException e) {
            // a garbage state is no state
        }
        return Unknown;
    }

    @Override
    public String toString() {
        return name() + "(" + value + ")";
    }
}
