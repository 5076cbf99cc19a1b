package dev.stowage.engine.volume;

import dev.stowage.engine.cluster.EmbeddedMetadataStore;
import dev.stowage.engine.cluster.Membership;
import dev.stowage.engine.cluster.NodeDescriptor;
import dev.stowage.engine.replication.net.NettyTransport;
import io.netty.channel.EventLoopGroup;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * A node's view of a cluster for tests, with no process and no etcd: the embedded metadata store,
 * this node's membership and a {@link ClusterFleet} over it, which reaches the replica servers
 * that peers name as their addresses. Peers join and leave through it; {@link #close} closes
 * everything it made, also what a failed test left joined.
 */
final class EmbeddedFleet implements AutoCloseable {
    static final Duration TTL = Duration.ofSeconds(30);

    final EmbeddedMetadataStore store;
    final Membership self;
    final ClusterFleet fleet;
    private final EventLoopGroup group = NettyTransport.newEventLoopGroup(1, "test-fleet");
    private final List<Membership> peers = new ArrayList<>();

    /** Opens the store in {@code dir} and joins {@code self} as this node. */
    EmbeddedFleet(Path dir, NodeDescriptor self) throws IOException {
        EmbeddedMetadataStore opened;
        try {
            opened = EmbeddedMetadataStore.open(dir);
        } catch (IOException | RuntimeException e) {
            group.shutdownGracefully(0, 1, java.util.concurrent.TimeUnit.SECONDS);
            throw e;
        }
        this.store = opened;
        Membership me = null;
        try {
            me = Membership.join(store, self, TTL);
            this.self = me;
            this.fleet = new ClusterFleet(self.id(), me, null, group, Duration.ofSeconds(5), 1.0);
        } catch (RuntimeException e) {
            if (me != null) {
                me.close();
            }
            store.close();
            group.shutdownGracefully(0, 1, java.util.concurrent.TimeUnit.SECONDS);
            throw e;
        }
    }

    /** Joins {@code node} as a peer, until {@link #leave}. */
    Membership join(NodeDescriptor node) {
        Membership m = Membership.join(store, node, TTL);
        peers.add(m);
        return m;
    }

    /** Makes {@code peer} leave: its lease is revoked, and this node sees it away. */
    void leave(Membership peer) {
        peers.remove(peer);
        peer.close();
    }

    @Override
    public void close() {
        fleet.close();
        peers.forEach(Membership::close);
        self.close();
        store.close();
        group.shutdownGracefully(0, 1, java.util.concurrent.TimeUnit.SECONDS).syncUninterruptibly();
    }
}
