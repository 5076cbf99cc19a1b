package dev.stowage.engine.api;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The engine's management API as domain calls: what the CSI driver, the CLI and the gRPC
 * management server all call. Every failure is a {@link StowageException}.
 *
 * <p>Idempotency: create calls with the same name and a compatible spec return the existing object;
 * delete calls on missing objects succeed; attach/detach calls repeat safely.
 *
 * <p>Atomicity: a call that fails leaves nothing half-made (no replica data, no metadata record,
 * no mount or loop device).
 *
 * <p>Threading: thread-safe. Callers that need one operation per volume at a time (CSI) hold their
 * own per-volume locks; the service itself serialises what would corrupt state.
 */
public interface VolumeService {

    /** True once the engine has started and its metadata store and storage pool answer. */
    boolean ready();

    NodeInfo localNode();

    /** Parameters the engine accepts; the values are human descriptions. */
    Map<String, String> supportedParameters();

    Volume createVolume(VolumeSpec spec);

    /** Deletes a volume; FAILED_PRECONDITION if it is attached or published. Missing: no-op. */
    void deleteVolume(String volumeId);

    Optional<Volume> getVolume(String volumeId);

    Page<Volume> listVolumes(int maxEntries, String startingToken);

    /** Grows a volume (online when attached); returns the new size. Shrinking is OUT_OF_RANGE. */
    long expandVolume(String volumeId, long requiredBytes, long limitBytes);

    /** Changes mutable parameters; INVALID_ARGUMENT for immutable or unknown ones. */
    Volume modifyVolume(String volumeId, Map<String, String> mutableParameters);

    Snapshot createSnapshot(String name, String sourceVolumeId);

    void deleteSnapshot(String snapshotId);

    Optional<Snapshot> getSnapshot(String snapshotId);

    /** Snapshots, all or those of one source volume or with one id (filters may be null). */
    Page<Snapshot> listSnapshots(String sourceVolumeId, String snapshotId, int maxEntries, String startingToken);

    /**
     * Records that {@code volumeId} is to be used on {@code nodeId} (CSI ControllerPublish).
     * FAILED_PRECONDITION if it is published to another node that is alive.
     */
    default Volume publish(String volumeId, String nodeId, boolean readOnly) {
        return publish(volumeId, nodeId, readOnly, false);
    }

    /**
     * As {@link #publish(String, String, boolean)}; with {@code force} a publication on another
     * node, even a live one, is taken over. The attach on {@code nodeId} raises the volume's epoch,
     * which fences the old node's coordinator (its writes fail from then on). For an operator who
     * knows the old node is cut off; the CSI path never forces.
     */
    Volume publish(String volumeId, String nodeId, boolean readOnly, boolean force);

    /** Removes the publication to {@code nodeId}; no-op if it is not published there. */
    void unpublish(String volumeId, String nodeId);

    /**
     * On this node: starts the volume's coordinator and frontend and returns the block device
     * (CSI NodeStage). Repeated calls return the same device.
     */
    Path attachDevice(String volumeId);

    /** On this node: removes the block device, the frontend export and the coordinator. */
    void detachDevice(String volumeId);

    Capacity capacity(Map<String, String> topologySegments);

    /** Node ids this service knows, for validating the node of a publish. */
    boolean nodeExists(String nodeId);

    /**
     * Between nodes: on this node, which must be {@code coordinatorNodeId} and have
     * {@code sourceVolumeId} attached, makes {@code copy} of the source's replicas on {@code nodeIds}
     * while the volume's writes are held. FAILED_PRECONDITION naming "coordinator_node_id" when this is
     * another node or the volume is not attached here (the caller looks again where it is attached).
     */
    default void copyReplicasHeld(String coordinatorNodeId, String sourceVolumeId, List<String> nodeIds,
                                  ReplicaCopy copy) {
        throw new StowageException(ErrorCode.FAILED_PRECONDITION, "coordinator_node_id",
                "this node coordinates no replicated volumes", null);
    }

    /**
     * The cluster's nodes as this node sees them, in id order: every live member and, marked not alive,
     * members this node saw leave. A single host without a cluster reports itself alone.
     */
    List<ClusterNode> clusterNodes();
}
