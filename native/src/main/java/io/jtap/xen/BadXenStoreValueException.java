package io.jtap.xen;

import java.io.IOException;

/**
 * A xenstore node of a device holds a value a backend cannot use (missing, malformed, out of range). The message
 * names the node and the value; the backend fails that device only (it goes to Closing), no other device is affected.
 */
public final class BadXenStoreValueException extends IOException {
    private static final long serialVersionUID = 1L;

    private final String path;
    private final String value;

    /**
     * @param path  the node read
     * @param value the value read, or null when the node was missing
     * @param why   what is wrong with it, e.g. "expected r or w"
     */
    public BadXenStoreValueException(String path, String value, String why) {
        super("bad xenstore value: path=" + path + ", value=" + (value == null ? "(missing)" : "\"" + value + "\"")
                + ", " + why);
        this.path = path;
        this.value = value;
    }

    public String path() {
        return path;
    }

    /** The value read, or null when the node was missing. */
    public String value() {
        return value;
    }
}
