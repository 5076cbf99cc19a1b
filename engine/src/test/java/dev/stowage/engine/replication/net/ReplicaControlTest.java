package dev.stowage.engine.replication.net;

import static dev.stowage.engine.replication.net.ReplicaServerClientTest.failure;
import static dev.stowage.engine.replication.net.ReplicaServerClientTest.get;
import static dev.stowage.engine.replication.net.ReplicaServerClientTest.random;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.stowage.engine.storage.FileStoragePool;
import io.netty.buffer.Unpooled;
import io.netty.channel.EventLoopGroup;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Control requests against a real replica server over a real FileStoragePool, on 127.0.0.1. */
class ReplicaControlTest {
    private static final long MIB = 1 << 20;

    @TempDir
    Path tmp;

    private EventLoopGroup group;
    private FileStoragePool pool;
    private ReplicaServer server;
    private ReplicaClient client;

    @BeforeEach
    void start() throws Exception {
        group = NettyTransport.newEventLoopGroup(2, "test-client");
        pool = FileStoragePool.open(tmp.resolve("pool"));
        server = ReplicaServer.start(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), pool,
                tmp.resolve("replication"));
        client = get(ReplicaClient.connect(server.localAddress(), group));
    }

    @AfterEach
    void stop() throws Exception {
        try {
            if (client != null) {
                client.close();
            }
            if (server != null) {
                server.close();
            }
        } finally {
            try {
                if (pool != null) {
                    pool.close();
                }
            } finally {
                group.shutdownGracefully(0, 5, TimeUnit.SECONDS).syncUninterruptibly();
            }
        }
    }

    private static ReplicaRequestException refused(CompletableFuture<?> f, FrameStatus status) throws Exception {
        ReplicaRequestException e = assertInstanceOf(ReplicaRequestException.class, failure(f));
        assertEquals(status, e.status(), e.getMessage());
        return e;
    }

    private static byte[] read(RemoteReplica r, long offset, int n) throws Exception {
        ByteBuffer dst = ByteBuffer.allocate(n);
        get(r.readAsync(offset, dst));
        return dst.array();
    }

    private Path stateFile(String volumeId, String suffix) {
        return tmp.resolve("replication").resolve(volumeId + suffix);
    }

    @Test
    void controlTypeCodesAreTheDocumentedOnes() {
        assertEquals(List.of(8, 9, 10, 11, 12, 13), List.of(FrameType.CREATE.code(), FrameType.DELETE.code(),
                FrameType.RESIZE.code(), FrameType.SNAPSHOT.code(), FrameType.DELETE_SNAPSHOT.code(),
                FrameType.LIST.code()));
        assertEquals(FrameType.LIST, FrameType.ofCode(13 | FrameType.RESPONSE_BIT));
        assertEquals(FrameType.IN_DOUBT, FrameType.ofCode(14));
        assertEquals(FrameType.HELLO, FrameType.ofCode(15));
        assertEquals(null, FrameType.ofCode(16));
        assertFalse(FrameType.HELLO.isControl(), "HELLO is answered by the connection, not the control service");
        assertFalse(FrameType.CLOSE.isControl());
        assertFalse(FrameType.IN_DOUBT.isControl(), "a volume request after the control ones");
        assertTrue(FrameType.CREATE.isControl());
    }

    @Test
    void createIsIdempotentForTheSameSizeAndRefusesAnother() throws Exception {
        get(client.createReplicaAsync("v1", 8 * MIB));
        assertEquals(8 * MIB, pool.open("v1").orElseThrow().sizeBytes());
        get(client.createReplicaAsync("v1", 8 * MIB));
        ReplicaRequestException other = refused(client.createReplicaAsync("v1", 16 * MIB), FrameStatus.BAD_REQUEST);
        assertTrue(other.getMessage().contains(String.valueOf(8 * MIB))
                && other.getMessage().contains(String.valueOf(16 * MIB)), other.getMessage());
        RemoteReplica r = get(client.openAsync("v1", 1));
        assertEquals(8 * MIB, r.sizeBytes());
    }

    @Test
    void createValidatesIdsAndSize() throws Exception {
        assertTrue(refused(client.createReplicaAsync("../x", MIB), FrameStatus.BAD_REQUEST)
                .getMessage().contains("volumeId"));
        assertTrue(refused(client.createReplicaAsync("v1", 0), FrameStatus.BAD_REQUEST)
                .getMessage().contains("size"));
        assertTrue(refused(client.createReplicaFromSnapshotAsync("v1", "a/b", MIB), FrameStatus.BAD_REQUEST)
                .getMessage().contains("snapshotId"));
        refused(client.createReplicaFromSnapshotAsync("v1", "no-such-snap", MIB), FrameStatus.NOT_FOUND);
        assertInstanceOf(IllegalArgumentException.class, failure(client.createReplicaAsync("", MIB)));
        assertEquals(Set.of(), pool.volumeIds(), "nothing was created");
        assertTrue(client.isConnected());
    }

    @Test
    void controlRequestsMustCarryNoHandleAndEpochZero() throws Exception {
        byte[] id = "v1".getBytes(StandardCharsets.UTF_8);
        CompletableFuture<Void> f = client.call(
                rid -> Frame.request(FrameType.CREATE, rid, 0, 5, 0, MIB, 0, Unpooled.wrappedBuffer(id)),
                "v1", FrameType.CREATE, 5, MIB, resp -> null);
        assertTrue(refused(f, FrameStatus.BAD_REQUEST).getMessage().contains("epoch"));
        CompletableFuture<Void> g = client.call(
                rid -> Frame.request(FrameType.DELETE, rid, 3, 0, 0, 0, 0, Unpooled.wrappedBuffer(id)),
                "v1", FrameType.DELETE, 0, 0, resp -> null);
        assertTrue(refused(g, FrameStatus.BAD_REQUEST).getMessage().contains("handle"));
    }

    @Test
    void deleteRemovesPoolDataStateFilesAndTheCachedVolume() throws Exception {
        get(client.createReplicaAsync("v1", 8 * MIB));
        RemoteReplica r = get(client.openAsync("v1", 3));
        get(r.writeAsync(0, ByteBuffer.wrap(random(4096, 1)), 3L << 40 | 1));
        get(r.flushAsync());
        assertTrue(Files.exists(stateFile("v1", ".gen")));
        assertTrue(Files.exists(stateFile("v1", ".epoch")));

        get(client.deleteReplicaAsync("v1"));
        assertTrue(pool.open("v1").isEmpty());
        assertFalse(Files.exists(stateFile("v1", ".gen")));
        assertFalse(Files.exists(stateFile("v1", ".epoch")));
        refused(client.openAsync("v1", 3), FrameStatus.NOT_FOUND);
        get(client.deleteReplicaAsync("v1"));   // missing: OK
        assertTrue(client.isConnected());
    }

    @Test
    void handlesOnOtherConnectionsAnswerNotFoundAfterDelete() throws Exception {
        get(client.createReplicaAsync("v1", 8 * MIB));
        try (ReplicaClient other = get(ReplicaClient.connect(server.localAddress(), group))) {
            RemoteReplica r = get(other.openAsync("v1", 1));
            get(r.writeAsync(0, ByteBuffer.wrap(random(4096, 2)), 1L << 40 | 1));
            get(client.deleteReplicaAsync("v1"));
            refused(r.writeAsync(0, ByteBuffer.wrap(random(4096, 3)), 1L << 40 | 2), FrameStatus.NOT_FOUND);
            refused(r.readAsync(0, ByteBuffer.allocate(4096)), FrameStatus.NOT_FOUND);
            refused(r.flushAsync(), FrameStatus.NOT_FOUND);
            refused(r.generationsAsync(0, 1), FrameStatus.NOT_FOUND);
            refused(r.raiseEpochAsync(2), FrameStatus.NOT_FOUND);
            assertFalse(Files.exists(stateFile("v1", ".epoch")), "a late epoch raise recreates no state");
            assertTrue(other.isConnected(), "the refusals do not cost the connection");
        }
    }

    @Test
    void writesInFlightDuringDeleteEitherCompleteOrAreNotFound() throws Exception {
        get(client.createReplicaAsync("v1", 8 * MIB));
        try (ReplicaClient other = get(ReplicaClient.connect(server.localAddress(), group))) {
            RemoteReplica r = get(other.openAsync("v1", 1));
            List<CompletableFuture<Void>> writes = new java.util.ArrayList<>();
            byte[] data = random(4096, 9);
            for (int i = 0; i < 300; i++) {
                writes.add(r.writeAsync((i % 2048) * 4096L, ByteBuffer.wrap(data), 1L << 40 | i));
                if (i == 150) {
                    writes.add(client.deleteReplicaAsync("v1"));
                }
            }
            int ok = 0;
            int notFound = 0;
            for (CompletableFuture<Void> w : writes) {
                try {
                    get(w);
                    ok++;
                } catch (ReplicaRequestException e) {
                    assertEquals(FrameStatus.NOT_FOUND, e.status(), e.getMessage());
                    notFound++;
                }
            }
            assertEquals(writes.size(), ok + notFound);
            assertTrue(pool.open("v1").isEmpty());
            for (int i = 0; i < 20; i++) {
                refused(r.writeAsync(i * 4096L, ByteBuffer.wrap(data), 1L << 40 | 1000 + i), FrameStatus.NOT_FOUND);
            }
            assertTrue(other.isConnected());
        }
    }

    @Test
    void recreatingADeletedVolumeStartsFresh() throws Exception {
        get(client.createReplicaAsync("v1", 8 * MIB));
        RemoteReplica r = get(client.openAsync("v1", 7));
        get(r.writeAsync(0, ByteBuffer.wrap(random(4096, 4)), 7L << 40 | 1));
        get(r.flushAsync());
        get(client.deleteReplicaAsync("v1"));
        get(client.createReplicaAsync("v1", 4 * MIB));
        RemoteReplica again = get(client.openAsync("v1", 1));
        assertEquals(1, again.epoch(), "the old epoch 7 does not survive");
        assertEquals(4 * MIB, again.sizeBytes());
        assertArrayEquals(new byte[4096], read(again, 0, 4096));
        assertArrayEquals(new long[] {0}, get(again.generationsAsync(0, 1)));
    }

    @Test
    void resizeGrowsAndAnOpenHandleWritesPastTheOldSize() throws Exception {
        get(client.createReplicaAsync("v1", 4 * MIB));
        RemoteReplica r = get(client.openAsync("v1", 1));
        refused(r.writeAsync(4 * MIB, ByteBuffer.wrap(random(4096, 5)), 1L << 40 | 1), FrameStatus.BAD_REQUEST);

        get(client.resizeReplicaAsync("v1", 8 * MIB));
        assertEquals(8 * MIB, pool.open("v1").orElseThrow().sizeBytes());
        get(r.writeAsync(4 * MIB, ByteBuffer.wrap(random(4096, 5)), 1L << 40 | 2));
        assertArrayEquals(random(4096, 5), read(r, 4 * MIB, 4096));

        get(client.resizeReplicaAsync("v1", 8 * MIB));   // same size: OK
        ReplicaRequestException smaller = refused(client.resizeReplicaAsync("v1", 2 * MIB), FrameStatus.BAD_REQUEST);
        assertTrue(smaller.getMessage().contains("shrinking"), smaller.getMessage());
        assertEquals(8 * MIB, pool.open("v1").orElseThrow().sizeBytes());
        refused(client.resizeReplicaAsync("missing", 8 * MIB), FrameStatus.NOT_FOUND);
        refused(client.resizeReplicaAsync("v1", -1), FrameStatus.BAD_REQUEST);
    }

    @Test
    void snapshotThenCreateFromItReadsTheSnapshotTimeData() throws Exception {
        get(client.createReplicaAsync("v1", 4 * MIB));
        RemoteReplica r = get(client.openAsync("v1", 1));
        get(r.writeAsync(0, ByteBuffer.wrap(random(8192, 6)), 1L << 40 | 1));
        get(r.flushAsync());
        get(client.snapshotReplicaAsync("v1", "s1"));
        get(client.snapshotReplicaAsync("v1", "s1"));   // idempotent
        get(r.writeAsync(0, ByteBuffer.wrap(random(8192, 7)), 1L << 40 | 2));

        get(client.createReplicaFromSnapshotAsync("v2", "s1", 8 * MIB));
        get(client.createReplicaFromSnapshotAsync("v2", "s1", 8 * MIB));   // idempotent
        RemoteReplica clone = get(client.openAsync("v2", 1));
        assertEquals(8 * MIB, clone.sizeBytes());
        assertArrayEquals(random(8192, 6), read(clone, 0, 8192));
        assertArrayEquals(random(8192, 7), read(r, 0, 8192), "the source keeps its newer data");

        refused(client.createReplicaFromSnapshotAsync("v3", "s1", MIB), FrameStatus.BAD_REQUEST);
        refused(client.snapshotReplicaAsync("missing", "s2"), FrameStatus.NOT_FOUND);
        assertTrue(refused(client.snapshotReplicaAsync("v1", ".."), FrameStatus.BAD_REQUEST)
                .getMessage().contains("snapshotId"));
    }

    @Test
    void deleteSnapshotIsIdempotentAndKeepsClonesReadable() throws Exception {
        get(client.createReplicaAsync("v1", 4 * MIB));
        RemoteReplica r = get(client.openAsync("v1", 1));
        get(r.writeAsync(0, ByteBuffer.wrap(random(4096, 8)), 1L << 40 | 1));
        get(client.snapshotReplicaAsync("v1", "s1"));
        get(client.createReplicaFromSnapshotAsync("v2", "s1", 4 * MIB));

        get(client.deleteSnapshotAsync("s1"));
        assertFalse(pool.snapshotExists("s1"));
        get(client.deleteSnapshotAsync("s1"));   // missing: OK
        RemoteReplica clone = get(client.openAsync("v2", 1));
        assertArrayEquals(random(4096, 8), read(clone, 0, 4096));
        refused(client.createReplicaFromSnapshotAsync("v3", "s1", 4 * MIB), FrameStatus.NOT_FOUND);
        refused(client.deleteSnapshotAsync("bad/id"), FrameStatus.BAD_REQUEST);
    }

    @Test
    void listReturnsThePoolsVolumeIdsSorted() throws Exception {
        assertEquals(List.of(), get(client.listReplicasAsync()));
        get(client.createReplicaAsync("b", MIB));
        get(client.createReplicaAsync("a", MIB));
        get(client.createReplicaAsync("c.1", MIB));
        assertEquals(List.of("a", "b", "c.1"), get(client.listReplicasAsync()));
        get(client.deleteReplicaAsync("b"));
        assertEquals(List.of("a", "c.1"), get(client.listReplicasAsync()));
    }

    @Test
    void openAfterADeleteBehindTheServersBackIsNotFound() throws Exception {
        get(client.createReplicaAsync("v1", 4 * MIB));
        RemoteReplica r = get(client.openAsync("v1", 1));
        pool.delete("v1");
        refused(client.openAsync("v1", 1), FrameStatus.NOT_FOUND);
        refused(r.flushAsync(), FrameStatus.NOT_FOUND);
    }
}
