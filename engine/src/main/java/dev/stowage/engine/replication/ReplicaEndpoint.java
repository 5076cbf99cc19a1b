package dev.stowage.engine.replication;

import java.nio.ByteBuffer;
import java.util.concurrent.CompletableFuture;

/**
 * One replica of a volume as its coordinator sees it: the replica server of a node, reached over
 * the replication protocol. Every request carries the coordinator's epoch; a replica that has seen
 * a newer one fails the request with {@link dev.stowage.engine.replication.net.StaleEpochException}.
 *
 * <p>Buffers: the endpoint reads {@code src} (or fills {@code dst}) between position and limit
 * before the future completes and keeps no reference afterwards; positions are not moved.
 *
 * <p>Threading: thread-safe; futures may complete on an I/O thread, so dependent stages must not block.
 */
public interface ReplicaEndpoint extends AutoCloseable {

    String nodeId();

    /** Writes {@code src} at {@code offset}, recording {@code generation} for its regions. */
    CompletableFuture<Void> writeAsync(long offset, ByteBuffer src, long generation);

    /**
     * As {@link #writeAsync}, for a resync or rebuild copying whole regions: the replica may write it
     * past its page cache.
     */
    default CompletableFuture<Void> copyAsync(long offset, ByteBuffer src, long generation) {
        return writeAsync(offset, src, generation);
    }

    CompletableFuture<Void> readAsync(long offset, ByteBuffer dst);

    /** Makes every write this endpoint acknowledged before the call durable. */
    CompletableFuture<Void> flushAsync();

    /** The highest write generation of each region in [firstRegion, firstRegion + count). */
    CompletableFuture<long[]> generationsAsync(long firstRegion, int count);

    @Override
    void close();
}
