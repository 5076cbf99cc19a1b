package dev.stowage.cli;

/** The command line itself is wrong (unknown command or flag, missing or malformed value): exit code 2. */
public final class UsageException extends RuntimeException {
    public UsageException(String message) {
        super(message);
    }
}
