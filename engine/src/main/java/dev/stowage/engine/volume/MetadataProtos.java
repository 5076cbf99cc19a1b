package dev.stowage.engine.volume;

import com.google.protobuf.InvalidProtocolBufferException;
import dev.stowage.engine.api.Snapshot;
import dev.stowage.engine.api.StowageException;
import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.Volume;
import dev.stowage.engine.api.VolumeSpec;
import dev.stowage.proto.metadata.ReplicaRecord;
import dev.stowage.proto.metadata.ReplicaState;
import dev.stowage.proto.metadata.SnapshotRecord;
import dev.stowage.proto.metadata.VolumeRecord;
import java.util.List;
import java.util.Optional;

/**
 * Conversion between the metadata records stored in the {@code MetadataStore} (protobuf) and the
 * engine's domain types. The only class of this package that touches protobuf.
 */
final class MetadataProtos {
    private MetadataProtos() {}

    static VolumeRecord parseVolume(String key, byte[] bytes) {
        try {
            return VolumeRecord.parseFrom(bytes);
        } catch (InvalidProtocolBufferException e) {
            throw new StowageException(ErrorCode.INTERNAL, null, "metadata record " + key + " is unreadable", e);
        }
    }

    static SnapshotRecord parseSnapshot(String key, byte[] bytes) {
        try {
            return SnapshotRecord.parseFrom(bytes);
        } catch (InvalidProtocolBufferException e) {
            throw new StowageException(ErrorCode.INTERNAL, null, "metadata record " + key + " is unreadable", e);
        }
    }

    static String encodeSource(VolumeSpec.ContentSource source) {
        if (source instanceof VolumeSpec.ContentSource.FromSnapshot s) {
            return "snapshot:" + s.snapshotId();
        }
        if (source instanceof VolumeSpec.ContentSource.FromVolume v) {
            return "volume:" + v.volumeId();
        }
        return "";
    }

    static VolumeSpec.ContentSource decodeSource(String encoded) {
        if (encoded.startsWith("snapshot:")) {
            return new VolumeSpec.ContentSource.FromSnapshot(encoded.substring("snapshot:".length()));
        }
        if (encoded.startsWith("volume:")) {
            return new VolumeSpec.ContentSource.FromVolume(encoded.substring("volume:".length()));
        }
        return new VolumeSpec.ContentSource.Empty();
    }

    static Volume toVolume(VolumeRecord r, Volume.Condition condition) {
        List<Volume.Replica> replicas = r.getReplicasList().stream()
                .map(rep -> new Volume.Replica(rep.getNodeId(), toState(rep.getState()),
                        rep.getState() == ReplicaState.HEALTHY ? 100 : rep.getProgressPercent()))
                .toList();
        Optional<Volume.Attachment> attachment = r.hasAttachment()
                ? Optional.of(new Volume.Attachment(r.getAttachment().getNodeId(), r.getAttachment().getReadOnly(),
                        r.getAttachment().getDevicePath().isEmpty()
                                ? Optional.empty() : Optional.of(r.getAttachment().getDevicePath())))
                : Optional.empty();
        return new Volume(r.getId(), r.getName(), r.getSizeBytes(), r.getReplicaCount(), r.getFsType(),
                r.getParametersMap(), decodeSource(r.getContentSource()), replicas, r.getEpoch(), attachment,
                condition);
    }

    static Snapshot toSnapshot(SnapshotRecord r) {
        return new Snapshot(r.getId(), r.getName(), r.getSourceVolumeId(), r.getSizeBytes(),
                r.getCreatedAtMillis(), r.getReady());
    }

    static ReplicaRecord healthyReplica(String nodeId) {
        return ReplicaRecord.newBuilder().setNodeId(nodeId).setState(ReplicaState.HEALTHY).build();
    }

    private static Volume.ReplicaState toState(ReplicaState s) {
        return switch (s) {
            case STALE -> Volume.ReplicaState.STALE;
            case REBUILDING -> Volume.ReplicaState.REBUILDING;
            default -> Volume.ReplicaState.HEALTHY;
        };
    }
}
