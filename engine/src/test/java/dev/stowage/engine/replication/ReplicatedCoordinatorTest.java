package dev.stowage.engine.replication;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
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
import java.io.RandomAccessFile;
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
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The replicated coordinator against three real replica servers on 127.0.0.1, each with its own
 * storage pool: every test attacks one of the invariants in docs/replication.md.
 */
class ReplicatedCoordinatorTest {
    private static final String VOLUME = "vol-test";
    private static final long SIZE = 32L << 20;
    private static final int REGION = ReplicatedCoordinator.REGION_SIZE;

    @TempDir
    Path dir;

    private final List<Node> nodes = new ArrayList<>();
    private final List<ReplicatedCoordinator> coordinators = new ArrayList<>();
    private final List<ReplicaClient> clients = new ArrayList<>();
    private final RecordingHealth health = new RecordingHealth();
    private EventLoopGroup group;

    /** One storage node: a pool and a replica server that can be stopped and started again. */
    private final class Node {
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

    private ReplicatedCoordinator coordinator(long epoch) throws Exception {
        Map<ReplicaEndpoint, State> replicas = new LinkedHashMap<>();
        for (Node n : nodes) {
            replicas.put(n.endpoint(epoch), State.HEALTHY);
        }
        return coordinator(epoch, replicas);
    }

    private ReplicatedCoordinator coordinator(long epoch, Map<ReplicaEndpoint, State> replicas) {
        ReplicatedCoordinator c = new ReplicatedCoordinator(VOLUME, epoch, SIZE, "n1", replicas, health,
                IoThrottle.system(IoLimits.UNLIMITED));
        coordinators.add(c);
        return c;
    }

    /** A coordinator at {@code epoch} whose every replica endpoint passes through a {@link Gate}. */
    private ReplicatedCoordinator gatedCoordinator(long epoch, Map<String, Gate> gates) throws Exception {
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
    private void tornWrite(long at, long seed, String reached) throws Exception {
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
    private ReplicatedCoordinator takerWithout(String absent) throws Exception {
        Map<ReplicaEndpoint, State> replicas = new LinkedHashMap<>();
        for (Node n : nodes) {
            if (!n.id.equals(absent)) {
                replicas.put(n.endpoint(2), State.HEALTHY);
            }
        }
        return coordinator(2, replicas);
    }

    /** Starts {@code c}'s write of {@code data} at {@code offset} on a thread of its own, which the test may abandon. */
    private static java.util.concurrent.CompletableFuture<Void> writeInFlight(ReplicatedCoordinator c, long offset,
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
    private static void awaitLanded(Node n, long offset, byte[] data) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!java.util.Arrays.equals(data, n.read(offset, data.length))) {
            assertTrue(System.nanoTime() < deadline, "the write never reached " + n.id);
            Thread.sleep(2);
        }
    }

    private void assertReplicasAgree(long offset, int length) throws IOException {
        byte[] first = nodes.get(0).read(offset, length);
        for (Node n : nodes.subList(1, nodes.size())) {
            assertArrayEquals(first, n.read(offset, length), "replicas n1 and " + n.id + " differ at " + offset);
        }
    }

    private static byte[] pattern(int length, long seed) {
        byte[] b = new byte[length];
        new Random(seed).nextBytes(b);
        return b;
    }

    private static void write(ReplicatedCoordinator c, long offset, byte[] data) throws IOException {
        c.write(offset, ByteBuffer.wrap(data));
    }

    private static byte[] read(ReplicatedCoordinator c, long offset, int length) throws IOException {
        ByteBuffer b = ByteBuffer.allocateDirect(length);
        c.read(offset, b);
        byte[] out = new byte[length];
        b.flip().get(out);
        return out;
    }

    @Test
    void acknowledgedWritesAreOnEveryHealthyReplicaAndReadsStayLocal() throws Exception {
        ReplicatedCoordinator c = coordinator(1);
        byte[] a = pattern(64 << 10, 1);
        byte[] b = pattern(4096, 2);
        write(c, 0, a);
        write(c, 5L * REGION + 8192, b);
        c.flush();
        for (Node n : nodes) {
            assertArrayEquals(a, n.read(0, a.length), "replica " + n.id);
            assertArrayEquals(b, n.read(5L * REGION + 8192, b.length), "replica " + n.id);
        }
        long before2 = nodes.get(1).server.counters(VOLUME).orElseThrow().reads();
        long before3 = nodes.get(2).server.counters(VOLUME).orElseThrow().reads();
        for (int i = 0; i < 20; i++) {
            assertArrayEquals(a, read(c, 0, a.length));
        }
        assertEquals(before2, nodes.get(1).server.counters(VOLUME).orElseThrow().reads(), "reads went to n2");
        assertEquals(before3, nodes.get(2).server.counters(VOLUME).orElseThrow().reads(), "reads went to n3");
    }

    @Test
    void aReplicaThatFailsAWriteIsMarkedStaleBeforeTheWriteIsAcknowledged() throws Exception {
        ReplicatedCoordinator c = coordinator(1);
        nodes.get(2).stop();
        write(c, 0, pattern(4096, 3));
        // The write has returned: the failure must already be on record.
        assertEquals(List.of("STALE n3"), health.events);
        assertEquals(State.STALE, c.states().get("n3"));
        write(c, 4096, pattern(4096, 4));
        c.flush();
        assertEquals(List.of("STALE n3"), health.events, "a stale replica is not written to again");
    }

    /**
     * A replica whose node left the cluster (its lease expired: after an etcd outage, every node's
     * has) is marked STALE only if it does not answer the coordinator either.
     */
    @Test
    void aReplicaWhoseNodeLeftTheClusterIsMarkedStaleOnlyIfItDoesNotAnswer() throws Exception {
        ReplicatedCoordinator c = coordinator(1);
        write(c, 0, pattern(4096, 3));
        c.markUnreachable("n2", "node n2 left the cluster");
        assertEquals(List.of(), health.events, "a replica that answers is not marked stale");
        assertEquals(State.HEALTHY, c.states().get("n2"));

        nodes.get(2).stop();
        c.markUnreachable("n3", "node n3 left the cluster");
        assertEquals(List.of("STALE n3"), health.events);
        assertEquals(State.STALE, c.states().get("n3"));
        write(c, 4096, pattern(4096, 4));
        c.flush();
        assertArrayEquals(pattern(4096, 4), nodes.get(1).read(4096, 4096), "n2 still takes every write");
    }

    /**
     * When the metadata store does not answer, a failed replica cannot be recorded STALE, so the
     * writes that failed on it fail too (none is acknowledged). Eight writes failing together make
     * one attempt to record it and share its failure, instead of eight attempts one after the
     * other (each would wait out the store's timeout: 80 s with etcd's 10 s). A write that comes
     * after the failed attempt tries again.
     */
    @Test
    void writesThatFailTogetherShareOneFailedAttemptToRecordTheStaleReplica() throws Exception {
        java.util.concurrent.atomic.AtomicInteger attempts = new java.util.concurrent.atomic.AtomicInteger();
        ReplicatedCoordinator.ReplicaHealth unreachable = new ReplicatedCoordinator.ReplicaHealth() {
            @Override
            public void markStale(String nodeId, Throwable cause) throws IOException {
                attempts.incrementAndGet();
                try {
                    Thread.sleep(500);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                throw new IOException("metadata store did not answer within 500 ms");
            }

            @Override
            public void markRebuilding(String nodeId) throws IOException {
                throw new IOException("metadata store did not answer");
            }

            @Override
            public void markHealthy(String nodeId) throws IOException {
                throw new IOException("metadata store did not answer");
            }

            @Override
            public void rebuildProgress(String nodeId, int percent) throws IOException {
                throw new IOException("metadata store did not answer");
            }
        };
        Map<ReplicaEndpoint, State> replicas = new LinkedHashMap<>();
        for (Node n : nodes) {
            replicas.put(n.endpoint(1), State.HEALTHY);
        }
        ReplicatedCoordinator c = new ReplicatedCoordinator(VOLUME, 1, SIZE, "n1", replicas, unreachable,
                IoThrottle.system(IoLimits.UNLIMITED));
        coordinators.add(c);
        nodes.get(2).stop();

        java.util.concurrent.ExecutorService writers = java.util.concurrent.Executors.newFixedThreadPool(8);
        try {
            List<java.util.concurrent.Future<?>> pending = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                long offset = (long) i * REGION;
                pending.add(writers.submit(() -> {
                    write(c, offset, pattern(4096, offset));
                    return null;
                }));
            }
            for (java.util.concurrent.Future<?> f : pending) {
                java.util.concurrent.ExecutionException e = assertThrows(java.util.concurrent.ExecutionException.class, () -> f.get(30, TimeUnit.SECONDS));
                assertInstanceOf(IOException.class, e.getCause(), "a write that could not be recorded must fail");
            }
        } finally {
            writers.shutdownNow();
        }
        assertEquals(1, attempts.get(), "writes that failed together tried to record the stale replica "
                + attempts.get() + " times");
        assertEquals(State.HEALTHY, c.states().get("n3"), "not recorded, so not STALE either");

        assertThrows(IOException.class, () -> write(c, 0, pattern(4096, 9)));
        assertEquals(2, attempts.get(), "a later write tries to record it again");
    }

    @Test
    void withNoHealthyReplicaLeftIoFailsRatherThanServeStaleData() throws Exception {
        ReplicatedCoordinator c = coordinator(1);
        write(c, 0, pattern(4096, 5));
        nodes.forEach(Node::stop);
        assertThrows(IOException.class, () -> write(c, 0, pattern(4096, 6)));
        assertThrows(IOException.class, () -> read(c, 0, 4096));
        assertThrows(IOException.class, c::flush);
        // Every replica failed at once: nothing was acknowledged, and none is recorded STALE, so a
        // coordinator elsewhere (a better-connected node) can still attach the volume.
        assertEquals(List.of(), health.events);
        assertEquals(java.util.Set.of(State.HEALTHY), java.util.Set.copyOf(c.states().values()));
    }

    @Test
    void aReturningReplicaCopiesOnlyTheRegionsItMissed() throws Exception {
        ReplicatedCoordinator c = coordinator(1);
        for (int r = 0; r < 8; r++) {
            write(c, (long) r * REGION, pattern(REGION, r));
        }
        c.flush();
        Node n3 = nodes.get(2);
        n3.stop();
        long writtenWhileAway = 0;
        for (int r = 10; r < 13; r++) {
            byte[] data = pattern(64 << 10, 100 + r);
            write(c, (long) r * REGION + 4096, data);
            writtenWhileAway += data.length;
        }
        write(c, 2L * REGION, pattern(4096, 200));
        writtenWhileAway += 4096;
        c.flush();
        assertEquals(State.STALE, c.states().get("n3"));

        n3.start();
        long copied = c.resync(n3.endpoint(1), 0);
        // Four regions were touched while n3 was away; each costs at most one region of copying.
        assertEquals(4L * REGION, copied);
        assertTrue(copied <= 1.2 * writtenWhileAway + 4L * REGION, "copied " + copied);
        assertEquals(List.of("STALE n3", "REBUILDING n3", "HEALTHY n3"), health.events);
        assertEquals(State.HEALTHY, c.states().get("n3"));
        for (long off = 0; off < SIZE; off += REGION) {
            assertArrayEquals(nodes.get(0).read(off, REGION), n3.read(off, REGION), "region " + off / REGION);
        }
    }

    @Test
    void aWriteDuringTheResyncDoesNotHideTheWritesTheReplicaMissed() throws Exception {
        ReplicatedCoordinator c = coordinator(1);
        Node n3 = nodes.get(2);
        n3.stop();
        for (int r = 0; r < 10; r++) { // ten missed regions in the first comparison batch: about 2.5 s at 4 MiB/s
            write(c, (long) r * REGION, pattern(REGION, r));
        }
        write(c, 20L * REGION, pattern(REGION, 20)); // and one in the second batch, compared only after those
        c.flush();

        n3.start();
        RemoteReplicaEndpoint endpoint = n3.endpoint(1);
        java.util.concurrent.CompletableFuture<Long> resync = java.util.concurrent.CompletableFuture.supplyAsync(() -> {
            try {
                return c.resync(endpoint, 4L << 20);
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!health.events.contains("REBUILDING n3")) {
            assertTrue(System.nanoTime() < deadline, "the resync did not start");
            Thread.sleep(5);
        }
        // n3 receives this write; region 20 must still be copied, or n3 lacks the rest of what it missed there.
        write(c, 20L * REGION + 8192, pattern(4096, 21));
        assertTrue(!resync.isDone(), "the write must land while the resync runs");
        assertEquals(11L * REGION, resync.get(30, TimeUnit.SECONDS));
        for (long off = 0; off < SIZE; off += REGION) {
            assertArrayEquals(nodes.get(0).read(off, REGION), n3.read(off, REGION), "region " + off / REGION);
        }
    }

    @Test
    void whileQuiescedEveryReplicaHoldsTheSameBlocksAndNoWriteLands() throws Exception {
        ReplicatedCoordinator c = coordinator(1);
        java.util.concurrent.atomic.AtomicBoolean stop = new java.util.concurrent.atomic.AtomicBoolean();
        java.util.concurrent.atomic.AtomicLong writes = new java.util.concurrent.atomic.AtomicLong();
        Thread writer = new Thread(() -> {
            Random random = new Random(5);
            try {
                while (!stop.get()) {
                    write(c, (long) random.nextInt(4 * REGION / 4096) * 4096, pattern(4096, random.nextLong()));
                    writes.incrementAndGet();
                }
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        writer.start();
        try {
            for (int round = 0; round < 20; round++) {
                long before = writes.get();
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
                while (writes.get() < before + 5) { // writes are in flight when the round starts
                    assertTrue(writer.isAlive() && System.nanoTime() < deadline, "the writer stopped");
                    Thread.sleep(1);
                }
                c.whileQuiesced(() -> {
                    byte[] first = nodes.get(0).read(0, 4 * REGION);
                    for (Node n : nodes.subList(1, 3)) {
                        assertArrayEquals(first, n.read(0, 4 * REGION), "replica " + n.id + " differs");
                    }
                    try {
                        Thread.sleep(20);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                    // The writer's counter is no witness here: a write that returned just before
                    // the quiesce may be counted just after it began. The replica's data is.
                    assertArrayEquals(first, nodes.get(0).read(0, 4 * REGION), "a write landed while quiesced");
                });
            }
        } finally {
            stop.set(true);
            writer.join(10_000);
        }
    }

    @Test
    void aNewReplicaIsRebuiltOnlineFromTheWrittenRegions() throws Exception {
        ReplicatedCoordinator c = coordinator(1);
        write(c, 3L * REGION, pattern(8192, 7));
        c.flush();
        Node fresh = new Node("n4");
        nodes.add(fresh);
        long copied = c.resync(fresh.endpoint(1), 64L << 20);
        assertEquals(REGION, copied, "a thin volume rebuilds only what was ever written");
        long allocated = fresh.pool.open(VOLUME).orElseThrow().allocatedBytes();
        assertTrue(allocated < 64 * 1024, "the copied region's zeros take no space on the new replica: " + allocated);
        assertEquals(List.of("n4 50"), health.progress, "progress is reported while the rebuild runs");
        write(c, 3L * REGION, pattern(4096, 8));
        c.flush();
        assertArrayEquals(nodes.get(0).read(3L * REGION, REGION), fresh.read(3L * REGION, REGION));
    }

    @Test
    void anOldCoordinatorCannotWriteOnceANewEpochTookTheVolume() throws Exception {
        ReplicatedCoordinator old = coordinator(1);
        write(old, 0, pattern(4096, 9));
        ReplicatedCoordinator taker = coordinator(2);
        byte[] fresh = pattern(4096, 10);
        write(taker, 0, fresh);
        assertThrows(IOException.class, () -> write(old, 0, pattern(4096, 11)));
        assertTrue(old.fenced());
        assertThrows(IOException.class, () -> read(old, 0, 4096), "a fenced coordinator serves nothing");
        for (Node n : nodes) {
            assertArrayEquals(fresh, n.read(0, 4096), "the old coordinator's write landed on " + n.id);
        }
        assertEquals(List.of(), health.events, "fencing is not a replica failure");
    }

    @Test
    void aWriteThatReachedSomeReplicasWhenItsCoordinatorDiedIsMadeAlikeAtTakeover() throws Exception {
        Map<String, Gate> gates = new LinkedHashMap<>();
        ReplicatedCoordinator old = gatedCoordinator(1, gates);
        write(old, 0, pattern(8192, 30));
        write(old, 3L * REGION, pattern(REGION, 31));
        old.flush();
        write(old, 5L * REGION, pattern(4096, 32)); // completed everywhere, after the last flush

        gates.get("n1").mode = Gate.Mode.HOLD; // the write leaves for n2 and n3; then the node dies
        byte[] torn = pattern(4096, 33);
        java.util.concurrent.CompletableFuture<Void> abandoned = writeInFlight(old, 3L * REGION + 8192, torn);
        awaitLanded(nodes.get(1), 3L * REGION + 8192, torn);
        awaitLanded(nodes.get(2), 3L * REGION + 8192, torn);
        assertTrue(!abandoned.isDone(), "nothing acknowledged the write");
        assertTrue(!java.util.Arrays.equals(torn, nodes.get(0).read(3L * REGION + 8192, 4096)),
                "the replicas disagree before the takeover");

        ReplicatedCoordinator taker = coordinator(2);
        // Region 3, and region 5: n1 never heard that the write there completed (the next write,
        // held back, would have said so). Region 0 and 3's first write were below the watermark.
        assertEquals(2, taker.reconcileInDoubt());
        assertReplicasAgree(0, 8 * REGION);
        byte[] seen = read(taker, 3L * REGION + 8192, 4096);
        assertArrayEquals(seen, nodes.get(1).read(3L * REGION + 8192, 4096), "reads agree with every replica");
        assertEquals(0, taker.reconcileInDoubt(), "the rewrite and its flush left nothing in doubt");
        assertEquals(List.of(), health.events, "no replica failed");
    }

    @Test
    void aResyncCopiesARegionWhereTheReturningReplicaIsAheadOfItsSource() throws Exception {
        tornWrite(4L * REGION + 4096, 40, "n3"); // reaches n3 alone, which then goes away with the node
        ReplicatedCoordinator taker = takerWithout("n3");
        assertEquals(0, taker.reconcileInDoubt(), "the write never reached n1 or n2");
        // n3 returns. Its region 4 carries the torn write's generation, above n1's: "older on the
        // source" must not read as "nothing to copy".
        taker.resync(nodes.get(2).endpoint(2), 0);
        assertReplicasAgree(0, 8 * REGION);
    }

    @Test
    void aWriteLeftOnACrashedReplicaAloneIsCopiedOverByItsResync() throws Exception {
        // Region 2's generation is durable on every replica; then n1's own replica alone takes the
        // torn write, and n1 crashes.
        tornWrite(2L * REGION + 8192, 50, "n1");
        Node n1 = nodes.get(0);
        n1.crashAndRestart(); // the data is in the page cache, the write's region generation only in memory

        ReplicatedCoordinator taker = takerWithout("n1");
        assertEquals(0, taker.reconcileInDoubt());
        // n1's generation for region 2 equals n2's, yet n1 holds the torn write: the crash left the
        // region in doubt, and the resync copies it.
        assertEquals(REGION, taker.resync(n1.endpoint(2), 0));
        assertReplicasAgree(0, 8 * REGION);
    }

    @Test
    void aSettledRegionKeepsTheGenerationOfAWriteLeftOnItAloneThroughACrash() throws Exception {
        tornWrite(2L * REGION + 8192, 55, "n1"); // n1 alone takes it; its coordinator dies
        Node n1 = nodes.get(0);
        for (int i = 0; i < 3; i++) {
            n1.pool.settle(); // with nobody flushing, the settler clears the region's unsettled mark
        }
        n1.crashAndRestart();
        assertArrayEquals(new long[0], n1.pool.open(VOLUME).orElseThrow().regionsRecoveredAfterCrash(),
                "the region was settled before the crash: recovery does not name it");

        ReplicatedCoordinator taker = takerWithout("n1");
        taker.reconcileInDoubt();
        // The settle round persisted the torn write's generation before it cleared the mark: n1's
        // region 2 is ahead of the others, and the resync copies it.
        assertEquals(REGION, taker.resync(n1.endpoint(2), 0));
        assertReplicasAgree(0, 8 * REGION);
    }

    @Test
    void aWriteLeftOnAReplicaAloneSurvivesACleanRestartOfItsServerAsDoubt() throws Exception {
        tornWrite(7L * REGION + 4096, 57, "n1"); // n1 alone takes it; its coordinator dies
        Node n1 = nodes.get(0);
        n1.stop(); // a clean restart of n1's replica server (an upgrade, say) before the next attach
        n1.start();

        ReplicatedCoordinator taker = coordinator(2);
        assertEquals(1, taker.reconcileInDoubt(), "n1 kept region 7 in doubt across the restart");
        assertReplicasAgree(0, 8 * REGION);
    }

    @Test
    void aReplicaThatCrashedUnderALiveCoordinatorStillCopiesOnlyWhatItMissed() throws Exception {
        ReplicatedCoordinator c = coordinator(1);
        for (int r = 0; r < 6; r++) {
            write(c, (long) r * REGION, pattern(REGION, 70 + r));
        }
        c.flush();
        Node n3 = nodes.get(2);
        n3.crashAndRestart(); // six regions recently written: all taken as written by the recovery
        write(c, 9L * REGION, pattern(4096, 80)); // fails on n3, which is marked STALE
        c.flush();
        assertEquals(State.STALE, c.states().get("n3"));
        // The coordinator of the crash's epoch saw every write in flight fail on n3: the six
        // recovered regions are no doubt to it, only region 9 is missing.
        assertEquals(REGION, c.resync(n3.endpoint(1), 0));
        assertReplicasAgree(0, 10 * REGION);
    }

    @Test
    void aGenerationThatAPowerLossKeptWithoutItsDataDoesNotHideTheLostWrite() throws Exception {
        ReplicatedCoordinator c = coordinator(1);
        byte[] before = pattern(REGION, 90);
        write(c, 3L * REGION, before);
        c.flush();
        write(c, 3L * REGION + 8192, pattern(4096, 91));
        c.flush();
        // n3 loses power at the end of that flush: its generation page reached the disk (it rides
        // the data's device flush), the data page did not, so region 3 holds the block from before.
        Node n3 = nodes.get(2);
        n3.pool.open(VOLUME).orElseThrow().write(3L * REGION + 8192,
                ByteBuffer.wrap(java.util.Arrays.copyOfRange(before, 8192, 8192 + 4096)));
        n3.crashAndRestart(true);
        write(c, 9L * REGION, pattern(4096, 92)); // fails on n3, which is marked STALE
        c.flush();
        assertEquals(State.STALE, c.states().get("n3"));
        // Region 3's generation on n3 equals the others', but the recovery ran in a later boot: the
        // region is in doubt even to the crash's own coordinator, and the resync copies it.
        assertEquals(2L * REGION, c.resync(n3.endpoint(1), 0), "region 3 and region 9");
        assertReplicasAgree(0, 10 * REGION);
    }

    @Test
    void aWriteThatFailedOnEveryReplicaIsMadeAlikeBeforeTheNextWrite() throws Exception {
        Map<String, Gate> gates = new LinkedHashMap<>();
        ReplicatedCoordinator c = gatedCoordinator(1, gates);
        write(c, 6L * REGION, pattern(4096, 60));
        c.flush();
        gates.get("n1").mode = Gate.Mode.LOSE_ANSWER; // lands on n1, but its answer is lost
        gates.get("n2").mode = Gate.Mode.REFUSE;
        gates.get("n3").mode = Gate.Mode.REFUSE;
        byte[] failed = pattern(4096, 61);
        assertThrows(IOException.class, () -> write(c, 6L * REGION + 4096, failed));
        assertEquals(List.of(), health.events, "a write that failed everywhere marks nobody stale");
        assertArrayEquals(failed, nodes.get(0).read(6L * REGION + 4096, 4096), "it landed on n1 all the same");

        gates.values().forEach(g -> g.mode = Gate.Mode.PASS);
        write(c, 0, pattern(4096, 62)); // any write: the failed one's region is made alike first
        assertReplicasAgree(0, 8 * REGION);
        c.flush();
        assertEquals(0, coordinator(2).reconcileInDoubt(), "nothing is left in doubt for a later coordinator");
    }

    @Test
    void aCorruptBlockIsReadFromAnotherReplicaAndRepaired() throws Exception {
        ReplicatedCoordinator c = coordinator(1);
        byte[] data = pattern(4096, 12);
        write(c, 7L * 4096, data);
        c.flush();
        flipBitInDataFile(nodes.get(0), 7L * 4096 + 100);
        assertThrows(IOException.class, () -> nodes.get(0).read(7L * 4096, 4096), "the flip is detected locally");

        assertArrayEquals(data, read(c, 7L * 4096, 4096), "read through the coordinator");
        assertArrayEquals(data, nodes.get(0).read(7L * 4096, 4096), "the local replica was repaired");
        assertEquals(State.HEALTHY, c.states().get("n1"));
    }

    /** Flips one bit of the data in the single layer file of a node's pool (each pool holds one volume). */
    private static void flipBitInDataFile(Node n, long offset) throws IOException {
        Path data;
        try (Stream<Path> files = Files.list(n.home.resolve("pool").resolve("layers"))) {
            data = files.filter(p -> p.toString().endsWith(".layer")).findFirst().orElseThrow();
        }
        try (RandomAccessFile f = new RandomAccessFile(data.toFile(), "rw")) {
            f.seek(FileStoragePool.LAYER_DATA_OFFSET + offset);
            int b = f.read();
            f.seek(FileStoragePool.LAYER_DATA_OFFSET + offset);
            f.write(b ^ 0x10);
            f.getFD().sync();
        }
    }
}
