package dev.stowage.engine.api.grpc;

import dev.stowage.engine.api.VolumeService;
import io.grpc.Server;
import io.grpc.netty.NettyServerBuilder;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollServerSocketChannel;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Serves the management API ({@link ManagementService}) on a TCP address with Netty's native epoll
 * transport. Plaintext; with an {@link ApiToken} every call must carry it, without one anyone who reaches
 * the address is served (the node warns when that address is not a loopback one).
 *
 * <p>Lifecycle: {@link #start} binds and serves; {@link #close} stops accepting calls, gives running ones
 * a grace period, cancels what is left and stops its threads. Port 0 binds an ephemeral port; {@link #port()}
 * tells which.
 *
 * <p>Threading: calls run on a small pool of this server's own ({@value #HANDLER_THREADS} threads), never on
 * the event loops, because they block on the volume service. Thread-safe.
 */
public final class ManagementServer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(ManagementServer.class);
    static final int HANDLER_THREADS = 8;
    private static final long GRACE_SECONDS = 10;

    private final Server server;
    private final EventLoopGroup boss;
    private final EventLoopGroup workers;
    private final ExecutorService handlers;
    private final InetSocketAddress address;
    private boolean closed;

    private ManagementServer(Server server, EventLoopGroup boss, EventLoopGroup workers, ExecutorService handlers,
                             InetSocketAddress address) {
        this.server = server;
        this.boss = boss;
        this.workers = workers;
        this.handlers = handlers;
        this.address = address;
    }

    /**
     * Binds {@code address} and serves {@code volumes}. Throws {@link UncheckedIOException} naming the
     * address if it cannot be bound (in use, not local), {@link IllegalStateException} without epoll.
     */
    public static ManagementServer start(InetSocketAddress address, VolumeService volumes) {
        return start(address, volumes, java.util.Optional.empty());
    }

    /** As {@link #start(InetSocketAddress, VolumeService)}, refusing calls without {@code token} when present. */
    public static ManagementServer start(InetSocketAddress address, VolumeService volumes,
                                         java.util.Optional<ApiToken> token) {
        if (!Epoll.isAvailable()) {
            throw new IllegalStateException("management API: Netty's native epoll transport is not available: "
                    + Epoll.unavailabilityCause());
        }
        EventLoopGroup boss = new MultiThreadIoEventLoopGroup(1, EpollIoHandler.newFactory());
        EventLoopGroup workers = new MultiThreadIoEventLoopGroup(2, EpollIoHandler.newFactory());
        ExecutorService handlers = Executors.newFixedThreadPool(HANDLER_THREADS, threads("stowage-mgmt-"));
        Server server = NettyServerBuilder.forAddress(address)
                .channelType(EpollServerSocketChannel.class)
                .bossEventLoopGroup(boss)
                .workerEventLoopGroup(workers)
                .executor(handlers)
                // A restarted node rebinds its port although connections of the previous run linger.
                .withOption(ChannelOption.SO_REUSEADDR, true)
                .addService(token.isPresent()
                        ? io.grpc.ServerInterceptors.intercept(new ManagementService(volumes), token.get().serverInterceptor())
                        : new ManagementService(volumes).bindService())
                .build();
        try {
            server.start();
        } catch (IOException e) {
            stop(server, boss, workers, handlers);
            throw new UncheckedIOException("management API: cannot listen on " + address.getHostString() + ":"
                    + address.getPort() + ": " + e.getMessage(), e);
        }
        InetSocketAddress bound = (InetSocketAddress) server.getListenSockets().get(0);
        LOG.info("management API serving on {}:{}{}", bound.getAddress().getHostAddress(), bound.getPort(),
                token.isPresent() ? ", token required" : "");
        if (token.isEmpty() && !bound.getAddress().isLoopbackAddress()) {
            LOG.warn("the management API on {} takes calls from anyone who reaches it: it can create, attach and"
                    + " delete volumes; give every node and client the same --cluster-token-file",
                    bound.getAddress().getHostAddress());
        }
        return new ManagementServer(server, boss, workers, handlers, bound);
    }

    /** The address actually bound (with the real port when 0 was asked for). */
    public InetSocketAddress address() {
        return address;
    }

    public int port() {
        return address.getPort();
    }

    /** "HOST:PORT" of the bound address, as stowctl's --endpoint takes it. */
    public String endpoint() {
        String host = address.getAddress().getHostAddress();
        return (host.contains(":") ? "[" + host + "]" : host) + ":" + address.getPort();
    }

    /** Stops serving; running calls get a grace period, then are cancelled. Idempotent. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        server.shutdown();
        try {
            if (!server.awaitTermination(GRACE_SECONDS, TimeUnit.SECONDS)) {
                LOG.warn("management calls still running after {} s; cancelling them", GRACE_SECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        stop(server, boss, workers, handlers);
        LOG.info("management API on {} stopped", endpoint());
    }

    private static void stop(Server server, EventLoopGroup boss, EventLoopGroup workers, ExecutorService handlers) {
        server.shutdownNow();
        try {
            server.awaitTermination(GRACE_SECONDS, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        boss.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        workers.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        handlers.shutdownNow();
    }

    private static ThreadFactory threads(String prefix) {
        AtomicInteger n = new AtomicInteger();
        return r -> {
            Thread t = new Thread(r, prefix + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
    }
}
