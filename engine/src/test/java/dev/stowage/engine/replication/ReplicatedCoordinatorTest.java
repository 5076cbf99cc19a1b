package dev.stowage.engine.replication;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
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
        ReplicatedCoordinator c = new ReplicatedCoordinator(VOLUME, epoch, SIZE, "n1", replicas, health,
                IoThrottle.system(IoLimits.UNLIMITED));
        coordinators.add(c);
        return c;
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
                    long admitted = writes.get();
                    byte[] first = nodes.get(0).read(0, 4 * REGION);
                    for (Node n : nodes.subList(1, 3)) {
                        assertArrayEquals(first, n.read(0, 4 * REGION), "replica " + n.id + " differs");
                    }
                    try {
                        Thread.sleep(20);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                    assertEquals(admitted, writes.get(), "a write completed while quiesced");
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
