package dev.stowage.engine.replication.net;

import io.netty.channel.EventLoopGroup;
import io.netty.channel.IoEventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.ServerChannel;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollServerSocketChannel;
import io.netty.channel.epoll.EpollSocketChannel;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.handler.flush.FlushConsolidationHandler;
import io.netty.util.concurrent.DefaultThreadFactory;

/**
 * Picks Netty's transport: native epoll where it loads (Linux), NIO otherwise. Event loop groups
 * made here are owned by the caller, who shuts them down.
 */
public final class NettyTransport {
    private NettyTransport() {}

    /** Whether the native epoll transport is in use. */
    public static boolean epoll() {
        return Epoll.isAvailable();
    }

    /** A new event loop group of {@code threads} daemon threads named {@code name-N}, epoll if available. */
    public static EventLoopGroup newEventLoopGroup(int threads, String name) {
        DefaultThreadFactory tf = new DefaultThreadFactory(name, true);
        return new MultiThreadIoEventLoopGroup(threads, tf,
                epoll() ? EpollIoHandler.newFactory() : NioIoHandler.newFactory());
    }

    /**
     * The first handler of every replication pipeline: flushes asked for while frames are being
     * read, or queued from other threads, leave in one system call instead of one each. Under a
     * queue depth of 32 a connection carries many small frames at once, and a writev per frame was
     * a large part of the replication CPU. A lone frame is still flushed in the same event-loop turn.
     */
    static FlushConsolidationHandler flushCoalescer() {
        return new FlushConsolidationHandler(FlushConsolidationHandler.DEFAULT_EXPLICIT_FLUSH_AFTER_FLUSHES, true);
    }

    static boolean isEpollGroup(EventLoopGroup group) {
        return epoll() && group instanceof IoEventLoopGroup g && g.isIoType(EpollIoHandler.class);
    }

    static Class<? extends SocketChannel> socketChannel(EventLoopGroup group) {
        return isEpollGroup(group) ? EpollSocketChannel.class : NioSocketChannel.class;
    }

    static Class<? extends ServerChannel> serverChannel(EventLoopGroup group) {
        return isEpollGroup(group) ? EpollServerSocketChannel.class : NioServerSocketChannel.class;
    }
}
