package dev.stowage.engine.api.grpc;

import dev.stowage.engine.api.Capacity;
import dev.stowage.engine.api.ClusterNode;
import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.NodeInfo;
import dev.stowage.engine.api.ReplicaCopy;
import dev.stowage.engine.api.Snapshot;
import dev.stowage.engine.api.StowageException;
import dev.stowage.engine.api.Volume;
import dev.stowage.engine.api.VolumeSpec;
import dev.stowage.proto.management.Attachment;
import dev.stowage.proto.management.CapacityResponse;
import dev.stowage.proto.management.CloneTarget;
import dev.stowage.proto.management.Condition;
import dev.stowage.proto.management.ContentSource;
import dev.stowage.proto.management.CopyReplicasHeldRequest;
import dev.stowage.proto.management.CreateVolumeRequest;
import dev.stowage.proto.management.Node;
import dev.stowage.proto.management.Replica;
import dev.stowage.proto.management.ReplicaState;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Conversion between the management API's protobuf messages and the engine's domain records, in both
 * directions and nowhere else. Sizes and epochs travel as uint64, which Java holds in a {@code long}
 * bit for bit, so every domain value (a negative size a caller passed by mistake included) survives
 * the round trip and is judged by the engine, not here.
 *
 * <p>Errors: a message the domain cannot represent (an unknown replica state from a newer server) is an
 * INTERNAL {@link StowageException}. Threading: stateless and thread-safe.
 */
public final class ManagementProtos {
    private ManagementProtos() {}

    // ---- volumes ----

    public static dev.stowage.proto.management.Volume toProto(Volume v) {
        dev.stowage.proto.management.Volume.Builder b = dev.stowage.proto.management.Volume.newBuilder()
                .setId(v.id())
                .setName(v.name())
                .setSizeBytes(v.sizeBytes())
                .setReplicaCount(v.replicaCount())
                .setFsType(nullToEmpty(v.fsType()))
                .putAllParameters(v.parameters())
                .setContentSource(toProto(v.contentSource()))
                .setEpoch(v.epoch())
                .setCondition(Condition.newBuilder()
                        .setAbnormal(v.condition().abnormal())
                        .setMessage(nullToEmpty(v.condition().message())));
        for (Volume.Replica r : v.replicas()) {
            b.addReplicas(Replica.newBuilder().setNodeId(r.nodeId()).setState(toProto(r.state()))
                    .setProgressPercent(r.progressPercent()));
        }
        v.attachment().ifPresent(a -> b.setAttachment(Attachment.newBuilder()
                .setNodeId(a.nodeId())
                .setReadOnly(a.readOnly())
                .setDevicePath(a.devicePath().orElse(""))));
        return b.build();
    }

    public static Volume toDomain(dev.stowage.proto.management.Volume v) {
        List<Volume.Replica> replicas = new ArrayList<>();
        for (Replica r : v.getReplicasList()) {
            replicas.add(new Volume.Replica(r.getNodeId(), toDomain(r.getState()), r.getProgressPercent()));
        }
        Optional<Volume.Attachment> attachment = v.hasAttachment()
                ? Optional.of(new Volume.Attachment(v.getAttachment().getNodeId(), v.getAttachment().getReadOnly(),
                        emptyToNone(v.getAttachment().getDevicePath())))
                : Optional.empty();
        return new Volume(v.getId(), v.getName(), v.getSizeBytes(), v.getReplicaCount(), v.getFsType(),
                Map.copyOf(v.getParametersMap()), toDomain(v.getContentSource()), List.copyOf(replicas),
                v.getEpoch(), attachment,
                new Volume.Condition(v.getCondition().getAbnormal(), v.getCondition().getMessage()));
    }

    static ReplicaState toProto(Volume.ReplicaState state) {
        return switch (state) {
            case HEALTHY -> ReplicaState.REPLICA_STATE_HEALTHY;
            case STALE -> ReplicaState.REPLICA_STATE_STALE;
            case REBUILDING -> ReplicaState.REPLICA_STATE_REBUILDING;
        };
    }

    static Volume.ReplicaState toDomain(ReplicaState state) {
        return switch (state) {
            case REPLICA_STATE_HEALTHY -> Volume.ReplicaState.HEALTHY;
            case REPLICA_STATE_STALE -> Volume.ReplicaState.STALE;
            case REPLICA_STATE_REBUILDING -> Volume.ReplicaState.REBUILDING;
            default -> throw new StowageException(ErrorCode.INTERNAL, "unknown replica state " + state
                    + " from the management API");
        };
    }

    public static ContentSource toProto(VolumeSpec.ContentSource source) {
        if (source instanceof VolumeSpec.ContentSource.FromSnapshot s) {
            return ContentSource.newBuilder().setSnapshotId(s.snapshotId()).build();
        }
        if (source instanceof VolumeSpec.ContentSource.FromVolume v) {
            return ContentSource.newBuilder().setVolumeId(v.volumeId()).build();
        }
        return ContentSource.getDefaultInstance();
    }

    public static VolumeSpec.ContentSource toDomain(ContentSource source) {
        return switch (source.getSourceCase()) {
            case SNAPSHOT_ID -> new VolumeSpec.ContentSource.FromSnapshot(source.getSnapshotId());
            case VOLUME_ID -> new VolumeSpec.ContentSource.FromVolume(source.getVolumeId());
            default -> new VolumeSpec.ContentSource.Empty();
        };
    }

    public static CreateVolumeRequest toRequest(VolumeSpec spec) {
        return CreateVolumeRequest.newBuilder()
                .setName(nullToEmpty(spec.name()))
                .setRequiredBytes(spec.requiredBytes())
                .setLimitBytes(spec.limitBytes())
                .putAllParameters(spec.parameters())
                .putAllModifiableParameters(spec.mutableParameters())
                .setContentSource(toProto(spec.contentSource() == null
                        ? new VolumeSpec.ContentSource.Empty() : spec.contentSource()))
                .build();
    }

    public static VolumeSpec toSpec(CreateVolumeRequest request) {
        return new VolumeSpec(request.getName(), request.getRequiredBytes(), request.getLimitBytes(),
                request.getParametersMap(), request.getModifiableParametersMap(),
                toDomain(request.getContentSource()));
    }

    // ---- held copies (between nodes) ----

    public static CopyReplicasHeldRequest toRequest(String coordinatorNodeId, String sourceVolumeId,
                                                    List<String> nodeIds, ReplicaCopy copy) {
        CopyReplicasHeldRequest.Builder b = CopyReplicasHeldRequest.newBuilder()
                .setCoordinatorNodeId(nullToEmpty(coordinatorNodeId))
                .setSourceVolumeId(nullToEmpty(sourceVolumeId))
                .addAllNodeIds(nodeIds);
        if (copy instanceof ReplicaCopy.Snapshot s) {
            b.setSnapshotId(s.snapshotId());
        } else if (copy instanceof ReplicaCopy.Clone c) {
            b.setClone(CloneTarget.newBuilder().setVolumeId(c.volumeId()).setSizeBytes(c.sizeBytes()));
        }
        return b.build();
    }

    /** The copy a request asks for; INVALID_ARGUMENT naming the field when it names none or a bad one. */
    public static ReplicaCopy toCopy(CopyReplicasHeldRequest request) {
        switch (request.getCopyCase()) {
            case SNAPSHOT_ID:
                if (request.getSnapshotId().isEmpty()) {
                    throw StowageException.invalid("snapshot_id", "snapshot_id: must not be empty");
                }
                return new ReplicaCopy.Snapshot(request.getSnapshotId());
            case CLONE:
                if (request.getClone().getVolumeId().isEmpty()) {
                    throw StowageException.invalid("clone.volume_id", "clone.volume_id: must not be empty");
                }
                if (request.getClone().getSizeBytes() <= 0) {
                    throw StowageException.invalid("clone.size_bytes", "clone.size_bytes: must be positive, was "
                            + Long.toUnsignedString(request.getClone().getSizeBytes()));
                }
                return new ReplicaCopy.Clone(request.getClone().getVolumeId(), request.getClone().getSizeBytes());
            default:
                throw StowageException.invalid("copy", "copy: one of snapshot_id or clone is required");
        }
    }

    // ---- snapshots, nodes, capacity ----

    public static dev.stowage.proto.management.Snapshot toProto(Snapshot s) {
        return dev.stowage.proto.management.Snapshot.newBuilder()
                .setId(s.id())
                .setName(nullToEmpty(s.name()))
                .setSourceVolumeId(nullToEmpty(s.sourceVolumeId()))
                .setSizeBytes(s.sizeBytes())
                .setCreatedAtMillis(s.createdAtMillis())
                .setReadyToUse(s.readyToUse())
                .build();
    }

    public static Snapshot toDomain(dev.stowage.proto.management.Snapshot s) {
        return new Snapshot(s.getId(), s.getName(), s.getSourceVolumeId(), s.getSizeBytes(), s.getCreatedAtMillis(),
                s.getReadyToUse());
    }

    public static Node toProto(NodeInfo n) {
        return Node.newBuilder().setNodeId(n.nodeId()).putAllLabels(n.labels()).setMaxVolumes(n.maxVolumes()).build();
    }

    public static NodeInfo toDomain(Node n) {
        return new NodeInfo(n.getNodeId(), Map.copyOf(n.getLabelsMap()), n.getMaxVolumes());
    }

    public static dev.stowage.proto.management.ClusterNode toProto(ClusterNode n) {
        return dev.stowage.proto.management.ClusterNode.newBuilder()
                .setNodeId(n.id())
                .setAddress(nullToEmpty(n.address()))
                .putAllLabels(n.labels())
                .setCapacityBytes(n.capacityBytes())
                .setFreeBytes(n.freeBytes())
                .setStorageless(n.storageless())
                .setAlive(n.alive())
                .build();
    }

    public static ClusterNode toDomain(dev.stowage.proto.management.ClusterNode n) {
        return new ClusterNode(n.getNodeId(), n.getAddress(), Map.copyOf(n.getLabelsMap()), n.getCapacityBytes(),
                n.getFreeBytes(), n.getStorageless(), n.getAlive());
    }

    public static CapacityResponse toProto(Capacity c) {
        return CapacityResponse.newBuilder()
                .setAvailableBytes(c.availableBytes())
                .setMaximumVolumeBytes(c.maximumVolumeBytes())
                .setMinimumVolumeBytes(c.minimumVolumeBytes())
                .build();
    }

    public static Capacity toDomain(CapacityResponse c) {
        return new Capacity(c.getAvailableBytes(), c.getMaximumVolumeBytes(), c.getMinimumVolumeBytes());
    }

    /** Proto strings cannot be null: a null filter or token travels as "". */
    static String nullToEmpty(String s) {
        return s == null ? "" : s;
    }

    private static Optional<String> emptyToNone(String s) {
        return s.isEmpty() ? Optional.empty() : Optional.of(s);
    }
}
