package dev.stowage.engine.replication;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.stowage.engine.replication.ReplicatedCoordinator.State;
import dev.stowage.engine.replication.net.RemoteReplicaEndpoint;
import dev.stowage.engine.storage.FileStoragePool;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The replicated coordinator against three real replica servers on 127.0.0.1, each with its own
 * storage pool: every test attacks one of the invariants in docs/replication.md. Writes in flight
 * when a coordinator or a replica dies are in {@link CoordinatorTakeoverTest}.
 */
class ReplicatedCoordinatorTest extends ReplicatedCoordinatorHarness {
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
