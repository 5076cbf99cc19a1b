package dev.stowage.engine.api.grpc;

import dev.stowage.engine.api.Page;
import dev.stowage.engine.api.Snapshot;
import dev.stowage.engine.api.Volume;
import dev.stowage.engine.api.VolumeService;
import dev.stowage.proto.management.AttachDeviceRequest;
import dev.stowage.proto.management.AttachDeviceResponse;
import dev.stowage.proto.management.CapacityRequest;
import dev.stowage.proto.management.CapacityResponse;
import dev.stowage.proto.management.ClusterStatusRequest;
import dev.stowage.proto.management.ClusterStatusResponse;
import dev.stowage.proto.management.CopyReplicasHeldRequest;
import dev.stowage.proto.management.CopyReplicasHeldResponse;
import dev.stowage.proto.management.CreateSnapshotRequest;
import dev.stowage.proto.management.CreateSnapshotResponse;
import dev.stowage.proto.management.CreateVolumeRequest;
import dev.stowage.proto.management.CreateVolumeResponse;
import dev.stowage.proto.management.DeleteSnapshotRequest;
import dev.stowage.proto.management.DeleteSnapshotResponse;
import dev.stowage.proto.management.DeleteVolumeRequest;
import dev.stowage.proto.management.DeleteVolumeResponse;
import dev.stowage.proto.management.DetachDeviceRequest;
import dev.stowage.proto.management.DetachDeviceResponse;
import dev.stowage.proto.management.ExpandVolumeRequest;
import dev.stowage.proto.management.ExpandVolumeResponse;
import dev.stowage.proto.management.GetSnapshotRequest;
import dev.stowage.proto.management.GetSnapshotResponse;
import dev.stowage.proto.management.GetVolumeRequest;
import dev.stowage.proto.management.GetVolumeResponse;
import dev.stowage.proto.management.ListNodesRequest;
import dev.stowage.proto.management.ListNodesResponse;
import dev.stowage.proto.management.ListSnapshotsRequest;
import dev.stowage.proto.management.ListSnapshotsResponse;
import dev.stowage.proto.management.ListVolumesRequest;
import dev.stowage.proto.management.ListVolumesResponse;
import dev.stowage.proto.management.ManagementGrpc;
import dev.stowage.proto.management.ModifyVolumeRequest;
import dev.stowage.proto.management.ModifyVolumeResponse;
import dev.stowage.proto.management.NodeExistsRequest;
import dev.stowage.proto.management.NodeExistsResponse;
import dev.stowage.proto.management.NodeInfoRequest;
import dev.stowage.proto.management.NodeInfoResponse;
import dev.stowage.proto.management.PublishRequest;
import dev.stowage.proto.management.PublishResponse;
import dev.stowage.proto.management.UnpublishRequest;
import dev.stowage.proto.management.UnpublishResponse;
import io.grpc.stub.StreamObserver;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The gRPC service {@code stowage.management.v1.Management}: each call converts its request with
 * {@link ManagementProtos}, calls the {@link VolumeService} and converts the answer back. Input is
 * validated by the volume service, which names the offending field; failures become status codes through
 * {@link ManagementStatus} only.
 *
 * <p>Threading: handlers block on the volume service, so the server must run them on an executor, never
 * on a Netty event loop ({@link ManagementServer} does). The service is stateless and thread-safe.
 */
public final class ManagementService extends ManagementGrpc.ManagementImplBase {
    private static final Logger LOG = LoggerFactory.getLogger(ManagementService.class);
    private final VolumeService volumes;

    public ManagementService(VolumeService volumes) {
        this.volumes = volumes;
    }

    @Override
    public void createVolume(CreateVolumeRequest request, StreamObserver<CreateVolumeResponse> out) {
        unary("CreateVolume", out, () -> CreateVolumeResponse.newBuilder()
                .setVolume(ManagementProtos.toProto(volumes.createVolume(ManagementProtos.toSpec(request)))).build());
    }

    @Override
    public void deleteVolume(DeleteVolumeRequest request, StreamObserver<DeleteVolumeResponse> out) {
        unary("DeleteVolume", out, () -> {
            volumes.deleteVolume(request.getVolumeId());
            return DeleteVolumeResponse.getDefaultInstance();
        });
    }

    @Override
    public void getVolume(GetVolumeRequest request, StreamObserver<GetVolumeResponse> out) {
        unary("GetVolume", out, () -> {
            GetVolumeResponse.Builder b = GetVolumeResponse.newBuilder();
            volumes.getVolume(request.getVolumeId()).ifPresent(v -> b.setVolume(ManagementProtos.toProto(v)));
            return b.build();
        });
    }

    @Override
    public void listVolumes(ListVolumesRequest request, StreamObserver<ListVolumesResponse> out) {
        unary("ListVolumes", out, () -> {
            Page<Volume> page = volumes.listVolumes(request.getMaxEntries(), request.getStartingToken());
            ListVolumesResponse.Builder b = ListVolumesResponse.newBuilder()
                    .setNextToken(ManagementProtos.nullToEmpty(page.nextToken()));
            page.items().forEach(v -> b.addVolumes(ManagementProtos.toProto(v)));
            return b.build();
        });
    }

    @Override
    public void expandVolume(ExpandVolumeRequest request, StreamObserver<ExpandVolumeResponse> out) {
        unary("ExpandVolume", out, () -> ExpandVolumeResponse.newBuilder()
                .setSizeBytes(volumes.expandVolume(request.getVolumeId(), request.getRequiredBytes(),
                        request.getLimitBytes()))
                .build());
    }

    @Override
    public void modifyVolume(ModifyVolumeRequest request, StreamObserver<ModifyVolumeResponse> out) {
        unary("ModifyVolume", out, () -> ModifyVolumeResponse.newBuilder()
                .setVolume(ManagementProtos.toProto(
                        volumes.modifyVolume(request.getVolumeId(), request.getModifiableParametersMap())))
                .build());
    }

    @Override
    public void createSnapshot(CreateSnapshotRequest request, StreamObserver<CreateSnapshotResponse> out) {
        unary("CreateSnapshot", out, () -> CreateSnapshotResponse.newBuilder()
                .setSnapshot(ManagementProtos.toProto(
                        volumes.createSnapshot(request.getName(), request.getSourceVolumeId())))
                .build());
    }

    @Override
    public void copyReplicasHeld(CopyReplicasHeldRequest request, StreamObserver<CopyReplicasHeldResponse> out) {
        unary("CopyReplicasHeld", out, () -> {
            volumes.copyReplicasHeld(request.getCoordinatorNodeId(), request.getSourceVolumeId(),
                    request.getNodeIdsList(), ManagementProtos.toCopy(request));
            return CopyReplicasHeldResponse.getDefaultInstance();
        });
    }

    @Override
    public void deleteSnapshot(DeleteSnapshotRequest request, StreamObserver<DeleteSnapshotResponse> out) {
        unary("DeleteSnapshot", out, () -> {
            volumes.deleteSnapshot(request.getSnapshotId());
            return DeleteSnapshotResponse.getDefaultInstance();
        });
    }

    @Override
    public void getSnapshot(GetSnapshotRequest request, StreamObserver<GetSnapshotResponse> out) {
        unary("GetSnapshot", out, () -> {
            GetSnapshotResponse.Builder b = GetSnapshotResponse.newBuilder();
            volumes.getSnapshot(request.getSnapshotId()).ifPresent(s -> b.setSnapshot(ManagementProtos.toProto(s)));
            return b.build();
        });
    }

    @Override
    public void listSnapshots(ListSnapshotsRequest request, StreamObserver<ListSnapshotsResponse> out) {
        unary("ListSnapshots", out, () -> {
            Page<Snapshot> page = volumes.listSnapshots(request.getSourceVolumeId(), request.getSnapshotId(),
                    request.getMaxEntries(), request.getStartingToken());
            ListSnapshotsResponse.Builder b = ListSnapshotsResponse.newBuilder()
                    .setNextToken(ManagementProtos.nullToEmpty(page.nextToken()));
            page.items().forEach(s -> b.addSnapshots(ManagementProtos.toProto(s)));
            return b.build();
        });
    }

    @Override
    public void publish(PublishRequest request, StreamObserver<PublishResponse> out) {
        unary("Publish", out, () -> PublishResponse.newBuilder()
                .setVolume(ManagementProtos.toProto(
                        volumes.publish(request.getVolumeId(), request.getNodeId(), request.getReadOnly(),
                                request.getForce())))
                .build());
    }

    @Override
    public void unpublish(UnpublishRequest request, StreamObserver<UnpublishResponse> out) {
        unary("Unpublish", out, () -> {
            volumes.unpublish(request.getVolumeId(), request.getNodeId());
            return UnpublishResponse.getDefaultInstance();
        });
    }

    @Override
    public void attachDevice(AttachDeviceRequest request, StreamObserver<AttachDeviceResponse> out) {
        unary("AttachDevice", out, () -> AttachDeviceResponse.newBuilder()
                .setDevicePath(volumes.attachDevice(request.getVolumeId()).toString()).build());
    }

    @Override
    public void detachDevice(DetachDeviceRequest request, StreamObserver<DetachDeviceResponse> out) {
        unary("DetachDevice", out, () -> {
            volumes.detachDevice(request.getVolumeId());
            return DetachDeviceResponse.getDefaultInstance();
        });
    }

    @Override
    public void capacity(CapacityRequest request, StreamObserver<CapacityResponse> out) {
        unary("Capacity", out, () -> ManagementProtos.toProto(volumes.capacity(request.getTopologySegmentsMap())));
    }

    @Override
    public void nodeInfo(NodeInfoRequest request, StreamObserver<NodeInfoResponse> out) {
        unary("NodeInfo", out, () -> NodeInfoResponse.newBuilder()
                .setNode(ManagementProtos.toProto(volumes.localNode()))
                .setReady(volumes.ready())
                .putAllSupportedParameters(volumes.supportedParameters())
                .build());
    }

    @Override
    public void nodeExists(NodeExistsRequest request, StreamObserver<NodeExistsResponse> out) {
        unary("NodeExists", out, () -> NodeExistsResponse.newBuilder()
                .setExists(volumes.nodeExists(request.getNodeId())).build());
    }

    /**
     * The node serving the API, the cluster's members as it sees them, and how many volumes and
     * snapshots exist.
     */
    @Override
    public void clusterStatus(ClusterStatusRequest request, StreamObserver<ClusterStatusResponse> out) {
        unary("ClusterStatus", out, () -> {
            ClusterStatusResponse.Builder b = ClusterStatusResponse.newBuilder()
                    .setReady(volumes.ready())
                    .addNodes(ManagementProtos.toProto(volumes.localNode()))
                    .setVolumeCount(volumes.listVolumes(0, "").items().size())
                    .setSnapshotCount(volumes.listSnapshots(null, null, 0, "").items().size());
            volumes.clusterNodes().forEach(n -> b.addMembers(ManagementProtos.toProto(n)));
            return b.build();
        });
    }

    @Override
    public void listNodes(ListNodesRequest request, StreamObserver<ListNodesResponse> out) {
        unary("ListNodes", out, () -> {
            ListNodesResponse.Builder b = ListNodesResponse.newBuilder();
            volumes.clusterNodes().forEach(n -> b.addNodes(ManagementProtos.toProto(n)));
            return b.build();
        });
    }

    private static <T> void unary(String method, StreamObserver<T> out, Supplier<T> call) {
        T response;
        try {
            response = call.get();
        } catch (RuntimeException e) {
            LOG.debug("{} failed: {}", method, e.toString());
            out.onError(ManagementStatus.toException(method, e));
            return;
        }
        out.onNext(response);
        out.onCompleted();
    }
}
