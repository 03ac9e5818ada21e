package io.jtap.formats;

import java.io.IOException;

/**
 * Image metadata is inconsistent. The image that throws it marks itself corrupt (qcow2 also sets the header's
 * corrupt bit when it is writable) and refuses every later write with this exception; reads may continue.
 * Messages read {@code what went wrong: key=value, key=value}.
 */
public class CorruptImageException extends IOException {
    private static final long serialVersionUID = 1L;

    public CorruptImageException(String message) {
        super(message);
    }

    public CorruptImageException(String message, Throwable cause) {
        super(message, cause);
    }
}
