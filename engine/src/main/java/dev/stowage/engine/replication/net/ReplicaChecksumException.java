package dev.stowage.engine.replication.net;

import java.net.InetSocketAddress;

/**
 * Data failed its crc32c check. {@link Where#IN_TRANSIT}: a WRITE payload reached the replica
 * damaged (nothing was written; resending may succeed) or a READ response arrived damaged.
 * {@link Where#ON_DISK}: the replica holds a corrupt block at {@link #offset()}; it must be
 * healed from a healthy replica.
 */
public final class ReplicaChecksumException extends ReplicaException {
    private static final long serialVersionUID = 1L;

    /** Where the damage was found. */
    public enum Where { IN_TRANSIT, ON_DISK }

    private final Where where;
    private final long offset;

    public ReplicaChecksumException(InetSocketAddress address, String volumeId, Where where, long offset) {
        super(address, volumeId, (where == Where.ON_DISK ? "corrupt block on disk at offset "
                : "data damaged in transit, request offset ") + offset, null);
        this.where = where;
        this.offset = offset;
    }

    public Where where() {
        return where;
    }

    /** ON_DISK: the corrupt block's byte offset; IN_TRANSIT: the request's offset. */
    public long offset() {
        return offset;
    }
}
