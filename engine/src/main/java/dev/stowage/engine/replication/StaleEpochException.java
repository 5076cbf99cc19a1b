package dev.stowage.engine.replication;

import java.io.IOException;

/**
 * A replica refused a request because it has seen a newer epoch: another coordinator has taken the
 * volume, and this one is fenced off for good.
 */
public final class StaleEpochException extends IOException {
    private final long seen;
    private final long current;

    public StaleEpochException(long seen, long current) {
        super("request epoch " + seen + " is older than the replica's epoch " + current
                + ": the volume was attached elsewhere");
        this.seen = seen;
        this.current = current;
    }

    /** The epoch the refused request carried. */
    public long seen() { return seen; }

    /** The replica's epoch. */
    public long current() { return current; }
}
