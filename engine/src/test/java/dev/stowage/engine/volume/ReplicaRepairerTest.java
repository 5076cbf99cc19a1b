package dev.stowage.engine.volume;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.stowage.engine.cluster.Await;
import dev.stowage.engine.cluster.NodeDescriptor;
import dev.stowage.engine.replication.Coordinator;
import dev.stowage.engine.replication.IoLimits;
import dev.stowage.engine.replication.IoThrottle;
import dev.stowage.engine.replication.ReplicaEndpoint;
import dev.stowage.engine.replication.ReplicatedCoordinator;
import dev.stowage.engine.replication.ReplicatedCoordinator.State;
import dev.stowage.proto.metadata.ReplicaRecord;
import dev.stowage.proto.metadata.ReplicaState;
import dev.stowage.proto.metadata.VolumeRecord;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link ReplicaRepairer}'s membership probes over a real {@link ClusterFleet} on the embedded
 * store: the replicas of a node that left the cluster without resetting its connections answer
 * nothing, and each volume's probe would wait out its request deadline.
 */
class ReplicaRepairerTest {
    private static final long GIB = 1L << 30;

    @TempDir
    Path dir;

    private EmbeddedFleet cluster;
    private ReplicaRepairer repairer;

    @AfterEach
    void close() {
        if (repairer != null) {
            repairer.close();
        }
        if (cluster != null) {
            cluster.close();
        }
    }

    @Test
    void theReplicasOfADepartedNodeAreAskedAllAtOnceAndThoseThatDoNotAnswerMarkedStale() throws Exception {
        cluster = new EmbeddedFleet(dir.resolve("meta"), NodeDescriptor.storageless("n4", "127.0.0.5:7499", Map.of()));
        ClusterFleet fleet = cluster.fleet;
        cluster.join(NodeDescriptor.storage("n1", "127.0.0.2:40001", Map.of(), 10 * GIB, 7 * GIB));
        Await.until(Duration.ofSeconds(30), "n1 in n4's view", () -> fleet.nodeAlive("n1"));

        // n3 never joined this cluster's view: it is away. Three volumes have a replica there; none
        // answers until all three were asked (a request deadline would fail each after 5 s).
        int volumes = 3;
        CountDownLatch allAsked = new CountDownLatch(volumes);
        AtomicInteger askedAlone = new AtomicInteger();
        List<String> staleMarks = new CopyOnWriteArrayList<>();
        Map<String, Coordinator> attached = new LinkedHashMap<>();
        Map<String, VolumeRecord> records = new LinkedHashMap<>();
        for (int i = 0; i < volumes; i++) {
            String id = "vol-" + i;
            Map<ReplicaEndpoint, State> replicas = new LinkedHashMap<>();
            replicas.put(new Endpoint("n1", () -> CompletableFuture.completedFuture(new long[0])), State.HEALTHY);
            replicas.put(new Endpoint("n3", () -> {
                allAsked.countDown();
                return CompletableFuture.supplyAsync(() -> {
                    try {
                        if (!allAsked.await(10, TimeUnit.SECONDS)) {
                            askedAlone.incrementAndGet();
                        }
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                    throw new CompletionException(new IOException("no answer within the request deadline"));
                });
            }), State.HEALTHY);
            attached.put(id, new ReplicatedCoordinator(id, 1, 1 << 20, "n4", replicas,
                    new ReplicatedCoordinator.ReplicaHealth() {
                        @Override
                        public void markStale(String nodeId, Throwable cause) {
                            staleMarks.add(id + " " + nodeId);
                        }

                        @Override
                        public void markRebuilding(String nodeId) {
                        }

                        @Override
                        public void markHealthy(String nodeId) {
                        }

                        @Override
                        public void rebuildProgress(String nodeId, int percent) {
                        }
                    }, IoThrottle.system(IoLimits.UNLIMITED)));
            records.put(id, VolumeRecord.newBuilder().setId(id).setSizeBytes(1 << 20).setReplicaCount(2).setEpoch(1)
                    .addReplicas(ReplicaRecord.newBuilder().setNodeId("n1").setState(ReplicaState.HEALTHY))
                    .addReplicas(ReplicaRecord.newBuilder().setNodeId("n3").setState(ReplicaState.HEALTHY))
                    .build());
        }
        repairer = new ReplicaRepairer(fleet, new ReplicaRepairer.Config(Duration.ofHours(1), Duration.ofHours(1), 0),
                () -> attached, id -> Optional.ofNullable(records.get(id)), (id, change) -> { });

        repairer.repairOnce();

        assertEquals(0, askedAlone.get(), "every probe was in flight while the others were asked");
        assertEquals(List.of("vol-0 n3", "vol-1 n3", "vol-2 n3"), staleMarks.stream().sorted().toList());
        for (Coordinator c : attached.values()) {
            assertEquals(Map.of("n1", State.HEALTHY, "n3", State.STALE), ((ReplicatedCoordinator) c).states());
        }
    }

    /** A replica endpoint that answers only the membership probe, with {@code probe}. */
    private record Endpoint(String nodeId, java.util.function.Supplier<CompletableFuture<long[]>> probe)
            implements ReplicaEndpoint {
        @Override
        public CompletableFuture<Void> writeAsync(long offset, ByteBuffer src, long generation, long watermark,
                                                  boolean inDoubt) {
            return unexpected();
        }

        @Override
        public CompletableFuture<Void> copyAsync(long offset, ByteBuffer src, long generation) {
            return unexpected();
        }

        @Override
        public CompletableFuture<Void> readAsync(long offset, ByteBuffer dst) {
            return unexpected();
        }

        @Override
        public CompletableFuture<Void> flushAsync(long watermark) {
            return unexpected();
        }

        @Override
        public CompletableFuture<long[]> inDoubtAsync() {
            return unexpected();
        }

        @Override
        public CompletableFuture<long[]> generationsAsync(long firstRegion, int count) {
            assertTrue(firstRegion == 0 && count == 0, "the probe asks for no region");
            return probe.get();
        }

        @Override
        public void close() {
        }

        private static <T> CompletableFuture<T> unexpected() {
            return CompletableFuture.failedFuture(new AssertionError("a repair pass only probes here"));
        }
    }
}
