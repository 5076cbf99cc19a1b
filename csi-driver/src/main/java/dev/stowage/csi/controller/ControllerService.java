package dev.stowage.csi.controller;

import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

import com.google.protobuf.Int64Value;

import csi.v1.ControllerGrpc;
import csi.v1.Csi;
import csi.v1.Csi.ControllerServiceCapability.RPC.Type;
import csi.v1.Csi.VolumeCapability;
import dev.stowage.csi.server.Calls;
import dev.stowage.csi.server.CsiProtos;
import dev.stowage.csi.server.Requests;
import dev.stowage.csi.server.VolumeCapabilities;
import dev.stowage.csi.server.VolumeLocks;
import dev.stowage.engine.api.Capacity;
import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.Page;
import dev.stowage.engine.api.Snapshot;
import dev.stowage.engine.api.StowageException;
import dev.stowage.engine.api.Volume;
import dev.stowage.engine.api.VolumeService;
import dev.stowage.engine.api.VolumeSpec;
import io.grpc.stub.StreamObserver;

/**
 * CSI Controller over the engine's {@link VolumeService}. Each handler validates required fields first
 * (INVALID_ARGUMENT naming the field as the CSI spec spells it), then holds the per-volume (or
 * per-snapshot) try-lock for the rest of the call, so a concurrent call on the same object gets ABORTED.
 * Idempotency is the engine's: creating with the same name and a compatible spec returns the existing
 * object, deleting a missing one succeeds.
 *
 * <p>Threading: thread-safe; handlers block on the engine on gRPC's executor threads.
 */
// Lock handles are try-with-resources variables held for the scope of the call, not read.
@SuppressWarnings("try")
public final class ControllerService extends ControllerGrpc.ControllerImplBase {
    private static final String FS_TYPE_PARAMETER = "fsType";
    private static final List<Type> CAPABILITIES = List.of(
            Type.CREATE_DELETE_VOLUME, Type.PUBLISH_UNPUBLISH_VOLUME, Type.LIST_VOLUMES, Type.GET_CAPACITY,
            Type.CREATE_DELETE_SNAPSHOT, Type.LIST_SNAPSHOTS, Type.CLONE_VOLUME, Type.EXPAND_VOLUME,
            Type.LIST_VOLUMES_PUBLISHED_NODES, Type.VOLUME_CONDITION, Type.GET_VOLUME, Type.MODIFY_VOLUME,
            Type.GET_SNAPSHOT, Type.PUBLISH_READONLY);

    private final VolumeService volumes;
    private final VolumeLocks locks;

    public ControllerService(VolumeService volumes, VolumeLocks locks) {
        this.volumes = volumes;
        this.locks = locks;
    }

    @Override
    public void createVolume(Csi.CreateVolumeRequest request, StreamObserver<Csi.CreateVolumeResponse> observer) {
        Calls.unary("CreateVolume", observer, () -> {
            String name = Requests.require("name", request.getName());
            VolumeCapabilities.requireSupported("volume_capabilities", request.getVolumeCapabilitiesList());
            long required = 0;
            long limit = 0;
            if (request.hasCapacityRange()) {
                required = request.getCapacityRange().getRequiredBytes();
                limit = request.getCapacityRange().getLimitBytes();
                checkRange(required, limit);
            }
            Map<String, String> parameters = Requests.withoutKubernetesKeys(request.getParametersMap());
            fsTypeFromCapabilities(request.getVolumeCapabilitiesList(), parameters);
            VolumeSpec.ContentSource source = CsiProtos.contentSource(request);
            try (VolumeLocks.Held lock = locks.volume(name)) {
                Volume volume = volumes.createVolume(new VolumeSpec(name, required, limit, parameters,
                        request.getModifiableParametersMap(), source));
                return Csi.CreateVolumeResponse.newBuilder().setVolume(CsiProtos.volume(volume)).build();
            }
        });
    }

    private static void checkRange(long required, long limit) {
        if (required < 0) {
            throw Requests.invalid("capacity_range.required_bytes", "must not be negative, got " + required);
        }
        if (limit < 0) {
            throw Requests.invalid("capacity_range.limit_bytes", "must not be negative, got " + limit);
        }
        if (limit > 0 && limit < required) {
            throw Requests.invalid("capacity_range.limit_bytes", "(" + limit
                    + ") must not be smaller than capacity_range.required_bytes (" + required + ")");
        }
    }

    /**
     * The filesystem asked for by the mount capabilities becomes the volume's {@code fsType} parameter
     * (when the engine knows that parameter), so the volume remembers it; conflicting requests are refused.
     */
    private void fsTypeFromCapabilities(List<VolumeCapability> capabilities, Map<String, String> parameters) {
        Set<String> requested = new HashSet<>();
        for (VolumeCapability capability : capabilities) {
            if (capability.hasMount() && !capability.getMount().getFsType().isEmpty()) {
                requested.add(capability.getMount().getFsType());
            }
        }
        if (requested.size() > 1) {
            throw Requests.invalid("volume_capabilities", "ask for different filesystems " + requested);
        }
        if (requested.isEmpty()) {
            return;
        }
        String fsType = requested.iterator().next();
        String given = parameters.get(FS_TYPE_PARAMETER);
        if (given != null && !given.equals(fsType)) {
            throw Requests.invalid("parameters." + FS_TYPE_PARAMETER, "is '" + given
                    + "' but volume_capabilities ask for '" + fsType + "'");
        }
        if (given == null && volumes.supportedParameters().containsKey(FS_TYPE_PARAMETER)) {
            parameters.put(FS_TYPE_PARAMETER, fsType);
        }
    }

    @Override
    public void deleteVolume(Csi.DeleteVolumeRequest request, StreamObserver<Csi.DeleteVolumeResponse> observer) {
        Calls.unary("DeleteVolume", observer, () -> {
            String id = Requests.require("volume_id", request.getVolumeId());
            try (VolumeLocks.Held lock = locks.volume(id)) {
                volumes.deleteVolume(id);
                return Csi.DeleteVolumeResponse.getDefaultInstance();
            }
        });
    }

    @Override
    public void controllerPublishVolume(Csi.ControllerPublishVolumeRequest request,
                                        StreamObserver<Csi.ControllerPublishVolumeResponse> observer) {
        Calls.unary("ControllerPublishVolume", observer, () -> {
            String id = Requests.require("volume_id", request.getVolumeId());
            String node = Requests.require("node_id", request.getNodeId());
            Requests.require("volume_capability", request.hasVolumeCapability());
            VolumeCapabilities.requireSupported("volume_capability", request.getVolumeCapability());
            boolean readOnly = request.getReadonly() || VolumeCapabilities.isReadOnly(request.getVolumeCapability());
            try (VolumeLocks.Held lock = locks.volume(id)) {
                existing(id);
                if (!volumes.nodeExists(node)) {
                    throw StowageException.notFound("node", node);
                }
                Volume volume = volumes.publish(id, node, readOnly);
                return Csi.ControllerPublishVolumeResponse.newBuilder()
                        .putPublishContext(CsiProtos.PUBLISH_EPOCH, Long.toString(volume.epoch()))
                        .build();
            }
        });
    }

    @Override
    public void controllerUnpublishVolume(Csi.ControllerUnpublishVolumeRequest request,
                                          StreamObserver<Csi.ControllerUnpublishVolumeResponse> observer) {
        Calls.unary("ControllerUnpublishVolume", observer, () -> {
            String id = Requests.require("volume_id", request.getVolumeId());
            try (VolumeLocks.Held lock = locks.volume(id)) {
                Optional<Volume> volume = volumes.getVolume(id);
                // A missing volume is unpublished everywhere: the spec asks for OK.
                if (volume.isPresent()) {
                    if (!request.getNodeId().isEmpty()) {
                        volumes.unpublish(id, request.getNodeId());
                    } else {
                        volume.get().attachment().ifPresent(a -> volumes.unpublish(id, a.nodeId()));
                    }
                }
                return Csi.ControllerUnpublishVolumeResponse.getDefaultInstance();
            }
        });
    }

    @Override
    public void validateVolumeCapabilities(Csi.ValidateVolumeCapabilitiesRequest request,
                                           StreamObserver<Csi.ValidateVolumeCapabilitiesResponse> observer) {
        Calls.unary("ValidateVolumeCapabilities", observer, () -> {
            String id = Requests.require("volume_id", request.getVolumeId());
            List<VolumeCapability> capabilities = request.getVolumeCapabilitiesList();
            if (capabilities.isEmpty()) {
                throw Requests.missing("volume_capabilities");
            }
            for (int i = 0; i < capabilities.size(); i++) {
                VolumeCapabilities.validate("volume_capabilities[" + i + "]", capabilities.get(i));
            }
            Volume volume = existing(id);
            Optional<String> problem = Optional.empty();
            for (int i = 0; i < capabilities.size() && problem.isEmpty(); i++) {
                VolumeCapability capability = capabilities.get(i);
                String field = "volume_capabilities[" + i + "]";
                problem = VolumeCapabilities.unsupported(field, capability).map(VolumeCapabilities.Unsupported::message);
                if (problem.isEmpty() && capability.hasMount() && !capability.getMount().getFsType().isEmpty()
                        && volume.fsType() != null && !volume.fsType().isEmpty()
                        && !volume.fsType().equals(capability.getMount().getFsType())) {
                    problem = Optional.of(field + ".mount.fs_type is '" + capability.getMount().getFsType()
                            + "' but volume " + id + " is formatted as " + volume.fsType());
                }
            }
            Csi.ValidateVolumeCapabilitiesResponse.Builder response = Csi.ValidateVolumeCapabilitiesResponse.newBuilder();
            if (problem.isPresent()) {
                return response.setMessage(problem.get()).build();
            }
            return response.setConfirmed(Csi.ValidateVolumeCapabilitiesResponse.Confirmed.newBuilder()
                    .putAllVolumeContext(request.getVolumeContextMap())
                    .addAllVolumeCapabilities(capabilities)
                    .putAllParameters(request.getParametersMap())
                    .putAllModifiableParameters(request.getModifiableParametersMap()))
                    .build();
        });
    }

    @Override
    public void listVolumes(Csi.ListVolumesRequest request, StreamObserver<Csi.ListVolumesResponse> observer) {
        Calls.unary("ListVolumes", observer, () -> {
            int max = Requests.maxEntries(request.getMaxEntries());
            Page<Volume> page = listing(() -> volumes.listVolumes(max, request.getStartingToken()));
            Csi.ListVolumesResponse.Builder response = Csi.ListVolumesResponse.newBuilder()
                    .setNextToken(page.nextToken() == null ? "" : page.nextToken());
            for (Volume volume : page.items()) {
                Csi.ListVolumesResponse.VolumeStatus.Builder status = Csi.ListVolumesResponse.VolumeStatus.newBuilder()
                        .setVolumeCondition(CsiProtos.condition(volume.condition()));
                volume.attachment().ifPresent(a -> status.addPublishedNodeIds(a.nodeId()));
                response.addEntries(Csi.ListVolumesResponse.Entry.newBuilder()
                        .setVolume(CsiProtos.volume(volume))
                        .setStatus(status));
            }
            return response.build();
        });
    }

    /**
     * Runs a listing call; a starting_token the engine cannot resume from is ABORTED, as the CSI spec asks
     * for ListVolumes and ListSnapshots.
     */
    private static <T> Page<T> listing(java.util.function.Supplier<Page<T>> call) {
        try {
            return call.get();
        } catch (StowageException e) {
            if (e.code() == ErrorCode.INVALID_ARGUMENT && "starting_token".equals(e.field())) {
                throw new StowageException(ErrorCode.ABORTED, "starting_token", e.getMessage(), e);
            }
            throw e;
        }
    }

    @Override
    public void getCapacity(Csi.GetCapacityRequest request, StreamObserver<Csi.GetCapacityResponse> observer) {
        Calls.unary("GetCapacity", observer, () -> {
            List<VolumeCapability> capabilities = request.getVolumeCapabilitiesList();
            boolean supported = true;
            for (int i = 0; i < capabilities.size(); i++) {
                String field = "volume_capabilities[" + i + "]";
                VolumeCapabilities.validate(field, capabilities.get(i));
                supported &= VolumeCapabilities.unsupported(field, capabilities.get(i)).isEmpty();
            }
            if (!supported) {
                // The spec: capacity for capabilities the plugin cannot provide is zero.
                return Csi.GetCapacityResponse.newBuilder().setAvailableCapacity(0).build();
            }
            Map<String, String> segments = request.hasAccessibleTopology()
                    ? request.getAccessibleTopology().getSegmentsMap() : Map.of();
            Capacity capacity = volumes.capacity(new HashMap<>(segments));
            Csi.GetCapacityResponse.Builder response = Csi.GetCapacityResponse.newBuilder()
                    .setAvailableCapacity(capacity.availableBytes());
            if (capacity.maximumVolumeBytes() > 0) {
                response.setMaximumVolumeSize(Int64Value.of(capacity.maximumVolumeBytes()));
            }
            if (capacity.minimumVolumeBytes() > 0) {
                response.setMinimumVolumeSize(Int64Value.of(capacity.minimumVolumeBytes()));
            }
            return response.build();
        });
    }

    @Override
    public void controllerGetCapabilities(Csi.ControllerGetCapabilitiesRequest request,
                                          StreamObserver<Csi.ControllerGetCapabilitiesResponse> observer) {
        Calls.unary("ControllerGetCapabilities", observer, () -> {
            Csi.ControllerGetCapabilitiesResponse.Builder response = Csi.ControllerGetCapabilitiesResponse.newBuilder();
            for (Type type : CAPABILITIES) {
                response.addCapabilities(Csi.ControllerServiceCapability.newBuilder()
                        .setRpc(Csi.ControllerServiceCapability.RPC.newBuilder().setType(type)));
            }
            return response.build();
        });
    }

    @Override
    public void createSnapshot(Csi.CreateSnapshotRequest request, StreamObserver<Csi.CreateSnapshotResponse> observer) {
        Calls.unary("CreateSnapshot", observer, () -> {
            String source = Requests.require("source_volume_id", request.getSourceVolumeId());
            String name = Requests.require("name", request.getName());
            try (VolumeLocks.Held snapshotLock = locks.snapshot(name);
                 VolumeLocks.Held volumeLock = locks.volume(source)) {
                Snapshot snapshot = volumes.createSnapshot(name, source);
                return Csi.CreateSnapshotResponse.newBuilder().setSnapshot(CsiProtos.snapshot(snapshot)).build();
            }
        });
    }

    @Override
    public void deleteSnapshot(Csi.DeleteSnapshotRequest request, StreamObserver<Csi.DeleteSnapshotResponse> observer) {
        Calls.unary("DeleteSnapshot", observer, () -> {
            String id = Requests.require("snapshot_id", request.getSnapshotId());
            try (VolumeLocks.Held lock = locks.snapshot(id)) {
                volumes.deleteSnapshot(id);
                return Csi.DeleteSnapshotResponse.getDefaultInstance();
            }
        });
    }

    @Override
    public void listSnapshots(Csi.ListSnapshotsRequest request, StreamObserver<Csi.ListSnapshotsResponse> observer) {
        Calls.unary("ListSnapshots", observer, () -> {
            int max = Requests.maxEntries(request.getMaxEntries());
            String source = request.getSourceVolumeId().isEmpty() ? null : request.getSourceVolumeId();
            String id = request.getSnapshotId().isEmpty() ? null : request.getSnapshotId();
            Page<Snapshot> page;
            try {
                page = listing(() -> volumes.listSnapshots(source, id, max, request.getStartingToken()));
            } catch (StowageException e) {
                if (e.code() != ErrorCode.NOT_FOUND) {
                    throw e;
                }
                // An unknown snapshot id or source volume filters everything out: an empty list, not an error.
                page = new Page<>(List.of(), "");
            }
            Csi.ListSnapshotsResponse.Builder response = Csi.ListSnapshotsResponse.newBuilder()
                    .setNextToken(page.nextToken() == null ? "" : page.nextToken());
            for (Snapshot snapshot : page.items()) {
                response.addEntries(Csi.ListSnapshotsResponse.Entry.newBuilder().setSnapshot(CsiProtos.snapshot(snapshot)));
            }
            return response.build();
        });
    }

    @Override
    public void getSnapshot(Csi.GetSnapshotRequest request, StreamObserver<Csi.GetSnapshotResponse> observer) {
        Calls.unary("GetSnapshot", observer, () -> {
            String id = Requests.require("snapshot_id", request.getSnapshotId());
            Snapshot snapshot = volumes.getSnapshot(id).orElseThrow(() -> StowageException.notFound("snapshot", id));
            return Csi.GetSnapshotResponse.newBuilder().setSnapshot(CsiProtos.snapshot(snapshot)).build();
        });
    }

    @Override
    public void controllerExpandVolume(Csi.ControllerExpandVolumeRequest request,
                                       StreamObserver<Csi.ControllerExpandVolumeResponse> observer) {
        Calls.unary("ControllerExpandVolume", observer, () -> {
            String id = Requests.require("volume_id", request.getVolumeId());
            Requests.require("capacity_range", request.hasCapacityRange());
            long required = request.getCapacityRange().getRequiredBytes();
            long limit = request.getCapacityRange().getLimitBytes();
            checkRange(required, limit);
            if (request.hasVolumeCapability()) {
                VolumeCapabilities.requireSupported("volume_capability", request.getVolumeCapability());
            }
            try (VolumeLocks.Held lock = locks.volume(id)) {
                existing(id);
                long size = volumes.expandVolume(id, required, limit);
                // A raw block volume is usable at its new size at once; a filesystem must be grown on the node.
                boolean block = request.hasVolumeCapability() && request.getVolumeCapability().hasBlock();
                return Csi.ControllerExpandVolumeResponse.newBuilder()
                        .setCapacityBytes(size)
                        .setNodeExpansionRequired(!block)
                        .build();
            }
        });
    }

    @Override
    public void controllerGetVolume(Csi.ControllerGetVolumeRequest request,
                                    StreamObserver<Csi.ControllerGetVolumeResponse> observer) {
        Calls.unary("ControllerGetVolume", observer, () -> {
            String id = Requests.require("volume_id", request.getVolumeId());
            Volume volume = existing(id);
            Csi.ControllerGetVolumeResponse.VolumeStatus.Builder status = Csi.ControllerGetVolumeResponse.VolumeStatus
                    .newBuilder().setVolumeCondition(CsiProtos.condition(volume.condition()));
            volume.attachment().ifPresent(a -> status.addPublishedNodeIds(a.nodeId()));
            return Csi.ControllerGetVolumeResponse.newBuilder()
                    .setVolume(CsiProtos.volume(volume))
                    .setStatus(status)
                    .build();
        });
    }

    @Override
    public void controllerModifyVolume(Csi.ControllerModifyVolumeRequest request,
                                       StreamObserver<Csi.ControllerModifyVolumeResponse> observer) {
        Calls.unary("ControllerModifyVolume", observer, () -> {
            String id = Requests.require("volume_id", request.getVolumeId());
            try (VolumeLocks.Held lock = locks.volume(id)) {
                existing(id);
                volumes.modifyVolume(id, Map.copyOf(request.getModifiableParametersMap()));
                return Csi.ControllerModifyVolumeResponse.getDefaultInstance();
            }
        });
    }

    private Volume existing(String id) {
        return volumes.getVolume(id).orElseThrow(() -> Requests.volumeNotFound(id));
    }
}
