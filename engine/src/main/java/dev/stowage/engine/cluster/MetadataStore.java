package dev.stowage.engine.cluster;

import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;

/**
 * Cluster metadata: a sorted key-value store with revisions, compare-and-set, watches and leases,
 * in the model of etcd v3. Implemented by an embedded store in the data directory (one host) and
 * by etcd (clusters); both pass {@code MetadataStoreContract}.
 *
 * <p>Revisions: the store has one revision counter that every change advances. Each key carries
 * the revision of its last change ({@link Versioned#modRevision()}). Compare-and-set takes the
 * revision the caller last read: {@link #ABSENT} requires that the key does not exist,
 * {@link #ANY} skips the check.
 *
 * <p>Durability: a completed put or delete survives a crash of the process.
 *
 * <p>Threading: thread-safe. Watch listeners run on a store-owned thread, one event at a time, in
 * revision order; a listener must not block for long.
 */
public interface MetadataStore extends AutoCloseable {

    /** Expected revision meaning "the key must not exist". */
    long ABSENT = 0;
    /** Expected revision meaning "whatever the key holds". */
    long ANY = -1;

    CompletableFuture<Optional<Versioned>> getAsync(String key);

    /** Every key starting with {@code prefix}, in key order. */
    CompletableFuture<List<Versioned>> listAsync(String prefix);

    /**
     * Writes {@code value} if the key's revision is {@code expectedRevision}; completes with the
     * new revision, or exceptionally with {@link RevisionMismatchException}. With a non-zero
     * {@code leaseId} the key is deleted when the lease expires or is revoked.
     */
    CompletableFuture<Long> putAsync(String key, byte[] value, long expectedRevision, long leaseId);

    /**
     * Deletes the key if its revision is {@code expectedRevision} ({@link #ANY}: unconditionally);
     * completes with true if a key was deleted, or exceptionally with
     * {@link RevisionMismatchException} when the revision differs.
     */
    CompletableFuture<Boolean> deleteAsync(String key, long expectedRevision);

    /**
     * Calls {@code listener} for every change to keys under {@code prefix} with a revision
     * greater than or equal to {@code fromRevision} (0: from now on), including changes made
     * before this call. Close the returned handle to stop.
     */
    AutoCloseable watch(String prefix, long fromRevision, WatchListener listener);

    /** Grants a lease that the store keeps alive until it is closed (revoked) or the process dies. */
    CompletableFuture<Lease> grantLeaseAsync(Duration ttl);

    /** The store's current revision. */
    CompletableFuture<Long> currentRevisionAsync();

    // Blocking conveniences.

    default Optional<Versioned> get(String key) { return Futures.join(getAsync(key)); }

    default List<Versioned> list(String prefix) { return Futures.join(listAsync(prefix)); }

    default long put(String key, byte[] value, long expectedRevision) {
        return Futures.join(putAsync(key, value, expectedRevision, 0));
    }

    default boolean delete(String key, long expectedRevision) {
        return Futures.join(deleteAsync(key, expectedRevision));
    }

    @Override
    void close();

    /** A key's value with its revisions. */
    record Versioned(String key, byte[] value, long createRevision, long modRevision, long leaseId) {}

    /** One change seen by a watch. {@code value} is null for a delete. */
    record WatchEvent(Type type, String key, byte[] value, long modRevision) {
        public enum Type { PUT, DELETE }
    }

    @FunctionalInterface
    interface WatchListener {
        void onEvent(WatchEvent event);

        /**
         * The watch stopped by itself, not by being closed: for example etcd compacted the history
         * it needed to resume after a lost connection. No event after the last one delivered will
         * arrive; a listener that keeps a view must list again and watch anew. Called at most once,
         * on the listener thread, after every event the watch delivered.
         */
        default void onEnded(Throwable cause) {}
    }

    /** A lease kept alive by the store. Closing it revokes it, deleting its keys. */
    interface Lease extends AutoCloseable {
        long id();

        @Override
        void close();
    }
}
