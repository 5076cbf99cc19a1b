package dev.stowage.engine.volume;

import dev.stowage.engine.api.ClusterNode;
import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.StowageException;
import dev.stowage.engine.api.VolumeSpec;
import dev.stowage.engine.replication.Coordinator;
import dev.stowage.engine.replication.IoLimits;
import dev.stowage.engine.replication.IoThrottle;
import dev.stowage.engine.replication.ReplicatedCoordinator.ReplicaHealth;
import dev.stowage.engine.replication.VolumeCoordinator;
import dev.stowage.engine.storage.ReplicaStore;
import dev.stowage.engine.storage.StoragePool;
import java.io.IOException;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * One host holding every replica itself: the single-node fleet. Volumes have one replica, in this
 * node's {@link StoragePool}; attached volumes are served by a {@link VolumeCoordinator} straight
 * from the local store.
 */
final class LocalFleet implements ReplicaFleet {
    private final String nodeId;
    private final Map<String, String> labels;
    private final StoragePool pool;
    private final double overprovisionRatio;

    LocalFleet(String nodeId, Map<String, String> labels, StoragePool pool, double overprovisionRatio) {
        this.nodeId = nodeId;
        this.labels = Map.copyOf(labels);
        this.pool = pool;
        this.overprovisionRatio = overprovisionRatio;
    }

    @Override
    public String localNodeId() {
        return nodeId;
    }

    @Override
    public List<String> place(int replicas, long sizeBytes, List<String> sourceNodes, Set<String> zones) {
        if (replicas > 1) {
            throw new StowageException(ErrorCode.RESOURCE_EXHAUSTED, "parameters.repl", "parameters.repl: "
                    + replicas + " replicas need " + replicas + " storage nodes; this node runs without a cluster"
                    + " (start it with --etcd to join one)", null);
        }
        String zone = labels.get("zone");
        if (!zones.isEmpty() && (zone == null || !zones.contains(zone))) {
            throw new StowageException(ErrorCode.RESOURCE_EXHAUSTED, "parameters.zones", "parameters.zones: node "
                    + nodeId + " is in zone " + (zone == null ? "(none)" : zone) + ", not in " + zones, null);
        }
        return List.of(nodeId);
    }

    @Override
    public void create(String volumeId, long sizeBytes, VolumeSpec.ContentSource source, List<String> nodes)
            throws IOException {
        if (source instanceof VolumeSpec.ContentSource.FromSnapshot s) {
            pool.createFromSnapshot(s.snapshotId(), volumeId, sizeBytes);
        } else if (source instanceof VolumeSpec.ContentSource.FromVolume v) {
            pool.cloneVolume(v.volumeId(), volumeId, sizeBytes);
        } else {
            pool.create(volumeId, sizeBytes);
        }
    }

    @Override
    public void delete(String volumeId, List<String> nodes) throws IOException {
        pool.delete(volumeId);
    }

    @Override
    public void resize(String volumeId, long sizeBytes, List<String> nodes) throws IOException {
        ReplicaStore store = pool.open(volumeId).orElseThrow(() -> new StowageException(ErrorCode.INTERNAL,
                "replica data of volume " + volumeId + " is missing on node " + nodeId));
        store.resize(sizeBytes);
    }

    @Override
    public void snapshot(String volumeId, String snapshotId, List<String> nodes) throws IOException {
        pool.snapshot(volumeId, snapshotId);
    }

    @Override
    public void deleteSnapshot(String snapshotId, List<String> nodes) throws IOException {
        pool.deleteSnapshot(snapshotId);
    }

    @Override
    public Coordinator open(String volumeId, long sizeBytes, long epoch, List<ReplicaView> replicas, IoLimits limits,
                            ReplicaHealth health) throws IOException {
        ReplicaStore store = pool.open(volumeId).orElseThrow(() -> new StowageException(ErrorCode.INTERNAL,
                "replica data of volume " + volumeId + " is missing on node " + nodeId));
        return new VolumeCoordinator(volumeId, epoch, store, IoThrottle.system(limits));
    }

    @Override
    public Set<String> localVolumeIds() throws IOException {
        return pool.volumeIds();
    }

    @Override
    public Set<String> localSnapshotIds() throws IOException {
        return pool.snapshotIds();
    }

    @Override
    public void deleteLocal(String volumeId) throws IOException {
        pool.delete(volumeId);
    }

    @Override
    public void deleteLocalSnapshot(String snapshotId) throws IOException {
        pool.deleteSnapshot(snapshotId);
    }

    @Override
    public boolean nodeExists(String id) {
        return nodeId.equals(id);
    }

    @Override
    public boolean nodeAlive(String id) {
        return nodeId.equals(id);
    }

    @Override
    public java.util.Optional<String> apiAddress(String id) {
        return java.util.Optional.empty(); // no other nodes: everything is attached here or nowhere
    }

    @Override
    public long provisionableBytes(Map<String, String> topology, long alreadyProvisioned) throws IOException {
        String node = topology.get("node");
        String zone = topology.get("zone");
        String rack = topology.get("rack");
        if ((node != null && !node.equals(nodeId)) || (zone != null && !zone.equals(labels.get("zone")))
                || (rack != null && !rack.equals(labels.get("rack")))) {
            return 0;
        }
        long limit = (long) (pool.capacityBytes() * overprovisionRatio);
        return Math.max(0, Math.min(limit - alreadyProvisioned, (long) (pool.freeBytes() * overprovisionRatio)));
    }

    /** This node alone: it has no replica server, so no address. */
    @Override
    public List<ClusterNode> nodes() {
        try {
            return List.of(new ClusterNode(nodeId, "", labels, pool.capacityBytes(), pool.freeBytes(), false, true));
        } catch (IOException e) {
            throw new StowageException(ErrorCode.INTERNAL, "reading the storage pool's capacity: " + e.getMessage());
        }
    }

    @Override
    public void close() {
        // The pool belongs to the node runtime, which closes it.
    }
}
