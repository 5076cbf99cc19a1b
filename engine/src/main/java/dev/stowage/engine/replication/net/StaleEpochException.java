package dev.stowage.engine.replication.net;

import java.net.InetSocketAddress;

/**
 * The replica has seen a newer epoch than the request's: another coordinator owns the volume
 * now, and this one must stop writing (DESIGN invariant 2).
 */
public final class StaleEpochException extends ReplicaException {
    private static final long serialVersionUID = 1L;
    private final long seen;
    private final long current;

    /** {@code seen}: the epoch the request carried; {@code current}: the replica's epoch. */
    public StaleEpochException(InetSocketAddress address, String volumeId, long seen, long current) {
        super(address, volumeId, "epoch " + seen + " is stale, the replica is at epoch " + current, null);
        this.seen = seen;
        this.current = current;
    }

    /** The epoch the refused request carried. */
    public long seen() {
        return seen;
    }

    /** The replica's epoch. */
    public long current() {
        return current;
    }
}
