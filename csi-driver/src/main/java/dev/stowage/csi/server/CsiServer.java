package dev.stowage.csi.server;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.BindException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.concurrent.TimeUnit;

import dev.stowage.csi.controller.ControllerService;
import dev.stowage.csi.identity.IdentityService;
import dev.stowage.csi.mount.Mounter;
import dev.stowage.csi.node.NodeService;
import dev.stowage.engine.api.VolumeService;
import io.grpc.Server;
import io.grpc.ServerInterceptors;
import io.grpc.netty.NettyServerBuilder;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollServerDomainSocketChannel;
import io.netty.channel.unix.DomainSocketAddress;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The CSI gRPC server: Identity always, Controller and/or Node as configured, on a Unix domain socket
 * served by Netty's native epoll transport. A stale socket file left by a previous run is removed before
 * binding (any other kind of file at that path is refused), and the socket is made mode 0600 once bound
 * so only the owner (root, like the kubelet and the sidecars) can call it.
 *
 * <p>Lifecycle: {@link #start()} once, then {@link #awaitTermination()} or {@link #close()}; close
 * stops accepting calls, gives running calls a grace period, then cancels them, stops the event loops
 * and removes the socket file.
 *
 * <p>Threading: handlers run on gRPC's default executor, never on the epoll event loop, since they block
 * on the engine and on mount tools. Start and close may be called from any thread.
 */
public final class CsiServer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(CsiServer.class);
    private static final int SOCKET_TYPE_MASK = 0170000;
    private static final int SOCKET_TYPE = 0140000;
    private static final long GRACE_SECONDS = 10;

    private final CsiServerConfig config;
    private final VolumeService volumes;
    private final Mounter mounter;
    private final Path socket;
    private EventLoopGroup boss;
    private EventLoopGroup workers;
    private Server server;
    private boolean stopped;

    /**
     * @param config  where to listen and what to serve
     * @param volumes the engine's management API
     * @param mounter the host's mounter (used by the Node service only)
     */
    public CsiServer(CsiServerConfig config, VolumeService volumes, Mounter mounter) {
        this.config = config;
        this.volumes = volumes;
        this.mounter = mounter;
        this.socket = Endpoint.parse(config.endpoint());
    }

    /** The socket file this server listens on. */
    public Path socketPath() {
        return socket;
    }

    /**
     * Binds the socket and starts serving. Throws {@link IllegalStateException} if something that is not a
     * socket occupies the path or its directory does not exist, {@link UncheckedIOException} if binding fails.
     */
    public synchronized CsiServer start() {
        if (server != null) {
            throw new IllegalStateException("CSI server already started");
        }
        removeStaleSocket();
        VolumeLocks locks = new VolumeLocks();
        LoggingInterceptor logging = new LoggingInterceptor();
        boss = new MultiThreadIoEventLoopGroup(1, EpollIoHandler.newFactory());
        workers = new MultiThreadIoEventLoopGroup(2, EpollIoHandler.newFactory());
        NettyServerBuilder builder = NettyServerBuilder.forAddress(new DomainSocketAddress(socket.toString()))
                .bossEventLoopGroup(boss)
                .workerEventLoopGroup(workers)
                .channelType(EpollServerDomainSocketChannel.class)
                // gRPC asks for TCP keep-alive on accepted channels; a Unix socket has none (Netty warns per call).
                .withChildOption(ChannelOption.SO_KEEPALIVE, null)
                .addService(ServerInterceptors.intercept(
                        new IdentityService(config.driverName(), config.version(), volumes), logging));
        if (config.serves(CsiServerConfig.Service.CONTROLLER)) {
            builder.addService(ServerInterceptors.intercept(new ControllerService(volumes, locks), logging));
        }
        if (config.serves(CsiServerConfig.Service.NODE)) {
            builder.addService(ServerInterceptors.intercept(
                    new NodeService(volumes, mounter, locks, config.nodeId()), logging));
        }
        try {
            server = builder.build().start();
            Files.setPosixFilePermissions(socket, PosixFilePermissions.fromString("rw-------"));
        } catch (IOException e) {
            shutdownNow();
            String reason = e instanceof BindException || e.getCause() instanceof BindException
                    ? "cannot bind " : "cannot serve on ";
            throw new UncheckedIOException(reason + socket + ": " + e.getMessage(), e);
        }
        LOG.info("CSI driver {} {} serving identity and {} on unix://{}", config.driverName(), config.version(),
                config.services(), socket);
        return this;
    }

    private void removeStaleSocket() {
        Path parent = socket.getParent();
        if (parent != null && !Files.isDirectory(parent)) {
            throw new IllegalStateException("directory of the CSI socket does not exist: " + parent);
        }
        if (!Files.exists(socket, LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        int mode;
        try {
            mode = (Integer) Files.getAttribute(socket, "unix:mode", LinkOption.NOFOLLOW_LINKS);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot inspect " + socket + ": " + e.getMessage(), e);
        }
        if ((mode & SOCKET_TYPE_MASK) != SOCKET_TYPE) {
            throw new IllegalStateException(socket + " exists and is not a socket; refusing to replace it");
        }
        try {
            Files.delete(socket);
            LOG.info("removed stale CSI socket {}", socket);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot remove stale socket " + socket + ": " + e.getMessage(), e);
        }
    }

    /** Blocks until the server has terminated (after {@link #close()} from another thread). */
    public void awaitTermination() throws InterruptedException {
        Server s;
        synchronized (this) {
            s = server;
        }
        if (s != null) {
            s.awaitTermination();
        }
    }

    /** Stops serving: running calls get a grace period, then are cancelled. Idempotent. */
    @Override
    public void close() {
        Server s;
        synchronized (this) {
            s = server;
        }
        if (s != null) {
            s.shutdown();
            try {
                if (!s.awaitTermination(GRACE_SECONDS, TimeUnit.SECONDS)) {
                    LOG.warn("CSI calls still running after {} s; cancelling them", GRACE_SECONDS);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        shutdownNow();
    }

    private synchronized void shutdownNow() {
        if (stopped) {
            return;
        }
        stopped = true;
        if (server != null) {
            server.shutdownNow();
            try {
                server.awaitTermination(GRACE_SECONDS, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        if (boss != null) {
            boss.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
            boss = null;
        }
        if (workers != null) {
            workers.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
            workers = null;
        }
        try {
            if (server != null) {
                Files.deleteIfExists(socket);
            }
        } catch (IOException e) {
            LOG.warn("cannot remove CSI socket {}: {}", socket, e.getMessage());
        }
        if (server != null) {
            LOG.info("CSI server on {} stopped", socket);
        }
    }
}
