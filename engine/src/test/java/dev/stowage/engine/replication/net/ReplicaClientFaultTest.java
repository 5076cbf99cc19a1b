package dev.stowage.engine.replication.net;

import static dev.stowage.engine.replication.net.ReplicaServerClientTest.failure;
import static dev.stowage.engine.replication.net.ReplicaServerClientTest.get;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import dev.stowage.engine.cluster.Await;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.socket.SocketChannel;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The client against a scripted peer speaking the protocol (real TCP on 127.0.0.1): OPEN is
 * answered, a READ is answered with a damaged payload, everything else is held unanswered.
 */
class ReplicaClientFaultTest {
    private EventLoopGroup group;
    private Channel listener;
    private final ConcurrentLinkedQueue<Channel> accepted = new ConcurrentLinkedQueue<>();
    private final List<Frame> held = new ArrayList<>();
    private ReplicaClient client;

    @BeforeEach
    void start() throws Exception {
        group = NettyTransport.newEventLoopGroup(2, "fault-test");
        listener = new ServerBootstrap().group(group).channel(NettyTransport.serverChannel(group))
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        accepted.add(ch);
                        ch.pipeline().addLast(new FrameCodec(), new ScriptedPeer());
                    }
                })
                .bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0)).sync().channel();
        client = get(ReplicaClient.connect((InetSocketAddress) listener.localAddress(), group));
    }

    @AfterEach
    void stop() {
        try {
            if (client != null) {
                client.close();
            }
            listener.close().syncUninterruptibly();
            accepted.forEach(Channel::close);
        } finally {
            synchronized (held) {
                held.forEach(Frame::release);
                held.clear();
            }
            group.shutdownGracefully(0, 5, TimeUnit.SECONDS).syncUninterruptibly();
        }
    }

    private final class ScriptedPeer extends ChannelInboundHandlerAdapter {
        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            Frame req = (Frame) msg;
            if (req.type() == FrameType.OPEN) {
                ctx.writeAndFlush(new Frame(req.typeByte() | FrameType.RESPONSE_BIT, 0, req.requestId(), 7,
                        req.epoch(), req.epoch(), 1 << 20, 0, 0, Unpooled.EMPTY_BUFFER));
                req.release();
            } else if (req.type() == FrameType.READ) {
                Frame resp = Frame.response(req, FrameStatus.OK, 0, req.offset(), req.aux(),
                        Unpooled.buffer(req.aux()).writeZero(req.aux()));
                ctx.writeAndFlush(new Frame(resp.typeByte(), 0, resp.requestId(), resp.handle(), resp.epoch(), 0,
                        resp.offset(), resp.crc() ^ 1, resp.aux(), resp.payload()));
                req.release();
            } else {
                synchronized (held) {
                    held.add(req);
                }
            }
        }
    }

    private int heldCount() {
        synchronized (held) {
            return held.size();
        }
    }

    @Test
    void connectionLossFailsEveryPendingFutureWithTheNodeAddress() throws Exception {
        RemoteReplica r = get(client.openAsync("v", 3));
        List<CompletableFuture<Void>> pending = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            pending.add(r.writeAsync(i * 4096L, ByteBuffer.allocate(4096), 1));
        }
        pending.add(r.flushAsync());
        Await.until(Duration.ofSeconds(10), "the peer holds all 11 requests", () -> heldCount() == 11);
        assertEquals(11, client.pendingRequests());
        accepted.forEach(Channel::close);
        for (CompletableFuture<Void> f : pending) {
            ReplicaUnavailableException e = assertInstanceOf(ReplicaUnavailableException.class, failure(f));
            assertEquals(listener.localAddress(), e.address());
            assertEquals("v", e.volumeId());
        }
        assertEquals(0, client.pendingRequests());
        assertFalse(client.isConnected());
        assertInstanceOf(ReplicaUnavailableException.class, failure(r.flushAsync()));
    }

    @Test
    void clientCloseFailsPendingFutures() throws Exception {
        RemoteReplica r = get(client.openAsync("v", 3));
        CompletableFuture<Void> f = r.flushAsync();
        Await.until(Duration.ofSeconds(10), "the peer holds the flush", () -> heldCount() == 1);
        client.close();
        assertInstanceOf(ReplicaUnavailableException.class, failure(f));
    }

    @Test
    void damagedReadResponseFailsWithChecksumInTransit() throws Exception {
        RemoteReplica r = get(client.openAsync("v", 3));
        ByteBuffer dst = ByteBuffer.allocate(8192);
        ReplicaChecksumException e = assertInstanceOf(ReplicaChecksumException.class,
                failure(r.readAsync(4096, dst)));
        assertEquals(ReplicaChecksumException.Where.IN_TRANSIT, e.where());
        assertEquals(4096, e.offset());
    }
}
