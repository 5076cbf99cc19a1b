package dev.stowage.engine.replication.net;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.stowage.engine.storage.FileStoragePool;
import io.netty.buffer.Unpooled;
import io.netty.channel.EventLoopGroup;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A real replica server over a real FileStoragePool, and the client, on 127.0.0.1. */
class ReplicaServerClientTest {
    private static final long MIB = 1 << 20;
    private static final String VOL = "vol-1";
    private static final InetSocketAddress ANY_PORT = new InetSocketAddress(InetAddress.getLoopbackAddress(), 0);

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
        pool.create(VOL, 64 * MIB);
        startServer(0);
    }

    private void startServer(int port) throws Exception {
        server = ReplicaServer.start(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), pool,
                tmp.resolve("replication"));
        client = get(ReplicaClient.connect(server.localAddress(), group));
    }

    /** Stops server and pool, reopens both on the same directories, reconnects. */
    private void restart() throws Exception {
        client.close();
        server.close();
        pool.close();
        pool = FileStoragePool.open(tmp.resolve("pool"));
        startServer(0);
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

    static <T> T get(CompletableFuture<T> f) throws Exception {
        try {
            return f.get(30, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof Exception ex) {
                throw ex;
            }
            throw e;
        }
    }

    static Throwable failure(CompletableFuture<?> f) throws Exception {
        ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(30, TimeUnit.SECONDS));
        return e.getCause();
    }

    static byte[] random(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    private static byte[] read(RemoteReplica r, long offset, int n) throws Exception {
        ByteBuffer dst = ByteBuffer.allocateDirect(n);
        get(r.readAsync(offset, dst));
        byte[] b = new byte[n];
        dst.get(b);
        return b;
    }

    private dev.stowage.engine.cluster.ClusterToken token(String name, String text) throws Exception {
        Path f = tmp.resolve(name);
        java.nio.file.Files.writeString(f, text);
        return dev.stowage.engine.cluster.ClusterToken.read("--cluster-token-file", f);
    }

    @Test
    void aServerWithAClusterTokenServesOnlyConnectionsThatPresentIt() throws Exception {
        dev.stowage.engine.cluster.ClusterToken right = token("right", "replication-token-0123456789abcdef");
        dev.stowage.engine.cluster.ClusterToken wrong = token("wrong", "replication-token-fedcba9876543210");
        client.close();
        server.close();
        server = ReplicaServer.start(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), pool,
                tmp.resolve("replication"), right);
        byte[] data = random(4096, 7);

        // No HELLO: the first request is refused and the connection closed.
        client = get(ReplicaClient.connect(server.localAddress(), null, group, null));
        ReplicaRequestException anonymous = assertInstanceOf(ReplicaRequestException.class,
                failure(client.openAsync(VOL, 1)));
        assertEquals(FrameStatus.UNAUTHENTICATED, anonymous.status());
        assertTrue(anonymous.getMessage().contains("cluster token"), anonymous.getMessage());
        client.close();

        // A wrong token: the connection is never handed out.
        ReplicaRequestException refused = assertInstanceOf(ReplicaRequestException.class,
                failure(ReplicaClient.connect(server.localAddress(), null, group, wrong)));
        assertEquals(FrameStatus.UNAUTHENTICATED, refused.status());
        assertTrue(refused.getMessage().contains("wrong cluster token"), refused.getMessage());

        // The right one: served as before, and nothing the refused connections sent was written.
        client = get(ReplicaClient.connect(server.localAddress(), null, group, right));
        RemoteReplica r = get(client.openAsync(VOL, 1));
        assertArrayEquals(new byte[4096], read(r, 0, 4096));
        get(r.writeAsync(0, ByteBuffer.wrap(data), 1));
        assertArrayEquals(data, read(r, 0, 4096));

        // A client with a token may talk to a server without one.
        client.close();
        server.close();
        server = ReplicaServer.start(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), pool,
                tmp.resolve("replication"));
        client = get(ReplicaClient.connect(server.localAddress(), null, group, right));
        assertArrayEquals(data, read(get(client.openAsync(VOL, 1)), 0, 4096));
    }

    @Test
    void writeFlushReadRoundTripFrom4KiBTo1MiB() throws Exception {
        RemoteReplica r = get(client.openAsync(VOL, 1));
        assertEquals(64 * MIB, r.sizeBytes());
        long offset = 0;
        long bytes = 0;
        int i = 0;
        List<long[]> written = new ArrayList<>();
        for (int n = 4096; n <= MIB; n *= 2, i++) {
            byte[] data = random(n, n);
            ByteBuffer src = i % 2 == 0 ? ByteBuffer.wrap(data) : ByteBuffer.allocateDirect(n).put(data).flip();
            get(r.writeAsync(offset, src, (1L << 40) | i));
            assertEquals(0, src.position(), "the source buffer's position is left alone");
            written.add(new long[] {offset, n});
            offset += n + 4096;
            bytes += n;
        }
        get(r.flushAsync());
        for (long[] w : written) {
            assertArrayEquals(random((int) w[1], w[1]), read(r, w[0], (int) w[1]), "at " + w[0]);
        }
        VolumeCounters c = server.counters(VOL).orElseThrow();
        assertEquals(bytes, c.bytesWritten());
        assertEquals(bytes, c.bytesRead());
        assertEquals(written.size(), c.writes());
        assertEquals(1, c.flushes());
        assertTrue(server.counters("other").isEmpty());
    }

    /**
     * What decides whether a FLUSH may run on the event loop: the bytes written since the previous
     * flush. A flush after 12 KiB qualifies, one after a 1 MiB burst does not, and both still
     * make their writes durable and readable.
     */
    @Test
    void aFlushKnowsHowMuchItHasToWriteBack() throws Exception {
        RemoteReplica r = get(client.openAsync(VOL, 1));
        ReplicaVolume v = server.volume(VOL);
        assertTrue(v.generationsRideDataFlush(), "the generation file lies on the pool's file system");
        for (int i = 0; i < 3; i++) {
            get(r.writeAsync(i * 4096L, ByteBuffer.wrap(random(4096, i)), (1L << 40) | (i + 1)));
        }
        assertEquals(3 * 4096, v.bytesSinceFlush());
        assertTrue(v.bytesSinceFlush() <= ReplicaServerHandler.INLINE_FLUSH_MAX_BYTES);
        get(r.flushAsync());
        assertEquals(0, v.bytesSinceFlush());
        assertEquals(java.util.Map.of(), v.generations.unpersisted(), "the flush made its records durable");
        assertEquals((1L << 40) | 3, v.generations.read(0, 1)[0]);

        get(r.writeAsync(MIB, ByteBuffer.wrap(random((int) MIB, 7)), (1L << 40) | 4));
        assertEquals(MIB, v.bytesSinceFlush());
        assertTrue(v.bytesSinceFlush() > ReplicaServerHandler.INLINE_FLUSH_MAX_BYTES);
        get(r.flushAsync());
        assertEquals(0, v.bytesSinceFlush());
        assertArrayEquals(random(4096, 2), read(r, 2 * 4096, 4096));
        assertArrayEquals(random((int) MIB, 7), read(r, MIB, (int) MIB));
        assertEquals(2, server.counters(VOL).orElseThrow().flushes());
    }

    @Test
    void aThousandPipelinedWritesThenReadBack() throws Exception {
        RemoteReplica r = get(client.openAsync(VOL, 1));
        int n = 1000;
        List<CompletableFuture<Void>> writes = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            writes.add(r.writeAsync((long) i * 8192, ByteBuffer.wrap(random(4096, i)), (1L << 40) | i));
        }
        get(CompletableFuture.allOf(writes.toArray(CompletableFuture[]::new)));
        get(r.flushAsync());
        List<CompletableFuture<Void>> reads = new ArrayList<>();
        List<ByteBuffer> dsts = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            ByteBuffer dst = ByteBuffer.allocate(4096);
            dsts.add(dst);
            reads.add(r.readAsync((long) i * 8192, dst));
        }
        get(CompletableFuture.allOf(reads.toArray(CompletableFuture[]::new)));
        for (int i = 0; i < n; i++) {
            assertArrayEquals(random(4096, i), dsts.get(i).array(), "write " + i);
        }
        assertEquals(0, client.pendingRequests());
        assertEquals(n, server.counters(VOL).orElseThrow().writes());
    }

    @Test
    void generationsAreRecordedPerRegionAndSurviveRestart() throws Exception {
        RemoteReplica r = get(client.openAsync(VOL, 2));
        long g1 = (2L << 40) | 1;
        long g2 = (2L << 40) | 2;
        long g3 = (2L << 40) | 3;
        get(r.writeAsync(0, ByteBuffer.wrap(random(4096, 1)), g2));
        get(r.writeAsync(8192, ByteBuffer.wrap(random(4096, 2)), g1));   // lower, same region
        get(r.writeAsync(3 * MIB - 4096, ByteBuffer.wrap(random(8192, 3)), g3)); // regions 2 and 3
        get(r.flushAsync());
        long[] expected = {g2, 0, g3, g3, 0};
        assertArrayEquals(expected, get(r.generationsAsync(0, 5)));
        restart();
        RemoteReplica again = get(client.openAsync(VOL, 2));
        assertArrayEquals(expected, get(again.generationsAsync(0, 5)));
        assertArrayEquals(random(8192, 3), read(again, 3 * MIB - 4096, 8192));
    }

    @Test
    void epochFencingRefusesOlderEpochsAlsoAfterRestart() throws Exception {
        RemoteReplica old = get(client.openAsync(VOL, 4));
        get(old.writeAsync(0, ByteBuffer.wrap(random(4096, 1)), (4L << 40) | 1));
        ReplicaClient other = get(ReplicaClient.connect(server.localAddress(), group));
        try {
            RemoteReplica fresh = get(other.openAsync(VOL, 4));
            get(fresh.raiseEpochAsync(5));
            assertEquals(5, fresh.epoch());
            StaleEpochException e = assertInstanceOf(StaleEpochException.class,
                    failure(old.writeAsync(0, ByteBuffer.wrap(random(4096, 2)), (4L << 40) | 2)));
            assertEquals(4, e.seen());
            assertEquals(5, e.current());
            assertEquals(server.localAddress(), e.address());
            assertEquals(VOL, e.volumeId());
            assertInstanceOf(StaleEpochException.class, failure(old.flushAsync()));
            assertInstanceOf(StaleEpochException.class, failure(fresh.raiseEpochAsync(3)));
            assertArrayEquals(random(4096, 1), read(fresh, 0, 4096), "the fenced write changed nothing");
        } finally {
            other.close();
        }
        restart();
        StaleEpochException e = assertInstanceOf(StaleEpochException.class, failure(client.openAsync(VOL, 4)));
        assertEquals(4, e.seen());
        assertEquals(5, e.current());
        RemoteReplica r = get(client.openAsync(VOL, 6));
        get(r.writeAsync(0, ByteBuffer.wrap(random(4096, 3)), (6L << 40) | 1));
    }

    @Test
    void theInProcessEndpointSharesTheServersVolumeGenerationsAndFence() throws Exception {
        LocalReplicaEndpoint local = server.openLocal("n1", VOL, 3);
        byte[] data = random((int) MIB + 4096, 7);
        get(local.writeAsync(MIB - 4096, ByteBuffer.wrap(data), 42));
        get(local.flushAsync());
        RemoteReplica remote = get(client.openAsync(VOL, 3));
        assertArrayEquals(data, read(remote, MIB - 4096, data.length), "the remote side reads what the local one wrote");
        assertArrayEquals(new long[] {42, 42, 0}, get(remote.generationsAsync(0, 3)),
                "regions 0 and 1 carry the local write's generation, region 2 none");
        assertArrayEquals(new long[] {42, 42, 0}, get(local.generationsAsync(0, 3)));
        ByteBuffer back = ByteBuffer.allocate(4096);
        get(local.readAsync(MIB, back));
        assertArrayEquals(java.util.Arrays.copyOfRange(data, 4096, 8192), back.array());
        VolumeCounters c = server.counters(VOL).orElseThrow();
        assertEquals(1, c.writes());
        assertEquals(1, c.flushes());

        get(remote.raiseEpochAsync(4)); // another coordinator takes over
        Throwable t = failure(local.writeAsync(0, ByteBuffer.wrap(new byte[4096]), 43));
        StaleEpochException stale = assertInstanceOf(StaleEpochException.class, t);
        assertEquals(3, stale.seen());
        assertEquals(4, stale.current());
        assertInstanceOf(StaleEpochException.class, failure(local.flushAsync()));
        assertInstanceOf(StaleEpochException.class, assertThrows(IOException.class,
                () -> server.openLocal("n1", VOL, 3)), "opening at an old epoch is refused too");
        assertInstanceOf(ReplicaRequestException.class, assertThrows(IOException.class,
                () -> server.openLocal("n1", "no-such-volume", 4)));
        assertArrayEquals(new long[] {42}, get(remote.generationsAsync(0, 1)), "the refused write left nothing");
    }

    @Test
    void damagedWritePayloadIsRefusedWithChecksumMismatch() throws Exception {
        RemoteReplica r = get(client.openAsync(VOL, 1));
        byte[] data = random(4096, 9);
        CompletableFuture<Void> f = client.call(id -> new Frame(FrameType.WRITE.code(), 0, id, r.handle(), 1,
                        (1L << 40) | 1, 0, 0x0badc0de, 0, Unpooled.wrappedBuffer(data)),
                VOL, FrameType.WRITE, 1, 0, resp -> null);
        ReplicaChecksumException e = assertInstanceOf(ReplicaChecksumException.class, failure(f));
        assertEquals(ReplicaChecksumException.Where.IN_TRANSIT, e.where());
        assertArrayEquals(new byte[4096], read(r, 0, 4096), "nothing was written");
        assertArrayEquals(new long[] {0}, get(r.generationsAsync(0, 1)));
    }

    @Test
    void badRequestsGetErrorsNamingTheProblem() throws Exception {
        ReplicaRequestException missing = assertInstanceOf(ReplicaRequestException.class,
                failure(client.openAsync("no-such-volume", 1)));
        assertEquals(FrameStatus.NOT_FOUND, missing.status());
        ReplicaRequestException badId = assertInstanceOf(ReplicaRequestException.class,
                failure(client.openAsync("../etc", 1)));
        assertEquals(FrameStatus.BAD_REQUEST, badId.status());
        RemoteReplica r = get(client.openAsync(VOL, 1));
        ReplicaRequestException beyond = assertInstanceOf(ReplicaRequestException.class,
                failure(r.writeAsync(64 * MIB, ByteBuffer.wrap(random(4096, 1)), 1)));
        assertEquals(FrameStatus.BAD_REQUEST, beyond.status());
        assertInstanceOf(IllegalArgumentException.class,
                failure(r.readAsync(0, ByteBuffer.allocate(Frame.MAX_PAYLOAD + 1))));
        get(r.closeAsync());
        ReplicaRequestException closed = assertInstanceOf(ReplicaRequestException.class, failure(r.flushAsync()));
        assertEquals(FrameStatus.NOT_FOUND, closed.status());
        assertTrue(client.isConnected(), "refusals do not cost the connection");
    }

    @Test
    void serverCloseFailsPendingRequestsAndReleasesThePort() throws Exception {
        RemoteReplica r = get(client.openAsync(VOL, 1));
        List<CompletableFuture<Void>> writes = new ArrayList<>();
        for (int i = 0; i < 200; i++) {
            writes.add(r.writeAsync((long) i * 4096, ByteBuffer.wrap(random(4096, i)), 1));
        }
        int port = server.port();
        server.close();
        for (CompletableFuture<Void> w : writes) {
            try {
                w.get(30, TimeUnit.SECONDS);
            } catch (ExecutionException e) {
                assertInstanceOf(ReplicaUnavailableException.class, e.getCause());
            }
        }
        ReplicaUnavailableException after = assertInstanceOf(ReplicaUnavailableException.class,
                failure(r.flushAsync()));
        assertEquals(server.localAddress(), after.address());
        assertFalse(client.isConnected());
        try (ServerSocket s = new ServerSocket()) {
            s.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), port));
        }
        client.close();
        startServer(port);
        assertEquals(port, server.port());
        assertSame(VOL, get(client.openAsync(VOL, 1)).volumeId());
    }

    @Test
    void connectingToNothingFailsWithReplicaUnavailable() throws Exception {
        int port;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            port = s.getLocalPort();
        }
        InetSocketAddress nowhere = new InetSocketAddress(InetAddress.getLoopbackAddress(), port);
        ReplicaUnavailableException e = assertInstanceOf(ReplicaUnavailableException.class,
                failure(ReplicaClient.connect(nowhere, group)));
        assertEquals(nowhere, e.address());
    }

    @Test
    void serverStartOnABusyPortFailsCleanly() {
        assertThrows(IOException.class, () -> ReplicaServer.start(server.localAddress(), pool, tmp.resolve("r2")));
    }
}
