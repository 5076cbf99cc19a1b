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
    default CompletableFuture<Void> writeAsync(long offset, ByteBuffer src, long generation) {
        return writeAsync(offset, src, generation, 0, false);
    }

    /**
     * Writes {@code src} at {@code offset} as the coordinator's write {@code generation}.
     * {@code watermark}: every write of the coordinator up to that generation has completed on
     * every healthy replica (0: nothing said). {@code inDoubt}: record the regions as
     * {@link dev.stowage.engine.replication.net.RegionGenerations#IN_DOUBT} rather than at {@code generation}.
     */
    CompletableFuture<Void> writeAsync(long offset, ByteBuffer src, long generation, long watermark, boolean inDoubt);

    /**
     * A resync or rebuild copying whole regions that held {@code generation} on the source: the
     * replica may write it past its page cache, and the regions take exactly that generation.
     */
    CompletableFuture<Void> copyAsync(long offset, ByteBuffer src, long generation);

    CompletableFuture<Void> readAsync(long offset, ByteBuffer dst);

    /** Makes every write this endpoint acknowledged before the call durable. */
    default CompletableFuture<Void> flushAsync() {
        return flushAsync(0);
    }

    /** As {@link #flushAsync()}, telling the replica the coordinator's completion watermark (0: none). */
    CompletableFuture<Void> flushAsync(long watermark);

    /**
     * The replica's regions in doubt, ascending: those a coordinator taking the volume over must
     * make agree on every replica before it serves (see {@link ReplicatedCoordinator#reconcileInDoubt}).
     */
    CompletableFuture<long[]> inDoubtAsync();

    /** The highest write generation of each region in [firstRegion, firstRegion + count). */
    CompletableFuture<long[]> generationsAsync(long firstRegion, int count);

    @Override
    void close();
}
