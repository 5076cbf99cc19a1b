package dev.stowage.engine.replication.net;

import dev.stowage.engine.cluster.ClusterToken;
import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.socket.SocketChannel;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One TCP connection to a replica server, shared by every {@link RemoteReplica} opened through
 * it. Requests are pipelined: any number may be in flight, each matched to its response by
 * request id, and responses may come in any order.
 *
 * <p>Errors: each request's future fails with a {@link ReplicaException} subclass:
 * {@link ReplicaUnavailableException} when the connection cannot be made or is lost (every
 * pending future fails at once), {@link StaleEpochException}, {@link ReplicaChecksumException},
 * {@link ReplicaIoException} or {@link ReplicaRequestException} as the replica answered.
 *
 * <p>Threading: thread-safe. Futures complete on the connection's event loop: callbacks attached
 * with the non-async {@code then...} methods run there and must not block (use the
 * {@code ...Async} variants with an executor for anything that blocks). No method blocks.
 *
 * <p>Ownership: the caller owns the event loop group; {@link #close()} closes only the connection.
 */
public final class ReplicaClient implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(ReplicaClient.class);

    /** Maps an OK response to a request's result; may throw to fail the request. Must not keep the frame. */
    @FunctionalInterface
    interface ResponseMapper<T> {
        T map(Frame response) throws ReplicaException;
    }

    private record Pending<T>(CompletableFuture<T> future, ResponseMapper<T> onOk, String volumeId,
                              FrameType type, long epoch, long offset) {
    }

    private final InetSocketAddress address;
    private final Channel channel;
    private final AtomicLong nextRequestId = new AtomicLong();
    private final Map<Long, Pending<?>> pending = new ConcurrentHashMap<>();
    private volatile ReplicaUnavailableException lost;

    private ReplicaClient(InetSocketAddress address, Channel channel) {
        this.address = address;
        this.channel = channel;
    }

    /**
     * Connects to the replica server at {@code address} with TCP_NODELAY on one of {@code group}'s
     * event loops (epoll or NIO channels, matching the group). Fails with
     * {@link ReplicaUnavailableException} if the connection cannot be made.
     */
    public static CompletableFuture<ReplicaClient> connect(InetSocketAddress address, EventLoopGroup group) {
        return connect(address, null, group);
    }

    /**
     * As {@link #connect(InetSocketAddress, EventLoopGroup)}, from {@code source} (any port) when it
     * is not null: a node's replication traffic then leaves from the address it advertises, which is
     * what firewall rules (and the tests' network cuts) name.
     */
    public static CompletableFuture<ReplicaClient> connect(InetSocketAddress address, InetAddress source,
                                                           EventLoopGroup group) {
        return connect(address, source, group, null);
    }

    /**
     * As {@link #connect(InetSocketAddress, InetAddress, EventLoopGroup)}, presenting {@code token}
     * (may be null) in a HELLO before the connection is handed out: a server that refuses it fails
     * the future with a {@link ReplicaRequestException} of status UNAUTHENTICATED.
     */
    public static CompletableFuture<ReplicaClient> connect(InetSocketAddress address, InetAddress source,
                                                           EventLoopGroup group,
                                                           ClusterToken token) {
        CompletableFuture<ReplicaClient> connected = connectPlain(address, source, group);
        if (token == null) {
            return connected;
        }
        return connected.thenCompose(c -> c.call(id -> Frame.request(FrameType.HELLO, id, 0, 0, 0, 0, 0,
                        Unpooled.wrappedBuffer(token.bytes())), null, FrameType.HELLO, 0, 0, resp -> c)
                .whenComplete((ok, failure) -> {
                    if (failure != null) {
                        c.close();
                    }
                }));
    }

    private static CompletableFuture<ReplicaClient> connectPlain(InetSocketAddress address, InetAddress source,
                                                                 EventLoopGroup group) {
        CompletableFuture<ReplicaClient> result = new CompletableFuture<>();
        ReplicaClient[] holder = new ReplicaClient[1];
        Bootstrap b = new Bootstrap()
                .group(group)
                .channel(NettyTransport.socketChannel(group))
                .option(ChannelOption.TCP_NODELAY, true)
                .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, 10_000)
                .handler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        ReplicaClient c = new ReplicaClient(address, ch);
                        holder[0] = c;
                        ch.pipeline().addLast(NettyTransport.flushCoalescer(), new FrameCodec(), c.new ResponseHandler());
                    }
                });
        ChannelFuture cf = source == null ? b.connect(address) : b.connect(address, new InetSocketAddress(source, 0));
        cf.addListener(f -> {
            if (f.isSuccess()) {
                result.complete(holder[0]);
            } else {
                result.completeExceptionally(new ReplicaUnavailableException(address, null,
                        "cannot connect: " + f.cause(), f.cause()));
            }
        });
        return result;
    }

    public InetSocketAddress address() {
        return address;
    }

    /** Whether the connection is up; once lost it stays lost (connect anew). */
    public boolean isConnected() {
        return lost == null && channel.isActive();
    }

    /** Requests sent and not yet answered. */
    public int pendingRequests() {
        return pending.size();
    }

    /**
     * Opens a volume on the replica with {@code epoch}. The replica raises its persisted epoch to
     * {@code epoch} if that is higher; fails with {@link StaleEpochException} if its own is higher,
     * {@link ReplicaRequestException} ({@link FrameStatus#NOT_FOUND}) if it has no such volume.
     */
    public CompletableFuture<RemoteReplica> openAsync(String volumeId, long epoch) {
        if (volumeId == null || volumeId.isEmpty()) {
            return CompletableFuture.failedFuture(new IllegalArgumentException("volumeId must not be empty"));
        }
        byte[] id = volumeId.getBytes(StandardCharsets.UTF_8);
        return call(rid -> Frame.request(FrameType.OPEN, rid, 0, epoch, 0, 0, 0, Unpooled.wrappedBuffer(id)),
                volumeId, FrameType.OPEN, epoch, 0,
                resp -> new RemoteReplica(this, volumeId, resp.handle(), epoch, resp.offset()));
    }

    /**
     * Creates an empty replica volume of {@code sizeBytes} bytes on the replica's node. Idempotent:
     * OK if the volume exists with that size; {@link ReplicaRequestException} BAD_REQUEST (naming
     * both sizes) if it exists with another, or for a bad id or size.
     */
    public CompletableFuture<Void> createReplicaAsync(String volumeId, long sizeBytes) {
        return control(FrameType.CREATE, volumeId, sizeBytes, resp -> null, "volumeId", volumeId);
    }

    /**
     * Creates a replica volume of {@code sizeBytes} bytes (at least the snapshot's size) whose
     * content is the snapshot {@code snapshotId} held on the same node. Idempotent as
     * {@link #createReplicaAsync}; NOT_FOUND if the snapshot does not exist.
     */
    public CompletableFuture<Void> createReplicaFromSnapshotAsync(String volumeId, String snapshotId,
                                                                  long sizeBytes) {
        return control(FrameType.CREATE, volumeId, sizeBytes, resp -> null,
                "volumeId", volumeId, "snapshotId", snapshotId);
    }

    /**
     * Deletes a replica volume, with its persisted epoch and region generations; handles open on
     * it (on any connection) answer NOT_FOUND afterwards. Deleting a missing volume is OK.
     */
    public CompletableFuture<Void> deleteReplicaAsync(String volumeId) {
        return control(FrameType.DELETE, volumeId, 0, resp -> null, "volumeId", volumeId);
    }

    /**
     * Grows a replica volume to {@code sizeBytes}; handles already open see the new size. The same
     * size is OK; a smaller one BAD_REQUEST; a missing volume NOT_FOUND.
     */
    public CompletableFuture<Void> resizeReplicaAsync(String volumeId, long sizeBytes) {
        return control(FrameType.RESIZE, volumeId, sizeBytes, resp -> null, "volumeId", volumeId);
    }

    /**
     * Takes the copy-on-write snapshot {@code snapshotId} of a replica volume. Idempotent: OK if a
     * snapshot of that id exists (its source volume is not compared); NOT_FOUND if the volume is missing.
     */
    public CompletableFuture<Void> snapshotReplicaAsync(String volumeId, String snapshotId) {
        return control(FrameType.SNAPSHOT, volumeId, 0, resp -> null,
                "volumeId", volumeId, "snapshotId", snapshotId);
    }

    /** Deletes a snapshot on the replica's node; a missing snapshot is OK. */
    public CompletableFuture<Void> deleteSnapshotAsync(String snapshotId) {
        return control(FrameType.DELETE_SNAPSHOT, null, 0, resp -> null, "snapshotId", snapshotId);
    }

    /** The ids of every volume the replica's node holds, sorted. */
    public CompletableFuture<List<String>> listReplicasAsync() {
        return control(FrameType.LIST, null, 0, resp -> {
            String text = resp.payloadText();
            return text.isEmpty() ? List.of() : List.of(text.split("\n"));
        });
    }

    /**
     * Sends a control request (no handle, epoch 0) whose payload is the {@code fieldsAndIds}
     * values (name, id pairs) joined by NUL. {@code volumeId} (may be null) names the volume in errors.
     */
    private <T> CompletableFuture<T> control(FrameType type, String volumeId, long offset,
                                             ResponseMapper<T> onOk, String... fieldsAndIds) {
        StringBuilder payload = new StringBuilder();
        for (int i = 0; i < fieldsAndIds.length; i += 2) {
            String id = fieldsAndIds[i + 1];
            if (id == null || id.isEmpty()) {
                return CompletableFuture.failedFuture(
                        new IllegalArgumentException(fieldsAndIds[i] + " must not be empty"));
            }
            if (i > 0) {
                payload.append('\0');
            }
            payload.append(id);
        }
        byte[] p = payload.toString().getBytes(StandardCharsets.UTF_8);
        return call(rid -> Frame.request(type, rid, 0, 0, 0, offset, 0, Unpooled.wrappedBuffer(p)),
                volumeId, type, 0, offset, onOk);
    }

    /**
     * Sends the request {@code build} makes for a fresh request id and completes the returned
     * future with {@code onOk}'s result when the OK response arrives (or fails it, see the class
     * comment). {@code build} runs on the calling thread (payload crc included).
     */
    <T> CompletableFuture<T> call(LongFunction<Frame> build, String volumeId, FrameType type, long epoch,
                                  long offset, ResponseMapper<T> onOk) {
        CompletableFuture<T> future = new CompletableFuture<>();
        ReplicaUnavailableException down = lost;
        if (down != null) {
            future.completeExceptionally(unavailable(volumeId, down.getMessage(), down));
            return future;
        }
        long id = nextRequestId.incrementAndGet();
        Frame frame;
        try {
            frame = build.apply(id);
        } catch (RuntimeException e) {
            future.completeExceptionally(e);
            return future;
        }
        pending.put(id, new Pending<>(future, onOk, volumeId, type, epoch, offset));
        down = lost;
        if (down != null) {
            frame.release();
            fail(id, unavailable(volumeId, down.getMessage(), down));
            return future;
        }
        channel.writeAndFlush(frame).addListener(f -> {
            if (!f.isSuccess()) {
                fail(id, unavailable(volumeId, "send failed: " + f.cause(), f.cause()));
            }
        });
        return future;
    }

    private ReplicaUnavailableException unavailable(String volumeId, String message, Throwable cause) {
        return new ReplicaUnavailableException(address, volumeId, message, cause);
    }

    private void fail(long id, Throwable t) {
        Pending<?> p = pending.remove(id);
        if (p != null) {
            p.future.completeExceptionally(t);
        }
    }

    private void connectionLost(String why, Throwable cause) {
        if (lost == null) {
            lost = new ReplicaUnavailableException(address, null, why, cause);
        }
        for (Long id : pending.keySet()) {
            Pending<?> p = pending.get(id);
            if (p != null) {
                fail(id, unavailable(p.volumeId, why, cause));
            }
        }
    }

    private void complete(Frame resp) {
        Pending<?> p = pending.remove(resp.requestId());
        if (p == null) {
            LOG.warn("replica {} answered unknown request {}", address, resp);
            return;
        }
        completeWith(p, resp);
    }

    private <T> void completeWith(Pending<T> p, Frame resp) {
        FrameStatus status = resp.status();
        try {
            if (!resp.isResponse() || resp.type() != p.type) {
                throw new ReplicaRequestException(address, p.volumeId, FrameStatus.BAD_REQUEST,
                        "response " + resp + " does not answer a " + p.type + " request");
            }
            if (status == FrameStatus.OK) {
                p.future.complete(p.onOk.map(resp));
                return;
            }
            p.future.completeExceptionally(errorOf(p, resp, status));
        } catch (ReplicaException | RuntimeException e) {
            p.future.completeExceptionally(e);
        }
    }

    private ReplicaException errorOf(Pending<?> p, Frame resp, FrameStatus status) {
        if (status == null) {
            return new ReplicaRequestException(address, p.volumeId, FrameStatus.BAD_REQUEST,
                    "unknown status " + resp.statusByte() + ": " + resp.payloadText());
        }
        return switch (status) {
            case STALE_EPOCH -> new StaleEpochException(address, p.volumeId, p.epoch, resp.generation());
            case CHECKSUM_MISMATCH -> new ReplicaChecksumException(address, p.volumeId,
                    p.type == FrameType.READ ? ReplicaChecksumException.Where.ON_DISK
                            : ReplicaChecksumException.Where.IN_TRANSIT, resp.offset());
            case IO_ERROR -> new ReplicaIoException(address, p.volumeId, resp.payloadText());
            default -> new ReplicaRequestException(address, p.volumeId, status, resp.payloadText());
        };
    }

    /** Closes the connection; every pending request fails with {@link ReplicaUnavailableException}. */
    @Override
    public void close() {
        if (lost == null) {
            lost = new ReplicaUnavailableException(address, null, "client closed", null);
        }
        channel.close();
        connectionLost("client closed", null);
    }

    private final class ResponseHandler extends ChannelInboundHandlerAdapter {
        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            Frame resp = (Frame) msg;
            try {
                complete(resp);
            } finally {
                resp.release();
            }
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            if (lost == null) {
                LOG.warn("connection to replica server {} lost with {} requests pending", address, pending.size());
            }
            connectionLost("connection lost", null);
            ctx.fireChannelInactive();
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            LOG.warn("connection to replica server {} failed: {}", address, cause.toString());
            connectionLost("connection failed: " + cause, cause);
            ctx.close();
        }
    }
}
