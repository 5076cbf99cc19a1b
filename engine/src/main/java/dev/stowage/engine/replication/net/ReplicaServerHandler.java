package dev.stowage.engine.replication.net;

import dev.stowage.engine.cluster.ClusterToken;
import dev.stowage.engine.storage.ChecksumMismatchException;
import dev.stowage.engine.storage.ReplicaStore;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import java.io.IOException;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One connection of the replica server. Frames arrive on the event loop. Small WRITEs are served
 * right there (see {@link #INLINE_WRITE_MAX}): they only copy into the page cache, and handing each one to the I/O executor and its
 * response back cost two thread wake-ups per write, the largest part of a replica's CPU under
 * random 4 KiB writes. So is a FLUSH that is the only request in flight on the connection and has
 * little to write back ({@link #INLINE_FLUSH_MAX_BYTES}): an application that fsyncs after each
 * write waits for exactly those two wake-ups, and nothing else on the connection waits behind it.
 * Everything else that may wait on the disk (READ, other FLUSHes, GENERATIONS, control requests)
 * goes to the server's I/O executor, and its response is written back from there.
 *
 * <p>Back-pressure: past {@link #HIGH_WATER} requests in flight on this connection the channel
 * stops reading until they drop below {@link #LOW_WATER}.
 *
 * <p>Handles are per connection; the volumes behind them are shared by the server. A handle to a
 * volume deleted by a DELETE (from any connection) answers NOT_FOUND and is released. Control
 * requests (CREATE to LIST) carry no handle and go to the server's {@link ReplicaControl}.
 */
final class ReplicaServerHandler extends ChannelInboundHandlerAdapter {
    private static final Logger LOG = LoggerFactory.getLogger(ReplicaServerHandler.class);
    static final int HIGH_WATER = 512;
    static final int LOW_WATER = 256;
    private static final int MAX_REGIONS = Frame.MAX_PAYLOAD / 8;
    /**
     * Largest WRITE served on the event loop. Bigger ones (sequential streams, resync copies of
     * whole regions) spend long enough in checksums and copies that serialising them on the one
     * event loop of a connection costs more than the hand-off to the I/O executor.
     */
    static final int INLINE_WRITE_MAX = 64 << 10;
    /**
     * Most bytes written since a volume's previous flush for a FLUSH to be served on the event
     * loop. Such a flush writes back a few pages, whose writeback the store mostly started as they
     * were written, and a generation page, then flushes the device cache once: tens of microseconds
     * on a fast disk, a few hundred on a slow one (docs/benchmarks.md). One after a burst of
     * writes may wait on the disk for hundreds of milliseconds, and the other connections of the
     * event loop with it, so it goes to the executor.
     */
    static final long INLINE_FLUSH_MAX_BYTES = 64 << 10;

    private final ReplicaServer server;
    private final Executor executor;
    private final ReplicaControl control;
    private final Map<Integer, ReplicaVolume> handles = new ConcurrentHashMap<>();
    private final AtomicInteger nextHandle = new AtomicInteger();
    private final AtomicInteger inFlight = new AtomicInteger();
    /** Whether this connection may be served (see {@link #authenticate}); read and set on its event loop only. */
    private boolean authenticated;

    ReplicaServerHandler(ReplicaServer server, Executor executor) {
        this.server = server;
        this.executor = executor;
        this.control = server.control();
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        Frame req = (Frame) msg;
        if (!authenticated && !authenticate(ctx, req)) {
            return;
        }
        int queued = inFlight.incrementAndGet();
        if (queued > HIGH_WATER) {
            ctx.channel().config().setAutoRead(false);
        }
        if (req.typeByte() == FrameType.WRITE.code() && req.length() <= INLINE_WRITE_MAX
                || req.typeByte() == FrameType.FLUSH.code() && queued == 1 && smallFlush(req)) {
            serve(ctx, req);
            return;
        }
        try {
            executor.execute(() -> serve(ctx, req));
        } catch (RejectedExecutionException e) {
            try {
                respond(ctx, Frame.error(req, FrameStatus.IO_ERROR, 0, req.offset(), "replica server is closing"));
            } finally {
                req.release();
            }
        }
    }

    /** Whether FLUSH {@code req} names an open volume with little to write back (see {@link #INLINE_FLUSH_MAX_BYTES}). */
    private boolean smallFlush(Frame req) {
        ReplicaVolume v = handles.get(req.handle());
        return v != null && v.bytesSinceFlush() <= INLINE_FLUSH_MAX_BYTES;
    }

    /**
     * The first frame of a connection to a server with a cluster token: a HELLO carrying the token
     * is answered OK and the connection served from then on; anything else is answered
     * UNAUTHENTICATED and the connection closed. Returns whether {@code req} is to be served.
     */
    private boolean authenticate(ChannelHandlerContext ctx, Frame req) {
        ClusterToken token = server.token();
        if (token == null) {
            authenticated = true;
            return true;
        }
        try {
            boolean hello = !req.isResponse() && req.typeByte() == FrameType.HELLO.code();
            if (hello && token.matches(ByteBufUtil.getBytes(req.payload()))) {
                authenticated = true;
                ctx.writeAndFlush(Frame.response(req, FrameStatus.OK, 0, 0, 0, Unpooled.EMPTY_BUFFER), ctx.voidPromise());
                return false;
            }
            LOG.warn("replica connection from {} refused: {}", ctx.channel().remoteAddress(),
                    hello ? "wrong cluster token" : "no HELLO with the cluster token first");
            ctx.writeAndFlush(Frame.error(req, FrameStatus.UNAUTHENTICATED, 0, 0, hello
                            ? "wrong cluster token for this replica server"
                            : "this replica server needs the cluster token (--cluster-token-file) in a HELLO first"))
                    .addListener(ChannelFutureListener.CLOSE);
            return false;
        } finally {
            req.release(); // answered here, whichever way
        }
    }

    private void serve(ChannelHandlerContext ctx, Frame req) {
        Frame resp;
        try {
            resp = dispatch(ctx, req);
        } catch (Throwable t) {
            LOG.warn("replica request {} from {} failed unexpectedly", req, ctx.channel().remoteAddress(), t);
            resp = Frame.error(req, FrameStatus.IO_ERROR, 0, req.offset(), String.valueOf(t));
        } finally {
            req.release();
        }
        respond(ctx, resp);
    }

    private void respond(ChannelHandlerContext ctx, Frame resp) {
        ctx.writeAndFlush(resp, ctx.voidPromise());
        if (inFlight.decrementAndGet() < LOW_WATER && !ctx.channel().config().isAutoRead()) {
            ctx.channel().config().setAutoRead(true);
        }
    }

    private Frame dispatch(ChannelHandlerContext ctx, Frame req) {
        FrameType type = req.type();
        if (type == null || req.isResponse() || req.statusByte() != 0) {
            return Frame.error(req, FrameStatus.BAD_REQUEST, 0, 0,
                    "type " + req.typeByte() + " with status " + req.statusByte() + " is not a request");
        }
        if (type.isControl()) {
            return control.serve(req);
        }
        if (type == FrameType.HELLO) {
            return Frame.response(req, FrameStatus.OK, 0, 0, 0, Unpooled.EMPTY_BUFFER); // a repeat, or no token here
        }
        if (type == FrameType.OPEN) {
            return open(req);
        }
        ReplicaVolume v = handles.get(req.handle());
        if (v == null) {
            return Frame.error(req, FrameStatus.NOT_FOUND, 0, 0, "handle " + req.handle() + " is not open");
        }
        if (v.isDeleted()) {
            return deleted(v, req);
        }
        v.requests.increment();
        if (type == FrameType.CLOSE) {
            handles.remove(req.handle());
            return Frame.response(req, FrameStatus.OK, v.epoch.current(), 0, 0, Unpooled.EMPTY_BUFFER);
        }
        if (type == FrameType.EPOCH) {
            return raiseEpoch(v, req);
        }
        try {
            if (!v.enter(req.epoch())) {
                return stale(v, req);
            }
        } catch (ReplicaVolume.DeletedException e) {
            return deleted(v, req);
        } catch (IOException e) {
            return ioError(v, req, e);
        }
        try {
            return switch (type) {
                case WRITE -> write(v, req);
                case READ -> read(ctx, v, req);
                case FLUSH -> flush(v, req);
                case GENERATIONS -> generations(ctx, v, req);
                case IN_DOUBT -> inDoubt(ctx, v, req);
                default -> Frame.error(req, FrameStatus.BAD_REQUEST, 0, 0, "unexpected type " + type);
            };
        } catch (IllegalArgumentException e) {
            return Frame.error(req, FrameStatus.BAD_REQUEST, 0, req.offset(), e.getMessage());
        } catch (ChecksumMismatchException e) {
            LOG.error("volume {}: corrupt block {} on disk", v.volumeId, e.blockIndex());
            return Frame.error(req, FrameStatus.CHECKSUM_MISMATCH, 0,
                    e.blockIndex() * ReplicaStore.BLOCK_SIZE, e.getMessage());
        } catch (IOException e) {
            return ioError(v, req, e);
        } finally {
            v.exit();
        }
    }

    private Frame open(Frame req) {
        String id = req.payloadText();
        String problem = ReplicaControl.idProblem("volumeId", id);
        if (problem != null) {
            return Frame.error(req, FrameStatus.BAD_REQUEST, 0, 0, problem);
        }
        ReplicaVolume v;
        try {
            v = server.volume(id);
        } catch (IllegalArgumentException e) {
            return Frame.error(req, FrameStatus.BAD_REQUEST, 0, 0, e.getMessage());
        } catch (IOException e) {
            LOG.warn("volume {}: open failed", id, e);
            return Frame.error(req, FrameStatus.IO_ERROR, 0, 0, e.toString());
        }
        if (v == null) {
            return Frame.error(req, FrameStatus.NOT_FOUND, 0, 0, "volume " + id + " does not exist");
        }
        v.requests.increment();
        try {
            if (!v.enter(req.epoch())) {
                return stale(v, req);
            }
        } catch (ReplicaVolume.DeletedException e) {
            return Frame.error(req, FrameStatus.NOT_FOUND, 0, 0, "volume " + id + " does not exist");
        } catch (IOException e) {
            return ioError(v, req, e);
        }
        try {
            int handle = nextHandle.incrementAndGet();
            handles.put(handle, v);
            return new Frame(req.typeByte() | FrameType.RESPONSE_BIT, FrameStatus.OK.code(), req.requestId(),
                    handle, req.epoch(), v.epoch.current(), v.store.sizeBytes(), 0, 0, Unpooled.EMPTY_BUFFER);
        } finally {
            v.exit();
        }
    }

    private Frame write(ReplicaVolume v, Frame req) throws IOException {
        if (!req.checksumMatches()) {
            LOG.warn("volume {}: WRITE at {} of {} bytes arrived damaged (crc32c mismatch)",
                    v.volumeId, req.offset(), req.length());
            return Frame.error(req, FrameStatus.CHECKSUM_MISMATCH, 0, req.offset(), "payload crc32c mismatch");
        }
        ByteBuf p = req.payload();
        int n = p.readableBytes();
        if ((req.aux() & Frame.WRITE_BULK) != 0) {
            v.writeBulk(req.offset(), req.generation(), p.nioBuffers());
        } else {
            v.write(req.offset(), req.generation(), req.writeWatermark(), (req.aux() & Frame.WRITE_IN_DOUBT) != 0,
                    p.nioBuffers());
        }
        return Frame.response(req, FrameStatus.OK, req.generation(), req.offset(), n, Unpooled.EMPTY_BUFFER);
    }

    private Frame read(ChannelHandlerContext ctx, ReplicaVolume v, Frame req) throws IOException {
        int n = req.aux();
        if (n <= 0 || n > Frame.MAX_PAYLOAD) {
            return Frame.error(req, FrameStatus.BAD_REQUEST, 0, req.offset(),
                    "read length must be in [1, " + Frame.MAX_PAYLOAD + "]: " + n);
        }
        ByteBuf buf = ctx.alloc().directBuffer(n, n);
        try {
            v.read(req.offset(), buf.nioBuffer(0, n));
            buf.writerIndex(n);
            return Frame.response(req, FrameStatus.OK, 0, req.offset(), n, buf);
        } catch (IOException | RuntimeException e) {
            buf.release();
            throw e;
        }
    }

    private Frame flush(ReplicaVolume v, Frame req) throws IOException {
        v.flush(req.generation());
        return Frame.response(req, FrameStatus.OK, 0, 0, 0, Unpooled.EMPTY_BUFFER);
    }

    private Frame inDoubt(ChannelHandlerContext ctx, ReplicaVolume v, Frame req) throws IOException {
        long[] regions = v.inDoubt(req.epoch());
        if (regions.length > MAX_REGIONS) {
            return Frame.error(req, FrameStatus.IO_ERROR, 0, 0, regions.length + " regions in doubt, more than a"
                    + " response carries (" + MAX_REGIONS + ")");
        }
        ByteBuf buf = ctx.alloc().buffer(regions.length * 8, regions.length * 8);
        for (long r : regions) {
            buf.writeLong(r);
        }
        return Frame.response(req, FrameStatus.OK, 0, 0, regions.length, buf);
    }

    private Frame generations(ChannelHandlerContext ctx, ReplicaVolume v, Frame req) throws IOException {
        int count = req.aux();
        if (count < 0 || count > MAX_REGIONS || req.offset() < 0) {
            return Frame.error(req, FrameStatus.BAD_REQUEST, 0, req.offset(),
                    "region count must be in [0, " + MAX_REGIONS + "] and first region >= 0: "
                            + count + ", " + req.offset());
        }
        long[] gens = v.generations.read(req.offset(), count, req.epoch());
        ByteBuf buf = ctx.alloc().buffer(count * 8, count * 8);
        for (long g : gens) {
            buf.writeLong(g);
        }
        return Frame.response(req, FrameStatus.OK, 0, req.offset(), count, buf);
    }

    private Frame raiseEpoch(ReplicaVolume v, Frame req) {
        try {
            long now = v.raise(req.epoch());
            if (now != req.epoch()) {
                return stale(v, req);
            }
            return Frame.response(req, FrameStatus.OK, now, 0, 0, Unpooled.EMPTY_BUFFER);
        } catch (ReplicaVolume.DeletedException e) {
            return deleted(v, req);
        } catch (IOException e) {
            return ioError(v, req, e);
        }
    }

    /** A handle to a deleted volume: released, and answered NOT_FOUND. */
    private Frame deleted(ReplicaVolume v, Frame req) {
        handles.remove(req.handle(), v);
        return Frame.error(req, FrameStatus.NOT_FOUND, 0, req.offset(),
                "volume " + v.volumeId + " was deleted (handle " + req.handle() + ")");
    }

    private static Frame stale(ReplicaVolume v, Frame req) {
        return Frame.error(req, FrameStatus.STALE_EPOCH, v.epoch.current(), req.offset(),
                "epoch " + req.epoch() + " is older than " + v.epoch.current());
    }

    private static Frame ioError(ReplicaVolume v, Frame req, IOException e) {
        LOG.warn("volume {}: {} failed", v.volumeId, req, e);
        return Frame.error(req, FrameStatus.IO_ERROR, 0, req.offset(), e.toString());
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        LOG.warn("replica connection from {} closed: {}", ctx.channel().remoteAddress(), cause.toString());
        ctx.close();
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        handles.clear();
        ctx.fireChannelInactive();
    }
}
