package dev.stowage.csi.server;

import java.util.LinkedHashMap;
import java.util.Map;

import com.google.protobuf.Timestamp;

import csi.v1.Csi;
import dev.stowage.engine.api.NodeInfo;
import dev.stowage.engine.api.Snapshot;
import dev.stowage.engine.api.Volume;
import dev.stowage.engine.api.VolumeSpec;

/**
 * Conversions between the engine's domain records and CSI messages, in one place at the edge.
 * Stateless and thread-safe.
 */
public final class CsiProtos {
    /** Topology key of the node a volume can be used on (the replica nodes, per the design's locality rule). */
    public static final String TOPOLOGY_NODE = "topology.stowage.dev/node";
    public static final String TOPOLOGY_ZONE = "topology.stowage.dev/zone";
    public static final String TOPOLOGY_RACK = "topology.stowage.dev/rack";
    /** Keys of {@code volume_context} in CreateVolume's answer. */
    public static final String CONTEXT_FS_TYPE = "fsType";
    public static final String CONTEXT_REPLICAS = "repl";
    /** Key of the publish context: the volume's epoch when it was published. */
    public static final String PUBLISH_EPOCH = "stowage.dev/epoch";

    private CsiProtos() {}

    /** The CSI volume for {@code volume}, with one accessible topology per replica node. */
    public static Csi.Volume volume(Volume volume) {
        Map<String, String> context = new LinkedHashMap<>();
        if (volume.fsType() != null && !volume.fsType().isEmpty()) {
            context.put(CONTEXT_FS_TYPE, volume.fsType());
        }
        context.put(CONTEXT_REPLICAS, Integer.toString(volume.replicaCount()));
        Csi.Volume.Builder builder = Csi.Volume.newBuilder()
                .setVolumeId(volume.id())
                .setCapacityBytes(volume.sizeBytes())
                .putAllVolumeContext(context);
        contentSource(volume.contentSource()).ifPresent(builder::setContentSource);
        volume.replicas().stream().map(Volume.Replica::nodeId).distinct().forEach(node ->
                builder.addAccessibleTopology(Csi.Topology.newBuilder().putSegments(TOPOLOGY_NODE, node)));
        return builder.build();
    }

    /** CSI's content source for a domain one; empty for none. */
    public static java.util.Optional<Csi.VolumeContentSource> contentSource(VolumeSpec.ContentSource source) {
        if (source instanceof VolumeSpec.ContentSource.FromSnapshot s) {
            return java.util.Optional.of(Csi.VolumeContentSource.newBuilder()
                    .setSnapshot(Csi.VolumeContentSource.SnapshotSource.newBuilder().setSnapshotId(s.snapshotId()))
                    .build());
        }
        if (source instanceof VolumeSpec.ContentSource.FromVolume v) {
            return java.util.Optional.of(Csi.VolumeContentSource.newBuilder()
                    .setVolume(Csi.VolumeContentSource.VolumeSource.newBuilder().setVolumeId(v.volumeId()))
                    .build());
        }
        return java.util.Optional.empty();
    }

    /** The domain content source of a CreateVolume request; INVALID_ARGUMENT names a missing id. */
    public static VolumeSpec.ContentSource contentSource(Csi.CreateVolumeRequest request) {
        if (!request.hasVolumeContentSource()) {
            return new VolumeSpec.ContentSource.Empty();
        }
        Csi.VolumeContentSource source = request.getVolumeContentSource();
        switch (source.getTypeCase()) {
            case SNAPSHOT:
                return new VolumeSpec.ContentSource.FromSnapshot(Requests.require(
                        "volume_content_source.snapshot.snapshot_id", source.getSnapshot().getSnapshotId()));
            case VOLUME:
                return new VolumeSpec.ContentSource.FromVolume(Requests.require(
                        "volume_content_source.volume.volume_id", source.getVolume().getVolumeId()));
            default:
                throw Requests.invalid("volume_content_source", "must set snapshot or volume");
        }
    }

    public static Csi.Snapshot snapshot(Snapshot snapshot) {
        long millis = snapshot.createdAtMillis();
        return Csi.Snapshot.newBuilder()
                .setSnapshotId(snapshot.id())
                .setSourceVolumeId(snapshot.sourceVolumeId())
                .setSizeBytes(snapshot.sizeBytes())
                .setReadyToUse(snapshot.readyToUse())
                .setCreationTime(Timestamp.newBuilder()
                        .setSeconds(Math.floorDiv(millis, 1000L))
                        .setNanos((int) Math.floorMod(millis, 1000L) * 1_000_000))
                .build();
    }

    public static Csi.VolumeCondition condition(Volume.Condition condition) {
        return Csi.VolumeCondition.newBuilder()
                .setAbnormal(condition.abnormal())
                .setMessage(condition.message() == null ? "" : condition.message())
                .build();
    }

    /** The topology of a node: its id, plus zone and rack when it is labelled with them. */
    public static Csi.Topology nodeTopology(String nodeId, NodeInfo node) {
        Csi.Topology.Builder topology = Csi.Topology.newBuilder().putSegments(TOPOLOGY_NODE, nodeId);
        Map<String, String> labels = node.labels() == null ? Map.of() : node.labels();
        if (labels.containsKey("zone")) {
            topology.putSegments(TOPOLOGY_ZONE, labels.get("zone"));
        }
        if (labels.containsKey("rack")) {
            topology.putSegments(TOPOLOGY_RACK, labels.get("rack"));
        }
        return topology.build();
    }
}
