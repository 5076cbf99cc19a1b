package dev.stowage.engine.volume;

import dev.stowage.engine.api.ClusterNode;
import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.StowageException;
import dev.stowage.engine.api.Volume;
import dev.stowage.engine.api.VolumeSpec;
import dev.stowage.engine.cluster.ClusterToken;
import dev.stowage.engine.cluster.Membership;
import dev.stowage.engine.cluster.NodeDescriptor;
import dev.stowage.engine.cluster.Placement;
import dev.stowage.engine.replication.Coordinator;
import dev.stowage.engine.replication.IoLimits;
import dev.stowage.engine.replication.IoThrottle;
import dev.stowage.engine.replication.ReplicaEndpoint;
import dev.stowage.engine.replication.ReplicatedCoordinator;
import dev.stowage.engine.replication.ReplicatedCoordinator.ReplicaHealth;
import dev.stowage.engine.replication.net.RemoteReplica;
import dev.stowage.engine.replication.net.RemoteReplicaEndpoint;
import dev.stowage.engine.replication.net.ReplicaServer;
import dev.stowage.engine.replication.net.ReplicaClient;
import dev.stowage.engine.storage.StoragePool;
import io.netty.channel.EventLoopGroup;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Replicas on the cluster's storage nodes: placement over the live members (zones, racks, free
 * space), replica data created, grown, snapshotted and deleted on each node through its replica
 * server, and attached volumes served by a {@link ReplicatedCoordinator} that reaches every
 * replica, the local one included, over the replication protocol.
 *
 * <p>Multi-node operations undo what they did on earlier nodes when a later one fails.
 *
 * <p>Threading: thread-safe; every call blocks for at most {@code requestTimeout} per node.
 */
final class ClusterFleet implements ReplicaFleet {
    private static final Logger LOG = LoggerFactory.getLogger(ClusterFleet.class);

    private final String localNodeId;
    private final Membership membership;
    private final StoragePool localPool;
    /** This node's replica server, reached in-process for local replicas; null if storage-less. */
    private final ReplicaServer localServer;
    private final EventLoopGroup group;
    private final Duration requestTimeout;
    private final double overprovisionRatio;
    private final Map<String, ReplicaClient> clients = new ConcurrentHashMap<>();
    private final ClusterToken token;
    /** Members seen leaving and not back, as last seen; written by the membership's listener thread. */
    private final Map<String, NodeDescriptor> departed = new ConcurrentHashMap<>();
    private final AutoCloseable departures;

    ClusterFleet(String localNodeId, Membership membership, StoragePool localPool, EventLoopGroup group,
                 Duration requestTimeout, double overprovisionRatio) {
        this(localNodeId, membership, localPool, null, group, requestTimeout, overprovisionRatio, null);
    }

    /**
     * @param localPool this node's pool, or null on a storage-less node
     * @param localServer the replica server serving {@code localPool}, or null: then local replicas
     *     are reached over the network like the others
     * @param group event loops for replica connections (owned by the caller)
     * @param token presented to every replica server this node connects to, or null
     */
    ClusterFleet(String localNodeId, Membership membership, StoragePool localPool, ReplicaServer localServer,
                 EventLoopGroup group, Duration requestTimeout, double overprovisionRatio,
                 ClusterToken token) {
        this.token = token;
        this.localNodeId = localNodeId;
        this.membership = membership;
        this.localPool = localPool;
        this.localServer = localServer;
        this.group = group;
        this.requestTimeout = requestTimeout;
        this.overprovisionRatio = overprovisionRatio;
        this.departures = membership.addListener(new Membership.Listener() {
            @Override
            public void onJoin(NodeDescriptor node) {
                departed.remove(node.id());
            }

            @Override
            public void onLeave(NodeDescriptor node) {
                departed.put(node.id(), node);
            }
        });
    }

    @Override
    public String localNodeId() {
        return localNodeId;
    }

    @Override
    public List<String> place(int replicas, long sizeBytes, List<String> sourceNodes, Set<String> zones) {
        if (!sourceNodes.isEmpty()) {
            // Copy-on-write layers live where the source's replicas are: the new volume must live there too.
            for (String node : sourceNodes) {
                if (!membership.isAlive(node)) {
                    throw new StowageException(ErrorCode.UNAVAILABLE, "node " + node
                            + ", which holds the source's data, is not reachable; retry when it is back");
                }
            }
            if (replicas > sourceNodes.size()) {
                throw new StowageException(ErrorCode.INVALID_ARGUMENT, "parameters.repl", "parameters.repl: "
                        + replicas + " exceeds the " + sourceNodes.size() + " replicas of the source", null);
            }
            return List.copyOf(sourceNodes.subList(0, replicas));
        }
        List<NodeDescriptor> candidates = membership.liveNodes();
        return Placement.choose(replicas, candidates, sizeBytes, Set.of(), zones, overprovisionRatio);
    }

    @Override
    public void create(String volumeId, long sizeBytes, VolumeSpec.ContentSource source, List<String> nodes)
            throws IOException {
        List<String> done = new ArrayList<>();
        try {
            for (String node : nodes) {
                ReplicaClient c = client(node);
                if (source instanceof VolumeSpec.ContentSource.FromSnapshot s) {
                    await(c.createReplicaFromSnapshotAsync(volumeId, s.snapshotId(), sizeBytes), node, "create");
                } else if (source instanceof VolumeSpec.ContentSource.FromVolume v) {
                    // A clone: an internal snapshot of the source on that node, then a volume from it.
                    String internal = "clone-of-" + v.volumeId() + "-for-" + volumeId;
                    await(c.snapshotReplicaAsync(v.volumeId(), internal), node, "snapshot");
                    await(c.createReplicaFromSnapshotAsync(volumeId, internal, sizeBytes), node, "create");
                    await(c.deleteSnapshotAsync(internal), node, "delete snapshot");
                } else {
                    await(c.createReplicaAsync(volumeId, sizeBytes), node, "create");
                }
                done.add(node);
            }
        } catch (IOException | RuntimeException e) {
            for (String node : done) {
                try {
                    await(client(node).deleteReplicaAsync(volumeId), node, "delete");
                } catch (IOException | RuntimeException cleanup) {
                    e.addSuppressed(cleanup);
                }
            }
            throw e;
        }
    }

    @Override
    public void delete(String volumeId, List<String> nodes) throws IOException {
        for (String node : nodes) {
            if (!membership.isAlive(node)) {
                // Its start-up deletes replica data no record assigns to it.
                LOG.info("volume {}: node {} is away; its replica is removed when it returns", volumeId, node);
                continue;
            }
            await(client(node).deleteReplicaAsync(volumeId), node, "delete");
        }
    }

    @Override
    public void resize(String volumeId, long sizeBytes, List<String> nodes) throws IOException {
        for (String node : nodes) {
            if (membership.isAlive(node)) {
                await(client(node).resizeReplicaAsync(volumeId, sizeBytes), node, "resize");
            }
        }
    }

    @Override
    public void snapshot(String volumeId, String snapshotId, List<String> nodes) throws IOException {
        List<String> done = new ArrayList<>();
        try {
            for (String node : nodes) {
                await(client(node).snapshotReplicaAsync(volumeId, snapshotId), node, "snapshot");
                done.add(node);
            }
        } catch (IOException | RuntimeException e) {
            for (String node : done) {
                try {
                    await(client(node).deleteSnapshotAsync(snapshotId), node, "delete snapshot");
                } catch (IOException | RuntimeException cleanup) {
                    e.addSuppressed(cleanup);
                }
            }
            throw e;
        }
    }

    @Override
    public void deleteSnapshot(String snapshotId, List<String> nodes) throws IOException {
        for (String node : nodes) {
            if (membership.isAlive(node)) {
                await(client(node).deleteSnapshotAsync(snapshotId), node, "delete snapshot");
            }
        }
    }

    @Override
    public Coordinator open(String volumeId, long sizeBytes, long epoch, List<ReplicaView> replicas, IoLimits limits,
                            ReplicaHealth health) throws IOException {
        Map<ReplicaEndpoint, ReplicatedCoordinator.State> endpoints = new LinkedHashMap<>();
        try {
            for (ReplicaView view : replicas) {
                if (view.state() != Volume.ReplicaState.HEALTHY) {
                    continue;
                }
                try {
                    endpoints.put(endpoint(volumeId, view.nodeId(), epoch), ReplicatedCoordinator.State.HEALTHY);
                } catch (IOException | RuntimeException e) {
                    // Recorded before the volume serves any write: invariant 3.
                    health.markStale(view.nodeId(), e);
                }
            }
            if (endpoints.isEmpty()) {
                throw new StowageException(ErrorCode.UNAVAILABLE, "volume " + volumeId
                        + " has no reachable healthy replica; refusing to serve stale data");
            }
        } catch (IOException | RuntimeException e) {
            endpoints.keySet().forEach(ReplicaEndpoint::close);
            throw e;
        }
        ReplicatedCoordinator coordinator = new ReplicatedCoordinator(volumeId, epoch, sizeBytes, localNodeId,
                endpoints, health, IoThrottle.system(limits));
        try {
            // Before any I/O: writes a previous coordinator left on some replicas only are made alike.
            long start = System.nanoTime();
            int rewritten = coordinator.reconcileInDoubt();
            if (rewritten > 0) {
                LOG.info("volume {}: {} regions in doubt after the previous coordinator made alike on every"
                        + " replica in {} ms", volumeId, rewritten, (System.nanoTime() - start) / 1_000_000);
            }
        } catch (IOException | RuntimeException e) {
            coordinator.close();
            throw e;
        }
        return coordinator;
    }

    /**
     * A fresh endpoint to {@code nodeId}'s replica of a volume: in-process when the replica is this
     * node's own, over the replication protocol otherwise.
     */
    ReplicaEndpoint endpoint(String volumeId, String nodeId, long epoch) throws IOException {
        if (localServer != null && nodeId.equals(localNodeId)) {
            return localServer.openLocal(nodeId, volumeId, epoch);
        }
        RemoteReplica replica = await(client(nodeId).openAsync(volumeId, epoch), nodeId, "open");
        return new RemoteReplicaEndpoint(nodeId, replica, requestTimeout);
    }

    /** A node to hold a new replica next to {@code kept}, never {@code lost}; empty if none qualifies. */
    Optional<String> replacement(List<String> kept, String lost, long sizeBytes, Set<String> zones) {
        List<NodeDescriptor> live = membership.liveNodes();
        List<NodeDescriptor> keptNodes = live.stream().filter(n -> kept.contains(n.id())).toList();
        Set<String> exclude = new java.util.HashSet<>(kept);
        exclude.add(lost);
        try {
            List<String> chosen = Placement.chooseReplacement(1, keptNodes, live, sizeBytes, exclude, zones,
                    overprovisionRatio);
            return chosen.isEmpty() ? Optional.empty() : Optional.of(chosen.get(0));
        } catch (StowageException e) {
            return Optional.empty();
        }
    }

    /** How long {@code nodeId} has been out of the membership (zero while it is in). */
    Duration absentFor(String nodeId) {
        return membership.absentFor(nodeId);
    }

    @Override
    public Set<String> localVolumeIds() throws IOException {
        return localPool == null ? Set.of() : localPool.volumeIds();
    }

    @Override
    public Set<String> localSnapshotIds() throws IOException {
        return localPool == null ? Set.of() : localPool.snapshotIds();
    }

    @Override
    public void deleteLocal(String volumeId) throws IOException {
        if (localPool != null && membership.isAlive(localNodeId)) {
            // Through the server, so that its generation and epoch files go too.
            await(client(localNodeId).deleteReplicaAsync(volumeId), localNodeId, "delete");
        } else if (localPool != null) {
            localPool.delete(volumeId);
        }
    }

    @Override
    public void deleteLocalSnapshot(String snapshotId) throws IOException {
        if (localPool != null) {
            localPool.deleteSnapshot(snapshotId);
        }
    }

    @Override
    public boolean nodeExists(String nodeId) {
        return membership.node(nodeId).isPresent();
    }

    @Override
    public boolean nodeAlive(String nodeId) {
        return membership.isAlive(nodeId);
    }

    @Override
    public java.util.Optional<String> apiAddress(String nodeId) {
        return membership.isAlive(nodeId)
                ? membership.node(nodeId).map(NodeDescriptor::apiAddress).filter(a -> !a.isEmpty())
                : java.util.Optional.empty();
    }

    @Override
    public long provisionableBytes(Map<String, String> topology, long alreadyProvisioned) {
        long best = 0;
        for (NodeDescriptor n : membership.liveNodes()) {
            if (n.storageless()) {
                continue;
            }
            if (topology.containsKey("node") && !topology.get("node").equals(n.id())) {
                continue;
            }
            if (topology.containsKey("zone") && !topology.get("zone").equals(n.zone())) {
                continue;
            }
            if (topology.containsKey("rack") && !topology.get("rack").equals(n.rack())) {
                continue;
            }
            best = Math.max(best, (long) (n.freeBytes() * overprovisionRatio));
        }
        return best;
    }

    /** Live members, and members this fleet saw leave since it started (alive false). */
    @Override
    public List<ClusterNode> nodes() {
        Map<String, ClusterNode> byId = new TreeMap<>();
        departed.values().forEach(n -> byId.put(n.id(), view(n, false)));
        membership.liveNodes().forEach(n -> byId.put(n.id(), view(n, true)));
        return List.copyOf(byId.values());
    }

    private static ClusterNode view(NodeDescriptor n, boolean alive) {
        return new ClusterNode(n.id(), n.address(), n.labels(), n.capacityBytes(), n.freeBytes(), n.storageless(),
                alive);
    }

    private ReplicaClient client(String nodeId) throws IOException {
        ReplicaClient existing = clients.get(nodeId);
        if (existing != null && existing.isConnected()) {
            return existing;
        }
        Optional<NodeDescriptor> node = membership.node(nodeId);
        if (node.isEmpty() || !membership.isAlive(nodeId)) {
            throw new IOException("node " + nodeId + " is not a live member of the cluster");
        }
        InetSocketAddress socket = socketAddress(node.get().address());
        ReplicaClient fresh = await(ReplicaClient.connect(socket, sourceAddress(), group, token), nodeId, "connect");
        ReplicaClient previous = clients.put(nodeId, fresh);
        if (previous != null) {
            previous.close();
        }
        return fresh;
    }

    private static InetSocketAddress socketAddress(String hostPort) {
        int colon = hostPort.lastIndexOf(':');
        return new InetSocketAddress(hostPort.substring(0, colon).replace("[", "").replace("]", ""),
                Integer.parseInt(hostPort.substring(colon + 1)));
    }

    /** The address this node advertises, to send replication traffic from; null if it is a wildcard. */
    private java.net.InetAddress sourceAddress() {
        return membership.node(localNodeId)
                .map(self -> socketAddress(self.address()).getAddress())
                .filter(a -> a != null && !a.isAnyLocalAddress())
                .orElse(null);
    }

    private <T> T await(CompletableFuture<T> future, String nodeId, String what) throws IOException {
        try {
            return future.get(requestTimeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException(what + " on node " + nodeId + " interrupted");
        } catch (TimeoutException e) {
            throw new IOException(what + " on node " + nodeId + " did not finish within " + requestTimeout.toMillis()
                    + " ms");
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof IOException io) {
                throw io;
            }
            if (cause instanceof RuntimeException re) {
                throw re;
            }
            throw new IOException(what + " on node " + nodeId + ": " + cause, cause);
        }
    }

    @Override
    public void close() {
        try {
            departures.close();
        } catch (Exception e) {
            LOG.debug("removing the membership listener: {}", e.toString());
        }
        clients.values().forEach(ReplicaClient::close);
        clients.clear();
    }
}
