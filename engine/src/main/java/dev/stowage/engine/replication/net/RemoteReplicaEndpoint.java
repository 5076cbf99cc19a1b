package dev.stowage.engine.replication.net;

import dev.stowage.engine.replication.ReplicaEndpoint;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A coordinator's view of one replica reached over the replication protocol: a {@link RemoteReplica}
 * with a deadline on every request, so that a replica whose node hangs (SIGSTOP, a cut network) is
 * declared failed instead of stalling the volume. A missed deadline fails the request with an
 * {@link IOException} naming the node.
 *
 * <p>Threading: as {@link RemoteReplica}; futures may complete on an event loop.
 */
public final class RemoteReplicaEndpoint implements ReplicaEndpoint {
    private final String nodeId;
    private final RemoteReplica replica;
    private final long timeoutMillis;

    public RemoteReplicaEndpoint(String nodeId, RemoteReplica replica, Duration requestTimeout) {
        this.nodeId = nodeId;
        this.replica = replica;
        this.timeoutMillis = requestTimeout.toMillis();
    }

    @Override
    public String nodeId() {
        return nodeId;
    }

    public RemoteReplica replica() {
        return replica;
    }

    @Override
    public CompletableFuture<Void> writeAsync(long offset, ByteBuffer src, long generation, long watermark,
                                              boolean inDoubt) {
        int flags = inDoubt ? Frame.WRITE_IN_DOUBT : 0;
        return deadline(replica.writeAsync(offset, src, generation, Frame.writeAux(flags, generation, watermark)),
                "write");
    }

    @Override
    public CompletableFuture<Void> copyAsync(long offset, ByteBuffer src, long generation) {
        return deadline(replica.writeAsync(offset, src, generation, Frame.WRITE_BULK), "write");
    }

    @Override
    public CompletableFuture<Void> readAsync(long offset, ByteBuffer dst) {
        return deadline(replica.readAsync(offset, dst), "read");
    }

    @Override
    public CompletableFuture<Void> flushAsync(long watermark) {
        return deadline(replica.flushAsync(watermark), "flush");
    }

    @Override
    public CompletableFuture<long[]> inDoubtAsync() {
        return deadline(replica.inDoubtAsync(), "in-doubt query");
    }

    @Override
    public CompletableFuture<long[]> generationsAsync(long firstRegion, int count) {
        return deadline(replica.generationsAsync(firstRegion, count), "generations");
    }

    private <T> CompletableFuture<T> deadline(CompletableFuture<T> f, String what) {
        return f.orTimeout(timeoutMillis, TimeUnit.MILLISECONDS).exceptionallyCompose(e -> {
            Throwable cause = e instanceof CompletionException && e.getCause() != null ? e.getCause() : e;
            if (cause instanceof TimeoutException) {
                return CompletableFuture.failedFuture(new IOException("replica of volume " + replica.volumeId()
                        + " on node " + nodeId + " did not answer a " + what + " within " + timeoutMillis + " ms"));
            }
            return CompletableFuture.failedFuture(cause);
        });
    }

    @Override
    public void close() {
        replica.close();
    }
}
