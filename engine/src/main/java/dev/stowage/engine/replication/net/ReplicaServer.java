package dev.stowage.engine.replication.net;

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
    private Channel serverChannel;
    private InetSocketAddress bound;
    private boolean closed;

    private ReplicaServer(StoragePool pool, Path replicationDir, int eventLoops, int ioThreads) {
        this.pool = pool;
        this.replicationDir = replicationDir;
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

    /** As {@link #start(InetSocketAddress, StoragePool, Path)} with the thread counts given. */
    public static ReplicaServer start(InetSocketAddress bind, StoragePool pool, Path replicationDir,
                                      int eventLoops, int ioThreads) throws IOException {
        if (bind == null || pool == null || replicationDir == null) {
            throw new IllegalArgumentException("bind, pool and replicationDir must not be null");
        }
        if (eventLoops < 1 || ioThreads < 1) {
            throw new IllegalArgumentException("eventLoops and ioThreads must be >= 1: " + eventLoops + ", " + ioThreads);
        }
        java.nio.file.Files.createDirectories(replicationDir);
        ReplicaServer s = new ReplicaServer(pool, replicationDir, eventLoops, ioThreads);
        try {
            s.bind(bind);
        } catch (IOException | RuntimeException e) {
            s.close();
            throw e;
        }
        LOG.info("replica server listening on {} ({}; {} event loops, {} I/O threads; replication dir {})",
                s.bound, NettyTransport.epoll() ? "epoll" : "nio", eventLoops,
                ioThreads, replicationDir);
        return s;
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
                        ch.pipeline().addLast(new FrameCodec(), new ReplicaServerHandler(ReplicaServer.this, io));
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

    /** The server's state of a volume, opened on first use; {@code null} if the pool has no such volume. */
    ReplicaVolume volume(String volumeId) throws IOException {
        synchronized (volumes) {
            if (closed) {
                throw new IOException("replica server is closed");
            }
            ReplicaVolume v = volumes.get(volumeId);
            if (v != null) {
                return v;
            }
            Optional<ReplicaStore> store = pool.open(volumeId);
            if (store.isEmpty()) {
                return null;
            }
            EpochFile epoch = EpochFile.open(replicationDir, volumeId);
            RegionGenerations gens = RegionGenerations.open(replicationDir, volumeId);
            v = new ReplicaVolume(volumeId, store.get(), gens, epoch);
            volumes.put(volumeId, v);
            LOG.info("volume {}: replica opened for replication at epoch {}", volumeId, epoch.current());
            return v;
        }
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
                    v.generations.close();
                } catch (IOException e) {
                    LOG.warn("volume {}: closing region generations failed", v.volumeId, e);
                }
            }
            volumes.clear();
        }
        LOG.info("replica server on port {} closed", bound == null ? -1 : bound.getPort());
    }
}
