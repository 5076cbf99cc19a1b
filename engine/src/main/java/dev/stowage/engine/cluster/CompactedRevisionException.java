package dev.stowage.engine.cluster;

/**
 * A watch asked for changes from a revision whose history the store no longer keeps. The caller
 * should re-read the current state (for example with {@link MetadataStore#listAsync}) and watch
 * from {@code compactedRevision() + 1}, or from the revision its re-read returned.
 */
public final class CompactedRevisionException extends RuntimeException {
    private final long requestedRevision;
    private final long compactedRevision;

    public CompactedRevisionException(long requestedRevision, long compactedRevision) {
        super("watch from revision " + requestedRevision + ": history up to revision " + compactedRevision
                + " has been compacted; re-read the current state and watch from revision "
                + (compactedRevision + 1) + " or later");
        this.requestedRevision = requestedRevision;
        this.compactedRevision = compactedRevision;
    }

    public long requestedRevision() { return requestedRevision; }

    /** The newest revision whose changes are no longer available. */
    public long compactedRevision() { return compactedRevision; }
}
