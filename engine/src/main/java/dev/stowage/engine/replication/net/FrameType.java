package dev.stowage.engine.replication.net;

/** Request types of the replication protocol; a response carries its request's code with bit 7 set. */
public enum FrameType {
    /** Payload: the volume id (UTF-8). Response: handle, the volume size in {@code offset}, the replica's epoch in {@code generation}. */
    OPEN(1),
    /** Payload: the data to write at {@code offset}; {@code generation} is recorded for the regions written. */
    WRITE(2),
    /** {@code aux} bytes at {@code offset}; the response's payload is the data, crc32c-checked by the client. */
    READ(3),
    /**
     * Makes every completed write durable, with its region generations. {@code generation}: the
     * coordinator's completion watermark (every write up to it completed on every healthy replica), 0 if none.
     */
    FLUSH(4),
    /** {@code aux} regions from region {@code offset}; the response's payload is one u64 per region. */
    GENERATIONS(5),
    /** Raises the replica's persisted epoch to the request's epoch. */
    EPOCH(6),
    /** Releases the handle. */
    CLOSE(7),
    /**
     * Control: creates a replica volume of {@code offset} bytes. Payload: the volume id, or
     * {@code volumeId\0snapshotId} to create it from a snapshot. No handle, epoch 0.
     */
    CREATE(8),
    /** Control: deletes a replica volume and its epoch and generation files. Payload: the volume id. */
    DELETE(9),
    /** Control: grows a replica volume to {@code offset} bytes. Payload: the volume id. */
    RESIZE(10),
    /** Control: takes a snapshot. Payload: {@code volumeId\0snapshotId}. */
    SNAPSHOT(11),
    /** Control: deletes a snapshot. Payload: the snapshot id. */
    DELETE_SNAPSHOT(12),
    /** Control: the response's payload is the pool's volume ids, {@code "\n"}-separated. */
    LIST(13),
    /**
     * The regions in doubt, for a coordinator taking the volume over (its epoch raises the
     * replica's first): those whose generation lies above the last completion watermark the
     * replica heard, or is {@link RegionGenerations#IN_DOUBT}, or that carry a crash mark of an
     * earlier epoch than the request's. The response's payload is one u64 region number per
     * region, ascending.
     */
    IN_DOUBT(14),
    /**
     * The first request on a connection to a replica server that has a cluster token: the payload
     * is the token. Answered OK, or UNAUTHENTICATED and the connection closed. A server without a
     * token answers it OK as well.
     */
    HELLO(15);

    /** Bit set in a response's type byte. */
    public static final int RESPONSE_BIT = 0x80;

    private static final FrameType[] BY_CODE = new FrameType[16];

    static {
        for (FrameType t : values()) {
            BY_CODE[t.code] = t;
        }
    }

    private final int code;

    FrameType(int code) {
        this.code = code;
    }

    public int code() {
        return code;
    }

    /** Whether this is a control request: no handle, epoch 0, not fenced (CREATE to LIST). */
    public boolean isControl() {
        return code >= CREATE.code && code <= LIST.code;
    }

    /** The type of a type byte with the response bit cleared, or {@code null} if the code is unknown. */
    public static FrameType ofCode(int typeByte) {
        int c = typeByte & ~RESPONSE_BIT & 0xff;
        return c < BY_CODE.length ? BY_CODE[c] : null;
    }
}
