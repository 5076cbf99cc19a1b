package dev.stowage.csi.mount;

/**
 * A mount, format, probe or resize step failed. The message says which command failed, its exit
 * status and its standard error, so that an operator can act on it; it never contains a stack trace.
 */
public class MountException extends RuntimeException {
    public MountException(String message) {
        super(message);
    }

    public MountException(String message, Throwable cause) {
        super(message, cause);
    }
}
