package io.jtap.netback;

import java.io.IOException;

/** A xenstore node of a vif holds a value netback cannot use; the message names the node and the value. */
public final class BadXenStoreValueException extends IOException {
    private static final long serialVersionUID = 1L;

    public BadXenStoreValueException(String path, String value, String why) {
        super("bad xenstore value: " + why + ", key=" + path + ", value=" + (value == null ? "(missing)" : "\"" + value
                + "\""));
    }
}
