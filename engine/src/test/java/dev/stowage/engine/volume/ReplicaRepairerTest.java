package dev.stowage.engine.volume;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
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
import dev.stowage.engine.replication.net.ReplicaServer;
import dev.stowage.engine.storage.FileStoragePool;
import dev.stowage.proto.metadata.ReplicaRecord;
import dev.stowage.proto.metadata.ReplicaState;
import dev.stowage.proto.metadata.VolumeRecord;
import java.io.IOException;
import java.net.InetSocketAddress;
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
                    new RecordingHealth(id, staleMarks), IoThrottle.system(IoLimits.UNLIMITED)));
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

    @Test
    void aReplicaOnALiveNodeWhoseResyncsKeepFailingIsReplacedOnceTheyHaveFailedForTheTimeout() throws Exception {
        String vol = "vol-r";
        long size = 8L << 20;
        try (FileStoragePool p1 = FileStoragePool.open(dir.resolve("n1/pool"));
             FileStoragePool p3 = FileStoragePool.open(dir.resolve("n3/pool"))) {
            p1.create(vol, size);
            try (ReplicaServer s1 = ReplicaServer.start(new InetSocketAddress("127.0.0.1", 0), p1, dir.resolve("n1/repl"));
                 ReplicaServer s3 = ReplicaServer.start(new InetSocketAddress("127.0.0.1", 0), p3, dir.resolve("n3/repl"))) {
                cluster = new EmbeddedFleet(dir.resolve("meta"), NodeDescriptor.storageless("n4", "127.0.0.5:7499", Map.of()));
                ClusterFleet fleet = cluster.fleet;
                cluster.join(NodeDescriptor.storage("n1", address(s1), Map.of(), 10 * GIB, 7 * GIB));
                // n2 keeps its lease, but its replica server answers nothing: nothing listens at its address.
                cluster.join(NodeDescriptor.storage("n2", "127.0.0.1:" + unusedPort(), Map.of(), 10 * GIB, 9 * GIB));
                cluster.join(NodeDescriptor.storage("n3", address(s3), Map.of(), 10 * GIB, 8 * GIB));
                Await.until(Duration.ofSeconds(30), "n1, n2 and n3 alive",
                        () -> fleet.nodeAlive("n1") && fleet.nodeAlive("n2") && fleet.nodeAlive("n3"));

                List<String> events = new CopyOnWriteArrayList<>();
                Map<ReplicaEndpoint, State> replicas = new LinkedHashMap<>();
                replicas.put(fleet.endpoint(vol, "n1", 1), State.HEALTHY);
                replicas.put(new Endpoint("n2", () -> CompletableFuture.completedFuture(new long[0])), State.STALE);
                try (ReplicatedCoordinator rc = new ReplicatedCoordinator(vol, 1, size, "n4", replicas,
                        new RecordingHealth(vol, events), IoThrottle.system(IoLimits.UNLIMITED))) {
                    byte[] data = new byte[1 << 20];
                    new java.util.Random(7).nextBytes(data);
                    rc.write(3L << 20, ByteBuffer.wrap(data));
                    rc.flush();
                    Map<String, VolumeRecord> records = new java.util.concurrent.ConcurrentHashMap<>(Map.of(vol,
                            VolumeRecord.newBuilder().setId(vol).setSizeBytes(size).setReplicaCount(2).setEpoch(1)
                                    .addReplicas(ReplicaRecord.newBuilder().setNodeId("n1").setState(ReplicaState.HEALTHY))
                                    .addReplicas(ReplicaRecord.newBuilder().setNodeId("n2").setState(ReplicaState.STALE))
                                    .build()));
                    Duration timeout = Duration.ofMillis(300);
                    repairer = new ReplicaRepairer(fleet, new ReplicaRepairer.Config(Duration.ofHours(1), timeout, 0),
                            () -> Map.of(vol, rc), id -> Optional.ofNullable(records.get(id)),
                            (id, change) -> records.computeIfPresent(id, (k, r) -> change.apply(r)));

                    repairer.repairOnce(); // the resync of n2 fails: n2 is alive, so it is not replaced yet
                    assertEquals(List.of("n1", "n2"), nodesOf(records.get(vol)));
                    Thread.sleep(timeout.toMillis() + 100);
                    repairer.repairOnce(); // failing for longer than the timeout now

                    assertEquals(List.of("n1", "n3"), nodesOf(records.get(vol)), "n2's replica replaced by one on n3");
                    assertEquals(ReplicaState.REBUILDING, records.get(vol).getReplicas(1).getState());
                    assertTrue(events.contains(vol + " HEALTHY n3"), "rebuilt: " + events);
                    assertEquals(Map.of("n1", State.HEALTHY, "n3", State.HEALTHY), rc.states());
                    ByteBuffer onN3 = ByteBuffer.allocate(data.length);
                    p3.open(vol).orElseThrow().read(3L << 20, onN3);
                    assertArrayEquals(data, onN3.array(), "n3 holds the written region");
                }
            }
        }
    }

    private static String address(ReplicaServer s) {
        return "127.0.0.1:" + s.localAddress().getPort();
    }

    private static int unusedPort() throws IOException {
        try (java.net.ServerSocket s = new java.net.ServerSocket(0, 1, java.net.InetAddress.getByName("127.0.0.1"))) {
            return s.getLocalPort();
        }
    }

    private static List<String> nodesOf(VolumeRecord r) {
        return r.getReplicasList().stream().map(ReplicaRecord::getNodeId).toList();
    }

    /** Records each replica state change as {@code "<volume> <STATE> <node>"}. */
    private record RecordingHealth(String volumeId, List<String> events) implements ReplicatedCoordinator.ReplicaHealth {
        @Override
        public void markStale(String nodeId, Throwable cause) {
            events.add(volumeId + " " + nodeId);
        }

        @Override
        public void markRebuilding(String nodeId) {
            events.add(volumeId + " REBUILDING " + nodeId);
        }

        @Override
        public void markHealthy(String nodeId) {
            events.add(volumeId + " HEALTHY " + nodeId);
        }

        @Override
        public void rebuildProgress(String nodeId, int percent) {
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
