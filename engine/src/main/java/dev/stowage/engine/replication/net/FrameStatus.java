package dev.stowage.engine.replication.net;

/** Statuses of replication protocol responses (requests carry {@link #OK}, i.e. 0). */
public enum FrameStatus {
    OK(0),
    /** The request's epoch is older than the replica's; the response's {@code generation} carries the replica's epoch. */
    STALE_EPOCH(1),
    /** No such volume (OPEN) or handle; payload: message. */
    NOT_FOUND(2),
    /** The replica's storage failed; payload: message. */
    IO_ERROR(3),
    /**
     * A WRITE payload did not match its crc32c (damaged in transit), or a READ met a block whose
     * stored checksum does not match (damaged on disk; {@code offset} carries the block's byte offset).
     */
    CHECKSUM_MISMATCH(4),
    /** The request is malformed or out of range; payload: message naming the field. */
    BAD_REQUEST(5),
    /** The connection did not begin with a HELLO carrying the server's cluster token; payload: message. */
    UNAUTHENTICATED(6);

    private final int code;

    FrameStatus(int code) {
        this.code = code;
    }

    public int code() {
        return code;
    }

    /** The status with this code, or {@code null} if the code is unknown. */
    public static FrameStatus ofCode(int code) {
        for (FrameStatus s : values()) {
            if (s.code == code) {
                return s;
            }
        }
        return null;
    }
}
