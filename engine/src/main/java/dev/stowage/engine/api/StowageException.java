package dev.stowage.engine.api;

/**
 * A domain error with a code a caller can act on and, for bad input, the name of the offending
 * field (as the caller spelled it, e.g. {@code capacity_range.required_bytes} or {@code parameters.repl}).
 */
public class StowageException extends RuntimeException {
    private final ErrorCode code;
    private final String field;

    public StowageException(ErrorCode code, String message) {
        this(code, null, message, null);
    }

    public StowageException(ErrorCode code, String field, String message, Throwable cause) {
        super(message, cause);
        this.code = code;
        this.field = field;
    }

    public static StowageException invalid(String field, String message) {
        return new StowageException(ErrorCode.INVALID_ARGUMENT, field, field + ": " + message, null);
    }

    public static StowageException notFound(String what, String id) {
        return new StowageException(ErrorCode.NOT_FOUND, what + " " + id + " does not exist");
    }

    public ErrorCode code() { return code; }

    /** The offending field, or null when the error is not about one field. */
    public String field() { return field; }
}
