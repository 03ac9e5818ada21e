package io.jtap.formats.tool;

/**
 * A failure jtap-img reports as one line on stderr ({@code jtap-img: message}) and ends with {@code exitCode}.
 * Subcommands throw it for errors the user can act on: bad arguments, missing files, unsupported operations.
 */
public final class ToolException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final int exitCode;

    public ToolException(int exitCode, String message) {
        super(message);
        this.exitCode = exitCode;
    }

    public ToolException(int exitCode, String message, Throwable cause) {
        super(message, cause);
        this.exitCode = exitCode;
    }

    public int exitCode() {
        return exitCode;
    }
}
