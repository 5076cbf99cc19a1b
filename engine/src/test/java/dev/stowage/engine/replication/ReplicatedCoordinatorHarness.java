package dev.stowage.engine.replication;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.stowage.engine.replication.ReplicatedCoordinator.State;
import dev.stowage.engine.replication.net.NettyTransport;
import dev.stowage.engine.replication.net.RemoteReplica;
import dev.stowage.engine.replication.net.RemoteReplicaEndpoint;
import dev.stowage.engine.replication.net.ReplicaClient;
import dev.stowage.engine.replication.net.ReplicaServer;
import dev.stowage.engine.storage.FileStoragePool;
import dev.stowage.engine.storage.ReplicaStore;
import io.netty.channel.EventLoopGroup;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;

/**
 * Three real replica servers on 127.0.0.1, each with its own storage pool, and coordinators over
 * them: what the tests of {@link ReplicatedCoordinator} share ({@link ReplicatedCoordinatorTest},
 * {@link CoordinatorTakeoverTest}).
 */
abstract class ReplicatedCoordinatorHarness {
    static final String VOLUME = "vol-test";
    static final long SIZE = 32L << 20;
    static final int REGION = ReplicatedCoordinator.REGION_SIZE;

    @TempDir
    Path dir;

    final List<Node> nodes = new ArrayList<>();
    final List<ReplicatedCoordinator> coordinators = new ArrayList<>();
    final List<ReplicaClient> clients = new ArrayList<>();
    final RecordingHealth health = new RecordingHealth();
    EventLoopGroup group;

    /** One storage node: a pool and a replica server that can be stopped and started again. */
    final class Node {
        final String id;
        final Path home;
        FileStoragePool pool;
        ReplicaServer server;

        Node(String id) throws IOException {
            this.id = id;
            this.home = dir.resolve(id);
            pool = FileStoragePool.open(home.resolve("pool"));
            pool.create(VOLUME, SIZE);
            start();
        }

        void start() throws IOException {
            server = ReplicaServer.start(new InetSocketAddress("127.0.0.1", 0), pool, home.resolve("replication"));
        }

        void stop() {
            server.close();
        }

        /**
         * Stops the node as kill -9 would leave it: what it wrote is in the page cache, the
         * unsettled marks of its pool stay set, and its unflushed region generations are lost.
         * Then starts it again, which runs the pool's crash recovery.
         */
        void crashAndRestart() throws IOException {
            crashAndRestart(false);
        }

        /**
         * As {@link #crashAndRestart()}; with {@code newBoot}, the restart happens in a later boot of
         * the kernel, as after a power loss (the pool's recorded boot id no longer matches).
         */
        void crashAndRestart(boolean newBoot) throws IOException {
            Path unsettled;
            try (Stream<Path> files = Files.list(home.resolve("pool").resolve("layers"))) {
                unsettled = files.filter(p -> p.toString().endsWith(".unsettled")).findFirst().orElseThrow();
            }
            byte[] marksAtTheCrash = Files.readAllBytes(unsettled);
            server.close();
            pool.close();
            Files.write(unsettled, marksAtTheCrash); // a clean close cleared them; a crash would not have
            if (newBoot) {
                Files.writeString(home.resolve("pool").resolve("boot-id"), "the-boot-before-the-power-loss\n");
            }
            pool = FileStoragePool.open(home.resolve("pool"));
            start();
        }

        RemoteReplicaEndpoint endpoint(long epoch) throws Exception {
            ReplicaClient client = ReplicaClient.connect(server.localAddress(), group).get(10, TimeUnit.SECONDS);
            clients.add(client);
            RemoteReplica replica = client.openAsync(VOLUME, epoch).get(10, TimeUnit.SECONDS);
            return new RemoteReplicaEndpoint(id, replica, Duration.ofSeconds(5));
        }

        byte[] read(long offset, int length) throws IOException {
            ReplicaStore store = pool.open(VOLUME).orElseThrow();
            ByteBuffer b = ByteBuffer.allocate(length);
            store.read(offset, b);
            return b.array();
        }
    }

    /** Records replica state changes as the volume's metadata would. */
    static final class RecordingHealth implements ReplicatedCoordinator.ReplicaHealth {
        final List<String> events = new CopyOnWriteArrayList<>();
        final List<String> progress = new CopyOnWriteArrayList<>();

        @Override
        public void markStale(String nodeId, Throwable cause) {
            events.add("STALE " + nodeId);
        }

        @Override
        public void markRebuilding(String nodeId) {
            events.add("REBUILDING " + nodeId);
        }

        @Override
        public void markHealthy(String nodeId) {
            events.add("HEALTHY " + nodeId);
        }

        @Override
        public void rebuildProgress(String nodeId, int percent) {
            progress.add(nodeId + " " + percent);
        }
    }

    @BeforeEach
    void startNodes() throws IOException {
        group = NettyTransport.newEventLoopGroup(2, "test-client");
        for (String id : List.of("n1", "n2", "n3")) {
            nodes.add(new Node(id));
        }
    }

    @AfterEach
    void stopNodes() throws Exception {
        coordinators.forEach(ReplicatedCoordinator::close);
        clients.forEach(ReplicaClient::close);
        for (Node n : nodes) {
            n.server.close();
            n.pool.close();
        }
        group.shutdownGracefully(0, 1, TimeUnit.SECONDS).sync();
    }

    ReplicatedCoordinator coordinator(long epoch) throws Exception {
        Map<ReplicaEndpoint, State> replicas = new LinkedHashMap<>();
        for (Node n : nodes) {
            replicas.put(n.endpoint(epoch), State.HEALTHY);
        }
        return coordinator(epoch, replicas);
    }

    ReplicatedCoordinator coordinator(long epoch, Map<ReplicaEndpoint, State> replicas) {
        ReplicatedCoordinator c = new ReplicatedCoordinator(VOLUME, epoch, SIZE, "n1", replicas, health,
                IoThrottle.system(IoLimits.UNLIMITED));
        coordinators.add(c);
        return c;
    }

    /** A coordinator at {@code epoch} whose every replica endpoint passes through a {@link Gate}. */
    ReplicatedCoordinator gatedCoordinator(long epoch, Map<String, Gate> gates) throws Exception {
        Map<ReplicaEndpoint, State> replicas = new LinkedHashMap<>();
        for (Node n : nodes) {
            Gate g = new Gate(n.endpoint(epoch));
            gates.put(n.id, g);
            replicas.put(g, State.HEALTHY);
        }
        return coordinator(epoch, replicas);
    }

    /**
     * A replica endpoint whose writes can be held back (never sent: the coordinator's node died
     * before the request left it), sent and then failed (the answer was lost), or failed unsent.
     */
    static final class Gate implements ReplicaEndpoint {
        enum Mode { PASS, HOLD, LOSE_ANSWER, REFUSE }

        final ReplicaEndpoint inner;
        volatile Mode mode = Mode.PASS;
        final List<java.util.concurrent.CompletableFuture<Void>> held = new CopyOnWriteArrayList<>();

        Gate(ReplicaEndpoint inner) {
            this.inner = inner;
        }

        /** Fails what was held back, so that the abandoned coordinator's thread ends. */
        void release() {
            held.forEach(f -> f.completeExceptionally(new IOException("the coordinator's node died")));
        }

        @Override
        public String nodeId() {
            return inner.nodeId();
        }

        @Override
        public java.util.concurrent.CompletableFuture<Void> writeAsync(long offset, ByteBuffer src, long generation,
                                                                       long watermark, boolean inDoubt) {
            switch (mode) {
                case HOLD -> {
                    java.util.concurrent.CompletableFuture<Void> f = new java.util.concurrent.CompletableFuture<>();
                    held.add(f);
                    return f;
                }
                case REFUSE -> {
                    return java.util.concurrent.CompletableFuture.failedFuture(new IOException("refused"));
                }
                case LOSE_ANSWER -> {
                    return inner.writeAsync(offset, src, generation, watermark, inDoubt).thenCompose(
                            v -> java.util.concurrent.CompletableFuture.failedFuture(new IOException("answer lost")));
                }
                default -> {
                    return inner.writeAsync(offset, src, generation, watermark, inDoubt);
                }
            }
        }

        @Override
        public java.util.concurrent.CompletableFuture<Void> copyAsync(long offset, ByteBuffer src, long generation) {
            return inner.copyAsync(offset, src, generation);
        }

        @Override
        public java.util.concurrent.CompletableFuture<Void> readAsync(long offset, ByteBuffer dst) {
            return inner.readAsync(offset, dst);
        }

        @Override
        public java.util.concurrent.CompletableFuture<Void> flushAsync(long watermark) {
            return inner.flushAsync(watermark);
        }

        @Override
        public java.util.concurrent.CompletableFuture<long[]> generationsAsync(long firstRegion, int count) {
            return inner.generationsAsync(firstRegion, count);
        }

        @Override
        public java.util.concurrent.CompletableFuture<long[]> inDoubtAsync() {
            return inner.inDoubtAsync();
        }

        @Override
        public void close() {
            release();
            inner.close();
        }
    }

    /**
     * A write a coordinator of epoch 1 had in flight when it died: the start of {@code at}'s region
     * is written (pattern {@code seed}) and flushed on every replica, then 4 KiB at {@code at}
     * (pattern {@code seed + 1}) reaches {@code reached} alone, the others' copies held back (closing
     * the coordinator after the test releases them).
     */
    void tornWrite(long at, long seed, String reached) throws Exception {
        Map<String, Gate> gates = new LinkedHashMap<>();
        ReplicatedCoordinator old = gatedCoordinator(1, gates);
        write(old, at / REGION * REGION, pattern(4096, seed));
        old.flush();
        gates.forEach((node, gate) -> gate.mode = node.equals(reached) ? Gate.Mode.PASS : Gate.Mode.HOLD);
        byte[] torn = pattern(4096, seed + 1);
        writeInFlight(old, at, torn);
        awaitLanded(nodes.stream().filter(n -> n.id.equals(reached)).findFirst().orElseThrow(), at, torn);
    }

    /** A coordinator of epoch 2 over every replica but {@code absent}'s (its node went away). */
    ReplicatedCoordinator takerWithout(String absent) throws Exception {
        Map<ReplicaEndpoint, State> replicas = new LinkedHashMap<>();
        for (Node n : nodes) {
            if (!n.id.equals(absent)) {
                replicas.put(n.endpoint(2), State.HEALTHY);
            }
        }
        return coordinator(2, replicas);
    }

    /** Starts {@code c}'s write of {@code data} at {@code offset} on a thread of its own, which the test may abandon. */
    static java.util.concurrent.CompletableFuture<Void> writeInFlight(ReplicatedCoordinator c, long offset,
                                                                            byte[] data) {
        return java.util.concurrent.CompletableFuture.runAsync(() -> {
            try {
                write(c, offset, data);
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
    }

    /** Waits until {@code n}'s replica holds {@code data} at {@code offset}. */
    static void awaitLanded(Node n, long offset, byte[] data) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!java.util.Arrays.equals(data, n.read(offset, data.length))) {
            assertTrue(System.nanoTime() < deadline, "the write never reached " + n.id);
            Thread.sleep(2);
        }
    }

    void assertReplicasAgree(long offset, int length) throws IOException {
        byte[] first = nodes.get(0).read(offset, length);
        for (Node n : nodes.subList(1, nodes.size())) {
            assertArrayEquals(first, n.read(offset, length), "replicas n1 and " + n.id + " differ at " + offset);
        }
    }

    static byte[] pattern(int length, long seed) {
        byte[] b = new byte[length];
        new Random(seed).nextBytes(b);
        return b;
    }

    static void write(ReplicatedCoordinator c, long offset, byte[] data) throws IOException {
        c.write(offset, ByteBuffer.wrap(data));
    }

    static byte[] read(ReplicatedCoordinator c, long offset, int length) throws IOException {
        ByteBuffer b = ByteBuffer.allocateDirect(length);
        c.read(offset, b);
        byte[] out = new byte[length];
        b.flip().get(out);
        return out;
    }
}
