package dev.stowage.engine.cluster;

/** A compare-and-set found the key at another revision than the caller expected. */
public final class RevisionMismatchException extends RuntimeException {
    private final String key;
    private final long expectedRevision;
    private final long actualRevision;

    /** {@code actualRevision} is 0 when the key does not exist. */
    public RevisionMismatchException(String key, long expectedRevision, long actualRevision) {
        super("key " + key + ": expected revision " + expectedRevision + ", found " + actualRevision);
        this.key = key;
        this.expectedRevision = expectedRevision;
        this.actualRevision = actualRevision;
    }

    public String key() { return key; }
    public long expectedRevision() { return expectedRevision; }
    public long actualRevision() { return actualRevision; }
}
