package dev.stowage.engine.replication.net;

import dev.stowage.engine.cluster.ClusterToken;
import dev.stowage.engine.storage.DurableFiles;
import dev.stowage.engine.storage.ReplicaStore;
import dev.stowage.engine.storage.StoragePool;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.group.DefaultChannelGroup;
import io.netty.channel.socket.SocketChannel;
import io.netty.util.concurrent.GlobalEventExecutor;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Serves the replicas of one node's {@link StoragePool} over the replication protocol
 * (docs/replication.md) on TCP, with Netty's native epoll transport (NIO where epoll is not
 * available) and TCP_NODELAY.
 *
 * <p>Storage I/O never runs on an event loop: requests go to a bounded pool of I/O threads and
 * their responses are written back through the channel from there. Requests on one connection
 * may therefore complete in any order; a client must wait for the writes a flush covers to be
 * acknowledged before sending the flush (as for any block device).
 *
 * <p>Per volume, the server keeps beside the pool, in {@code replicationDir}, the highest epoch
 * seen ({@link EpochFile}, made durable before any request carrying a new epoch is answered) and
 * the highest write generation per 1 MiB region ({@link RegionGenerations}, made durable by FLUSH).
 *
 * <p>Control requests (CREATE, DELETE, RESIZE, SNAPSHOT, DELETE_SNAPSHOT, LIST; see
 * {@link ReplicaControl}) let the cluster's control plane manage the replicas on this node. CREATE
 * and DELETE run with the open-volume cache locked, so they never interleave with an OPEN; DELETE
 * waits for the requests already admitted on the volume, then every handle to it answers
 * NOT_FOUND.
 *
 * <p>Threading: thread-safe. Ownership: the server owns its event loops and I/O threads, not the
 * pool; {@link #close()} stops them and releases the port but leaves the pool open.
 */
public final class ReplicaServer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(ReplicaServer.class);

    private final StoragePool pool;
    private final Path replicationDir;
    private final EventLoopGroup boss;
    private final EventLoopGroup workers;
    private final ThreadPoolExecutor io;
    private final ChannelGroup channels = new DefaultChannelGroup("replica-server", GlobalEventExecutor.INSTANCE);
    private final Map<String, ReplicaVolume> volumes = new HashMap<>();
    private final ReplicaControl control;
    private Channel serverChannel;
    /** Asked of every connection in a HELLO when not null. */
    private final ClusterToken token;
    private InetSocketAddress bound;
    private boolean closed;

    private ReplicaServer(StoragePool pool, Path replicationDir, int eventLoops, int ioThreads, ClusterToken token) {
        this.token = token;
        this.pool = pool;
        this.replicationDir = replicationDir;
        this.control = new ReplicaControl(this, pool);
        this.boss = NettyTransport.newEventLoopGroup(1, "replica-accept");
        this.workers = NettyTransport.newEventLoopGroup(eventLoops, "replica-net");
        AtomicInteger n = new AtomicInteger();
        this.io = new ThreadPoolExecutor(ioThreads, ioThreads, 60, TimeUnit.SECONDS,
                new ArrayBlockingQueue<>(65536), r -> {
                    Thread t = new Thread(r, "replica-io-" + n.incrementAndGet());
                    t.setDaemon(true);
                    return t;
                });
    }

    /**
     * Binds {@code bind} (port 0 picks a free port, see {@link #port()}) and serves {@code pool}'s
     * volumes, with 2 event loops and 2 × processors (at least 8) I/O threads.
     *
     * @throws IOException if the address cannot be bound (nothing is left running)
     */
    public static ReplicaServer start(InetSocketAddress bind, StoragePool pool, Path replicationDir)
            throws IOException {
        int ioThreads = Math.max(8, 2 * Runtime.getRuntime().availableProcessors());
        return start(bind, pool, replicationDir, 2, ioThreads);
    }

    /**
     * As {@link #start(InetSocketAddress, StoragePool, Path)}; with a {@code token} (may be null), a
     * connection is served only after a HELLO that carries it ({@link FrameType#HELLO}).
     */
    public static ReplicaServer start(InetSocketAddress bind, StoragePool pool, Path replicationDir,
                                      ClusterToken token) throws IOException {
        int ioThreads = Math.max(8, 2 * Runtime.getRuntime().availableProcessors());
        return start(bind, pool, replicationDir, 2, ioThreads, token);
    }

    /** As {@link #start(InetSocketAddress, StoragePool, Path)} with the thread counts given. */
    public static ReplicaServer start(InetSocketAddress bind, StoragePool pool, Path replicationDir,
                                      int eventLoops, int ioThreads) throws IOException {
        return start(bind, pool, replicationDir, eventLoops, ioThreads, null);
    }

    private static ReplicaServer start(InetSocketAddress bind, StoragePool pool, Path replicationDir,
                                       int eventLoops, int ioThreads, ClusterToken token)
            throws IOException {
        if (bind == null || pool == null || replicationDir == null) {
            throw new IllegalArgumentException("bind, pool and replicationDir must not be null");
        }
        if (eventLoops < 1 || ioThreads < 1) {
            throw new IllegalArgumentException("eventLoops and ioThreads must be >= 1: " + eventLoops + ", " + ioThreads);
        }
        Files.createDirectories(replicationDir);
        ReplicaServer s = new ReplicaServer(pool, replicationDir, eventLoops, ioThreads, token);
        try {
            s.bind(bind);
        } catch (IOException | RuntimeException e) {
            s.close();
            throw e;
        }
        LOG.info("replica server listening on {} ({}; {} event loops, {} I/O threads; replication dir {}){}",
                s.bound, NettyTransport.epoll() ? "epoll" : "nio", eventLoops,
                ioThreads, replicationDir, token == null ? "" : "; cluster token required");
        return s;
    }

    /** The token connections must present, or null. */
    ClusterToken token() {
        return token;
    }

    private void bind(InetSocketAddress bind) throws IOException {
        ServerBootstrap b = new ServerBootstrap()
                .group(boss, workers)
                .channel(NettyTransport.serverChannel(workers))
                .option(ChannelOption.SO_REUSEADDR, true)
                .childOption(ChannelOption.TCP_NODELAY, true)
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        channels.add(ch);
                        ch.pipeline().addLast(NettyTransport.flushCoalescer(), new FrameCodec(),
                                new ReplicaServerHandler(ReplicaServer.this, io));
                    }
                });
        try {
            serverChannel = b.bind(bind).sync().channel();
            bound = (InetSocketAddress) serverChannel.localAddress();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while binding " + bind, e);
        } catch (Exception e) {
            throw new IOException("cannot bind replica server to " + bind + ": " + e, e);
        }
    }

    /** The bound port. */
    public int port() {
        return bound.getPort();
    }

    public InetSocketAddress localAddress() {
        return bound;
    }

    /** The counters of a volume this server has opened, or empty if it never was. */
    public Optional<VolumeCounters> counters(String volumeId) {
        synchronized (volumes) {
            ReplicaVolume v = volumes.get(volumeId);
            return v == null ? Optional.empty() : Optional.of(v.counters());
        }
    }

    /**
     * An endpoint to this server's replica of {@code volumeId} for a coordinator in the same
     * process ({@link LocalReplicaEndpoint}), admitted at {@code epoch} like an OPEN over the wire.
     *
     * @throws StaleEpochException if the replica has seen a newer epoch
     * @throws IOException if the volume does not exist here or cannot be opened
     */
    public LocalReplicaEndpoint openLocal(String nodeId, String volumeId, long epoch) throws IOException {
        ReplicaVolume v = volume(volumeId);
        if (v == null) {
            throw new ReplicaRequestException(localAddress(), volumeId, FrameStatus.NOT_FOUND,
                    "volume " + volumeId + " does not exist on node " + nodeId);
        }
        if (!v.enter(epoch)) {
            throw new StaleEpochException(localAddress(), volumeId, epoch, v.epoch.current());
        }
        v.exit();
        return new LocalReplicaEndpoint(nodeId, localAddress(), v, epoch);
    }

    /**
     * The server's state of a volume, opened on first use; {@code null} if the pool has no such
     * volume. A cached state whose pool volume was deleted (or replaced) behind the server's back is
     * evicted first.
     */
    ReplicaVolume volume(String volumeId) throws IOException {
        synchronized (volumes) {
            ensureOpen();
            Optional<ReplicaStore> store = pool.open(volumeId);
            ReplicaVolume v = volumes.get(volumeId);
            if (v != null && store.isPresent() && store.get() == v.store) {
                return v;
            }
            if (v != null) {
                evictLocked(volumeId);
            }
            if (store.isEmpty()) {
                return null;
            }
            EpochFile epoch = EpochFile.open(replicationDir, volumeId);
            RegionGenerations gens = RegionGenerations.open(replicationDir, volumeId);
            markRecoveredInDoubt(volumeId, store.get(), gens, epoch);
            v = new ReplicaVolume(volumeId, store.get(), gens, epoch);
            volumes.put(volumeId, v);
            LOG.info("volume {}: replica opened for replication at epoch {}", volumeId, epoch.current());
            return v;
        }
    }

    /**
     * The regions the store's crash recovery took as written may hold writes in flight at the crash
     * that other replicas lack, and their generations died with the process: they are marked in
     * doubt for any later epoch here ({@link RegionGenerations#markInDoubt}), durably, before the
     * store forgets them (a crash in between marks them again). Those whose crash also lost the page
     * cache are in doubt for every epoch, this one included: their generation may have reached the
     * disk without the data it names (docs/replication.md, "Power loss").
     */
    private static void markRecoveredInDoubt(String volumeId, ReplicaStore store, RegionGenerations gens,
                                             EpochFile epoch) throws IOException {
        long[] regions = store.regionsRecoveredAfterCrash();
        if (regions.length == 0) {
            return;
        }
        long[] lost = store.regionsRecoveredAfterPowerLoss();
        try {
            gens.markInDoubt(regions, epoch.current());
            if (lost.length > 0) {
                gens.markInDoubt(lost, RegionGenerations.EVERY_EPOCH);
            }
        } catch (IOException | RuntimeException e) {
            gens.close();
            throw e;
        }
        store.forgetRegionsRecoveredAfterCrash();
        LOG.warn("volume {}: {} regions written just before a crash are in doubt for coordinators after epoch {},"
                + " {} of them (the page cache was lost) also for epoch {}, until a copy makes them agree with the"
                + " other replicas", volumeId, regions.length, epoch.current(), lost.length, epoch.current());
    }

    /**
     * CREATE: makes {@code volumeId} a volume of {@code sizeBytes} bytes, empty or (if
     * {@code snapshotId} is not null) with the snapshot's content. Idempotent when the volume
     * exists with that size. A new volume starts with no epoch and no region generations: files
     * left behind by an earlier volume of that id are removed first. Runs with the open-volume
     * cache locked, so no OPEN interleaves.
     *
     * @return the volume's size
     * @throws IllegalArgumentException if the volume exists with another size, or the pool refuses
     *         the ids or the size
     * @throws java.nio.file.NoSuchFileException if the snapshot does not exist
     */
    long createVolume(String volumeId, String snapshotId, long sizeBytes) throws IOException {
        synchronized (volumes) {
            ensureOpen();
            for (int attempt = 0; ; attempt++) {
                Optional<ReplicaStore> existing = pool.open(volumeId);
                if (existing.isPresent()) {
                    long size = existing.get().sizeBytes();
                    if (size != sizeBytes) {
                        throw new IllegalArgumentException("volume " + volumeId + " exists with size " + size
                                + " bytes, not the requested " + sizeBytes + " bytes");
                    }
                    return size;
                }
                evictLocked(volumeId);
                deleteStateFiles(volumeId);
                try {
                    ReplicaStore created = snapshotId == null ? pool.create(volumeId, sizeBytes)
                            : pool.createFromSnapshot(snapshotId, volumeId, sizeBytes);
                    LOG.info("volume {}: replica created, {} bytes{}", volumeId, sizeBytes,
                            snapshotId == null ? "" : " from snapshot " + snapshotId);
                    return created.sizeBytes();
                } catch (FileAlreadyExistsException e) {
                    if (attempt > 0) {
                        throw e;
                    }
                    // created meanwhile through the pool directly: compare sizes as above
                }
            }
        }
    }

    /**
     * DELETE: evicts the volume's state (waiting for its admitted requests; handles to it answer
     * NOT_FOUND from then on), deletes it from the pool, then deletes its epoch and generation
     * files. A missing volume is no error. Runs with the open-volume cache locked.
     *
     * @return whether the pool held the volume
     */
    boolean deleteVolume(String volumeId) throws IOException {
        synchronized (volumes) {
            ensureOpen();
            evictLocked(volumeId);
            boolean existed = pool.open(volumeId).isPresent();
            pool.delete(volumeId);
            deleteStateFiles(volumeId);
            if (existed) {
                LOG.info("volume {}: replica deleted with its epoch and region generations", volumeId);
            }
            return existed;
        }
    }

    /** Drops the cached state of a volume (if any): later requests on its handles answer NOT_FOUND. */
    private void evictLocked(String volumeId) {
        ReplicaVolume v = volumes.remove(volumeId);
        if (v == null) {
            return;
        }
        try {
            v.markDeleted();
        } catch (IOException e) {
            LOG.warn("volume {}: closing region generations on eviction failed", volumeId, e);
        }
    }

    private void deleteStateFiles(String volumeId) throws IOException {
        boolean any = false;
        for (String suffix : new String[] {".gen", ".epoch", ".epoch.tmp", ".doubt", ".doubt.tmp"}) {
            any |= Files.deleteIfExists(replicationDir.resolve(volumeId + suffix));
        }
        if (any) {
            DurableFiles.fsyncDirectory(replicationDir);
        }
    }

    private void ensureOpen() throws IOException {
        if (closed) {
            throw new IOException("replica server is closed");
        }
    }

    /** The handler of control requests, shared by every connection. */
    ReplicaControl control() {
        return control;
    }

    /**
     * Stops accepting, closes every connection (their pending requests get no answer), waits for
     * the I/O threads to finish the requests they hold, and closes the generation tables (forcing
     * them). The port is free when this returns. Idempotent.
     */
    @Override
    public void close() {
        synchronized (volumes) {
            if (closed) {
                return;
            }
            closed = true;
        }
        if (serverChannel != null) {
            serverChannel.close().syncUninterruptibly();
        }
        channels.close().syncUninterruptibly();
        io.shutdown();
        try {
            if (!io.awaitTermination(30, TimeUnit.SECONDS)) {
                LOG.warn("replica server I/O threads still busy after 30 s; closing anyway");
                io.shutdownNow();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            io.shutdownNow();
        }
        boss.shutdownGracefully(0, 5, TimeUnit.SECONDS).syncUninterruptibly();
        workers.shutdownGracefully(0, 5, TimeUnit.SECONDS).syncUninterruptibly();
        synchronized (volumes) {
            for (ReplicaVolume v : volumes.values()) {
                try {
                    v.shutdown();
                } catch (IOException e) {
                    LOG.warn("volume {}: closing region generations failed", v.volumeId, e);
                }
            }
            volumes.clear();
        }
        LOG.info("replica server on port {} closed", bound == null ? -1 : bound.getPort());
    }
}
