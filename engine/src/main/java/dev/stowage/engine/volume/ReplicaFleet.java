package dev.stowage.engine.volume;

import dev.stowage.engine.api.VolumeSpec;
import dev.stowage.engine.replication.Coordinator;
import dev.stowage.engine.replication.IoLimits;
import dev.stowage.engine.replication.ReplicatedCoordinator.ReplicaHealth;
import java.io.IOException;
import java.util.List;
import java.util.Set;

/**
 * Where a volume's replicas live and how the control plane reaches them: the one seam between the
 * volume service (records, names, validation, CSI semantics) and the data. {@link LocalFleet} keeps
 * every replica in this node's pool; {@link ClusterFleet} places replicas on the cluster's storage
 * nodes and reaches them over the replication protocol.
 *
 * <p>Every multi-node operation is all-or-nothing from the caller's view: on failure it undoes
 * what it did on the nodes it reached before throwing.
 *
 * <p>Threading: thread-safe; calls block (they are control-plane calls, never on an event loop).
 */
interface ReplicaFleet extends AutoCloseable {

    /** This node's id. */
    String localNodeId();

    /**
     * Nodes for a new volume's replicas; {@code sourceNodes} (non-empty for restores and clones) are
     * the nodes that hold the source's layers, which copy-on-write ties the new volume to.
     */
    List<String> place(int replicas, long sizeBytes, List<String> sourceNodes, Set<String> zones);

    void create(String volumeId, long sizeBytes, VolumeSpec.ContentSource source, List<String> nodes) throws IOException;

    void delete(String volumeId, List<String> nodes) throws IOException;

    void resize(String volumeId, long sizeBytes, List<String> nodes) throws IOException;

    void snapshot(String volumeId, String snapshotId, List<String> nodes) throws IOException;

    void deleteSnapshot(String snapshotId, List<String> nodes) throws IOException;

    /** Starts the coordinator of a volume attached on this node, with replicas in the given states. */
    Coordinator open(String volumeId, long sizeBytes, long epoch, List<ReplicaView> replicas, IoLimits limits,
                     ReplicaHealth health) throws IOException;

    /** Volume ids whose replica data this node's pool holds (empty on a storage-less node). */
    Set<String> localVolumeIds() throws IOException;

    /** Removes replica data of this node's pool that no volume record assigns to this node. */
    void deleteLocal(String volumeId) throws IOException;

    /** Snapshot ids whose layers this node's pool holds (empty on a storage-less node). */
    Set<String> localSnapshotIds() throws IOException;

    /** Removes a snapshot's layers from this node's pool (crash repair). */
    void deleteLocalSnapshot(String snapshotId) throws IOException;

    boolean nodeExists(String nodeId);

    boolean nodeAlive(String nodeId);

    /**
     * The management API address ("host:port") that live node {@code nodeId} registered; empty when
     * it is not alive or serves none (a single host has no other nodes to call).
     */
    java.util.Optional<String> apiAddress(String nodeId);

    /** Bytes that may still be provisioned on the nodes {@code topology} selects (keys node, zone, rack). */
    long provisionableBytes(java.util.Map<String, String> topology, long alreadyProvisioned) throws IOException;

    /**
     * The nodes of the fleet, in id order: live ones and, not alive, ones seen leaving (see
     * {@link dev.stowage.engine.api.VolumeService#clusterNodes}). A pool that cannot be read is INTERNAL.
     */
    List<dev.stowage.engine.api.ClusterNode> nodes();

    @Override
    void close();

    /** A replica as the volume record knows it. */
    record ReplicaView(String nodeId, dev.stowage.engine.api.Volume.ReplicaState state) {}
}
