package dev.stowage.engine.replication.net;

import dev.stowage.engine.replication.ReplicaEndpoint;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.util.concurrent.CompletableFuture;

/**
 * A coordinator's view of the replica that lives in its own process: the replica server's state
 * of the volume ({@link ReplicaVolume}) called directly instead of over a loopback connection.
 * Admission is the server's: every call enters the volume's fence with the endpoint's epoch, so
 * a newer coordinator fences this one exactly as it fences a remote one
 * ({@link StaleEpochException}), and writes record their region generations the same way.
 *
 * <p>Why: over loopback a local write cost a frame encode, two socket hops and an executor hand-off
 * on each side; on a two-core node that halved what one replica could take.
 *
 * <p>Calls run on the caller's thread and return completed futures, so a coordinator that fans out
 * should call this endpoint after its remote ones (their requests are then already in flight).
 *
 * <p>Threading: thread-safe, like the server.
 */
public final class LocalReplicaEndpoint implements ReplicaEndpoint {
    private final String nodeId;
    private final InetSocketAddress address;
    private final ReplicaVolume volume;
    private final long epoch;

    LocalReplicaEndpoint(String nodeId, InetSocketAddress address, ReplicaVolume volume, long epoch) {
        this.nodeId = nodeId;
        this.address = address;
        this.volume = volume;
        this.epoch = epoch;
    }

    @Override
    public String nodeId() {
        return nodeId;
    }

    /** What a call does once admitted. */
    @FunctionalInterface
    private interface Admitted<T> {
        T run() throws IOException;
    }

    private <T> CompletableFuture<T> admitted(Admitted<T> call) {
        try {
            if (!volume.enter(epoch)) {
                throw new StaleEpochException(address, volume.volumeId, epoch, volume.epoch.current());
            }
            try {
                volume.requests.increment();
                return CompletableFuture.completedFuture(call.run());
            } finally {
                volume.exit();
            }
        } catch (IOException | RuntimeException e) {
            return CompletableFuture.failedFuture(e);
        }
    }

    @Override
    public CompletableFuture<Void> writeAsync(long offset, ByteBuffer src, long generation, long watermark,
                                              boolean inDoubt) {
        return admitted(() -> {
            volume.write(offset, generation, watermark, inDoubt, src.duplicate());
            return null;
        });
    }

    @Override
    public CompletableFuture<Void> copyAsync(long offset, ByteBuffer src, long generation) {
        return admitted(() -> {
            volume.writeBulk(offset, generation, src.duplicate());
            return null;
        });
    }

    @Override
    public CompletableFuture<Void> readAsync(long offset, ByteBuffer dst) {
        return admitted(() -> {
            volume.read(offset, dst.duplicate());
            return null;
        });
    }

    @Override
    public CompletableFuture<Void> flushAsync(long watermark) {
        return admitted(() -> {
            volume.flush(watermark);
            return null;
        });
    }

    @Override
    public CompletableFuture<long[]> inDoubtAsync() {
        return admitted(() -> volume.inDoubt(epoch));
    }

    @Override
    public CompletableFuture<long[]> generationsAsync(long firstRegion, int count) {
        return admitted(() -> volume.generations.read(firstRegion, count, epoch));
    }

    /** Nothing to release: the server owns the volume's state. */
    @Override
    public void close() {
    }

    @Override
    public String toString() {
        return "local replica of volume " + volume.volumeId + " on node " + nodeId + " at epoch " + epoch;
    }
}
