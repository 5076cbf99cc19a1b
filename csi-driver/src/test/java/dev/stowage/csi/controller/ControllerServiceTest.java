package dev.stowage.csi.controller;

import java.util.List;
import java.util.Map;

import csi.v1.Csi;
import csi.v1.Csi.VolumeCapability;
import csi.v1.Csi.VolumeCapability.AccessMode.Mode;
import dev.stowage.csi.server.CsiProtos;
import dev.stowage.csi.server.VolumeLocks;
import dev.stowage.csi.testing.InMemoryVolumeService;
import dev.stowage.engine.api.Volume;
import io.grpc.Status;
import org.junit.jupiter.api.Test;

import static dev.stowage.csi.testing.Grpc.call;
import static dev.stowage.csi.testing.Grpc.fails;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

// Lock handles are try-with-resources variables held for the scope of the call, not read.
@SuppressWarnings("try")
class ControllerServiceTest {
    private final InMemoryVolumeService engine = new InMemoryVolumeService();
    private final VolumeLocks locks = new VolumeLocks();
    private final ControllerService controller = new ControllerService(engine, locks);

    static VolumeCapability mount(String fsType, Mode mode) {
        return VolumeCapability.newBuilder()
                .setMount(VolumeCapability.MountVolume.newBuilder().setFsType(fsType))
                .setAccessMode(VolumeCapability.AccessMode.newBuilder().setMode(mode))
                .build();
    }

    static VolumeCapability block(Mode mode) {
        return VolumeCapability.newBuilder()
                .setBlock(VolumeCapability.BlockVolume.getDefaultInstance())
                .setAccessMode(VolumeCapability.AccessMode.newBuilder().setMode(mode))
                .build();
    }

    static final VolumeCapability RWO = mount("", Mode.SINGLE_NODE_WRITER);

    private Csi.CreateVolumeRequest.Builder create(String name, long required) {
        return Csi.CreateVolumeRequest.newBuilder().setName(name).addVolumeCapabilities(RWO)
                .setCapacityRange(Csi.CapacityRange.newBuilder().setRequiredBytes(required));
    }

    private Csi.Volume created(Csi.CreateVolumeRequest request) {
        return call(controller::createVolume, request)
                .getVolume();
    }

    @Test
    void createVolumeRequiresNameAndCapabilities() {
        String message = fails(Status.Code.INVALID_ARGUMENT, controller::createVolume, Csi.CreateVolumeRequest.newBuilder().addVolumeCapabilities(RWO).build());
        assertEquals("name is required", message);
        message = fails(Status.Code.INVALID_ARGUMENT, controller::createVolume, Csi.CreateVolumeRequest.newBuilder().setName("a").build());
        assertEquals("volume_capabilities is required", message);
        message = fails(Status.Code.INVALID_ARGUMENT, controller::createVolume, Csi.CreateVolumeRequest.newBuilder().setName("a").addVolumeCapabilities(
                        VolumeCapability.newBuilder().setBlock(VolumeCapability.BlockVolume.getDefaultInstance())).build());
        assertEquals("volume_capabilities[0].access_mode is required", message);
    }

    @Test
    void createVolumeRejectsMultiNodeModesAndUnknownFilesystems() {
        String message = fails(Status.Code.INVALID_ARGUMENT, controller::createVolume, Csi.CreateVolumeRequest
                .newBuilder().setName("a").addVolumeCapabilities(mount("", Mode.MULTI_NODE_MULTI_WRITER)).build());
        assertTrue(message.startsWith("volume_capabilities[0].access_mode.mode is MULTI_NODE_MULTI_WRITER"), message);
        message = fails(Status.Code.INVALID_ARGUMENT, controller::createVolume, Csi.CreateVolumeRequest
                .newBuilder().setName("a").addVolumeCapabilities(mount("btrfs", Mode.SINGLE_NODE_WRITER)).build());
        assertTrue(message.startsWith("volume_capabilities[0].mount.fs_type"), message);
        assertTrue(engine.listVolumes(0, "").items().isEmpty(), "nothing created");
    }

    @Test
    void createVolumeChecksCapacityRange() {
        String message = fails(Status.Code.INVALID_ARGUMENT, controller::createVolume, create("a", 10 << 20)
                .setCapacityRange(Csi.CapacityRange.newBuilder().setRequiredBytes(10 << 20).setLimitBytes(5 << 20))
                .build());
        assertTrue(message.startsWith("capacity_range.limit_bytes"), message);
        fails(Status.Code.INVALID_ARGUMENT, controller::createVolume, create("a", -1).build());
    }

    @Test
    void createVolumeIsIdempotentAndRefusesAnotherSizeUnderTheSameName() {
        Csi.Volume first = created(create("pvc-1", 64 << 20).build());
        Csi.Volume again = created(create("pvc-1", 64 << 20).build());
        assertEquals(first.getVolumeId(), again.getVolumeId());
        assertEquals(64 << 20, first.getCapacityBytes());
        fails(Status.Code.ALREADY_EXISTS, controller::createVolume, create("pvc-1", 128 << 20).build());
    }

    @Test
    void createVolumeStripsKubernetesParametersAndRecordsTheFilesystem() {
        Csi.Volume volume = created(Csi.CreateVolumeRequest.newBuilder().setName("pvc-2")
                .addVolumeCapabilities(mount("xfs", Mode.SINGLE_NODE_WRITER))
                .putParameters("repl", "2")
                .putParameters("csi.storage.k8s.io/pvc/name", "data")
                .putSecrets("key", "s3cr3t")
                .build());
        Volume stored = engine.getVolume(volume.getVolumeId()).orElseThrow();
        assertEquals(Map.of("repl", "2", "fsType", "xfs"), stored.parameters());
        assertEquals(Map.of("fsType", "xfs", "repl", "2"), volume.getVolumeContextMap());
        assertEquals(2, volume.getAccessibleTopologyCount());
        assertEquals(InMemoryVolumeService.LOCAL_NODE,
                volume.getAccessibleTopology(0).getSegmentsOrThrow(CsiProtos.TOPOLOGY_NODE));
        assertEquals(InMemoryVolumeService.OTHER_NODE,
                volume.getAccessibleTopology(1).getSegmentsOrThrow(CsiProtos.TOPOLOGY_NODE));
    }

    @Test
    void createVolumePassesEngineValidationErrorsThrough() {
        String message = fails(Status.Code.INVALID_ARGUMENT, controller::createVolume, create("a", 1 << 20).putParameters("repl", "7").build());
        assertTrue(message.startsWith("parameters.repl"), message);
    }

    @Test
    void createVolumeFromSnapshotEchoesTheSourceAndReportsMissingOnes() {
        Csi.Volume source = created(create("src", 8 << 20).build());
        Csi.Snapshot snapshot = call(controller::createSnapshot, Csi.CreateSnapshotRequest.newBuilder().setName("snap")
                        .setSourceVolumeId(source.getVolumeId()).build()).getSnapshot();
        Csi.VolumeContentSource from = Csi.VolumeContentSource.newBuilder().setSnapshot(
                Csi.VolumeContentSource.SnapshotSource.newBuilder().setSnapshotId(snapshot.getSnapshotId())).build();
        Csi.Volume restored = created(create("restored", 8 << 20).setVolumeContentSource(from).build());
        assertEquals(from, restored.getContentSource());

        Csi.VolumeContentSource missing = Csi.VolumeContentSource.newBuilder().setVolume(
                Csi.VolumeContentSource.VolumeSource.newBuilder().setVolumeId("vol-nope")).build();
        fails(Status.Code.NOT_FOUND, controller::createVolume, create("clone", 8 << 20).setVolumeContentSource(missing).build());
        String message = fails(Status.Code.INVALID_ARGUMENT, controller::createVolume, create("clone", 8 << 20)
                .setVolumeContentSource(Csi.VolumeContentSource.newBuilder().setSnapshot(
                        Csi.VolumeContentSource.SnapshotSource.getDefaultInstance())).build());
        assertEquals("volume_content_source.snapshot.snapshot_id is required", message);
    }

    @Test
    void deleteVolumeOfUnknownIdSucceedsAndRequiresAnId() {
        call(controller::deleteVolume, Csi.DeleteVolumeRequest.newBuilder().setVolumeId("vol-unknown").build());
        assertEquals("volume_id is required", fails(Status.Code.INVALID_ARGUMENT, controller::deleteVolume, Csi.DeleteVolumeRequest.getDefaultInstance()));
    }

    @Test
    void publishChecksVolumeNodeAndCapabilityAndReturnsTheEpoch() {
        String id = created(create("p", 1 << 20).build()).getVolumeId();
        Csi.ControllerPublishVolumeRequest.Builder request = Csi.ControllerPublishVolumeRequest.newBuilder()
                .setVolumeId(id).setNodeId(InMemoryVolumeService.LOCAL_NODE).setVolumeCapability(RWO);
        assertEquals("volume_capability is required", fails(Status.Code.INVALID_ARGUMENT,
                controller::controllerPublishVolume, request.clone().clearVolumeCapability().build()));
        assertEquals("node_id is required", fails(Status.Code.INVALID_ARGUMENT,
                controller::controllerPublishVolume, request.clone().clearNodeId().build()));
        fails(Status.Code.NOT_FOUND, controller::controllerPublishVolume, request.clone().setVolumeId("vol-unknown").build());
        fails(Status.Code.NOT_FOUND, controller::controllerPublishVolume, request.clone().setNodeId("node-unknown").build());

        Csi.ControllerPublishVolumeResponse response = call(controller::controllerPublishVolume, request.build());
        assertEquals("2", response.getPublishContextOrThrow(CsiProtos.PUBLISH_EPOCH));
        fails(Status.Code.FAILED_PRECONDITION, controller::controllerPublishVolume, request.clone().setNodeId(InMemoryVolumeService.OTHER_NODE).build());

        call(controller::controllerUnpublishVolume, Csi.ControllerUnpublishVolumeRequest.newBuilder().setVolumeId(id)
                        .setNodeId(InMemoryVolumeService.LOCAL_NODE).build());
        assertTrue(engine.getVolume(id).orElseThrow().attachment().isEmpty());
        call(controller::controllerUnpublishVolume, Csi.ControllerUnpublishVolumeRequest.newBuilder().setVolumeId("vol-gone")
                        .setNodeId(InMemoryVolumeService.LOCAL_NODE).build());
    }

    @Test
    void validateVolumeCapabilitiesConfirmsOnlyWhatIsSupported() {
        String id = created(create("v", 1 << 20).build()).getVolumeId();
        Csi.ValidateVolumeCapabilitiesResponse ok = call(controller::validateVolumeCapabilities, Csi.ValidateVolumeCapabilitiesRequest.newBuilder().setVolumeId(id).addVolumeCapabilities(RWO)
                        .addVolumeCapabilities(block(Mode.SINGLE_NODE_READER_ONLY)).build());
        assertTrue(ok.hasConfirmed());
        assertEquals(2, ok.getConfirmed().getVolumeCapabilitiesCount());

        Csi.ValidateVolumeCapabilitiesResponse no = call(controller::validateVolumeCapabilities, Csi.ValidateVolumeCapabilitiesRequest.newBuilder().setVolumeId(id)
                        .addVolumeCapabilities(mount("", Mode.MULTI_NODE_MULTI_WRITER)).build());
        assertFalse(no.hasConfirmed());
        assertTrue(no.getMessage().contains("MULTI_NODE_MULTI_WRITER"), no.getMessage());

        fails(Status.Code.NOT_FOUND, controller::validateVolumeCapabilities, Csi.ValidateVolumeCapabilitiesRequest.newBuilder().setVolumeId("vol-x").addVolumeCapabilities(RWO).build());
        assertEquals("volume_capabilities is required", fails(Status.Code.INVALID_ARGUMENT,
                controller::validateVolumeCapabilities, Csi.ValidateVolumeCapabilitiesRequest.newBuilder().setVolumeId(id).build()));
    }

    @Test
    void listVolumesPagesAndAbortsOnABadToken() {
        for (int i = 0; i < 5; i++) {
            created(create("l" + i, 1 << 20).build());
        }
        engine.publish("vol-1", InMemoryVolumeService.LOCAL_NODE, false);
        Csi.ListVolumesResponse first = call(controller::listVolumes, Csi.ListVolumesRequest.newBuilder().setMaxEntries(2).build());
        assertEquals(2, first.getEntriesCount());
        assertEquals(List.of(InMemoryVolumeService.LOCAL_NODE), first.getEntries(0).getStatus().getPublishedNodeIdsList());
        assertFalse(first.getEntries(0).getStatus().getVolumeCondition().getAbnormal());
        int seen = first.getEntriesCount();
        String token = first.getNextToken();
        while (!token.isEmpty()) {
            String t = token;
            Csi.ListVolumesResponse page = call(controller::listVolumes, Csi.ListVolumesRequest.newBuilder().setMaxEntries(2).setStartingToken(t).build());
            seen += page.getEntriesCount();
            token = page.getNextToken();
        }
        assertEquals(5, seen);
        fails(Status.Code.ABORTED, controller::listVolumes, Csi.ListVolumesRequest.newBuilder().setStartingToken("garbage").build());
        fails(Status.Code.INVALID_ARGUMENT, controller::listVolumes, Csi.ListVolumesRequest.newBuilder().setMaxEntries(-1).build());
    }

    @Test
    void getCapacityFollowsTopologyAndCapabilities() {
        Csi.GetCapacityResponse all = call(controller::getCapacity, Csi.GetCapacityRequest.newBuilder()
                .addVolumeCapabilities(RWO).build());
        assertEquals(InMemoryVolumeService.POOL_BYTES, all.getAvailableCapacity());
        assertEquals(InMemoryVolumeService.POOL_BYTES, all.getMaximumVolumeSize().getValue());
        Csi.GetCapacityResponse elsewhere = call(controller::getCapacity, Csi.GetCapacityRequest.newBuilder()
                .setAccessibleTopology(Csi.Topology.newBuilder().putSegments(CsiProtos.TOPOLOGY_NODE, "node-9")).build());
        assertEquals(0, elsewhere.getAvailableCapacity());
        Csi.GetCapacityResponse unsupported = call(controller::getCapacity, Csi.GetCapacityRequest.newBuilder()
                .addVolumeCapabilities(mount("", Mode.MULTI_NODE_MULTI_WRITER)).build());
        assertEquals(0, unsupported.getAvailableCapacity());
    }

    @Test
    void capabilitiesOmitMultiWriter() {
        Csi.ControllerGetCapabilitiesResponse response = call(controller::controllerGetCapabilities, Csi.ControllerGetCapabilitiesRequest.getDefaultInstance());
        List<Csi.ControllerServiceCapability.RPC.Type> types = response.getCapabilitiesList().stream()
                .map(c -> c.getRpc().getType()).toList();
        assertTrue(types.contains(Csi.ControllerServiceCapability.RPC.Type.CREATE_DELETE_SNAPSHOT));
        assertTrue(types.contains(Csi.ControllerServiceCapability.RPC.Type.MODIFY_VOLUME));
        assertFalse(types.contains(Csi.ControllerServiceCapability.RPC.Type.SINGLE_NODE_MULTI_WRITER));
        assertTrue(types.contains(Csi.ControllerServiceCapability.RPC.Type.GET_SNAPSHOT));
        assertTrue(types.contains(Csi.ControllerServiceCapability.RPC.Type.PUBLISH_READONLY));
        assertEquals(14, types.size());
    }

    @Test
    void snapshotsFollowTheSpec() {
        String a = created(create("sa", 1 << 20).build()).getVolumeId();
        String b = created(create("sb", 1 << 20).build()).getVolumeId();
        assertEquals("source_volume_id is required", fails(Status.Code.INVALID_ARGUMENT, controller::createSnapshot, Csi.CreateSnapshotRequest.newBuilder().setName("s").build()));
        assertEquals("name is required", fails(Status.Code.INVALID_ARGUMENT, controller::createSnapshot, Csi.CreateSnapshotRequest.newBuilder().setSourceVolumeId(a).build()));
        Csi.Snapshot s1 = call(controller::createSnapshot, Csi.CreateSnapshotRequest.newBuilder().setName("s1").setSourceVolumeId(a).build()).getSnapshot();
        assertEquals(1_700_000_000L, s1.getCreationTime().getSeconds());
        assertEquals(123_000_000, s1.getCreationTime().getNanos());
        assertTrue(s1.getReadyToUse());
        Csi.Snapshot again = call(controller::createSnapshot, Csi.CreateSnapshotRequest.newBuilder().setName("s1").setSourceVolumeId(a).build())
                .getSnapshot();
        assertEquals(s1.getSnapshotId(), again.getSnapshotId());
        fails(Status.Code.ALREADY_EXISTS, controller::createSnapshot, Csi.CreateSnapshotRequest.newBuilder().setName("s1").setSourceVolumeId(b).build());
        call(controller::createSnapshot, Csi.CreateSnapshotRequest.newBuilder().setName("s2").setSourceVolumeId(b).build());

        assertEquals(2, call(controller::listSnapshots, Csi.ListSnapshotsRequest.getDefaultInstance()).getEntriesCount());
        Csi.ListSnapshotsResponse byId = call(controller::listSnapshots, Csi.ListSnapshotsRequest.newBuilder().setSnapshotId(s1.getSnapshotId()).build());
        assertEquals(s1, byId.getEntries(0).getSnapshot());
        assertEquals(1, call(controller::listSnapshots, Csi.ListSnapshotsRequest.newBuilder().setSourceVolumeId(b).build()).getEntriesCount());
        assertEquals(0, call(controller::listSnapshots, Csi.ListSnapshotsRequest.newBuilder().setSnapshotId("snap-unknown").build()).getEntriesCount());
        Csi.ListSnapshotsResponse page = call(controller::listSnapshots, Csi.ListSnapshotsRequest.newBuilder().setMaxEntries(1).build());
        assertEquals(1, page.getEntriesCount());
        assertFalse(page.getNextToken().isEmpty());
        fails(Status.Code.ABORTED, controller::listSnapshots, Csi.ListSnapshotsRequest.newBuilder().setStartingToken("zz").build());

        assertEquals(s1, call(controller::getSnapshot, Csi.GetSnapshotRequest.newBuilder().setSnapshotId(s1.getSnapshotId()).build()).getSnapshot());
        call(controller::deleteSnapshot, Csi.DeleteSnapshotRequest.newBuilder().setSnapshotId(s1.getSnapshotId()).build());
        call(controller::deleteSnapshot, Csi.DeleteSnapshotRequest.newBuilder().setSnapshotId("snap-unknown").build());
        fails(Status.Code.NOT_FOUND, controller::getSnapshot, Csi.GetSnapshotRequest.newBuilder().setSnapshotId(s1.getSnapshotId()).build());
    }

    @Test
    void expandVolumeAsksForNodeExpansionOnlyForFilesystems() {
        String id = created(create("e", 1 << 20).build()).getVolumeId();
        assertEquals("capacity_range is required", fails(Status.Code.INVALID_ARGUMENT, controller::controllerExpandVolume, Csi.ControllerExpandVolumeRequest.newBuilder().setVolumeId(id).build()));
        Csi.ControllerExpandVolumeResponse mount = call(controller::controllerExpandVolume, Csi.ControllerExpandVolumeRequest.newBuilder().setVolumeId(id).setVolumeCapability(RWO)
                        .setCapacityRange(Csi.CapacityRange.newBuilder().setRequiredBytes(2 << 20)).build());
        assertEquals(2 << 20, mount.getCapacityBytes());
        assertTrue(mount.getNodeExpansionRequired());
        Csi.ControllerExpandVolumeResponse raw = call(controller::controllerExpandVolume, Csi.ControllerExpandVolumeRequest.newBuilder().setVolumeId(id).setVolumeCapability(block(Mode.SINGLE_NODE_WRITER))
                        .setCapacityRange(Csi.CapacityRange.newBuilder().setRequiredBytes(3 << 20)).build());
        assertFalse(raw.getNodeExpansionRequired());
        fails(Status.Code.OUT_OF_RANGE, controller::controllerExpandVolume, Csi.ControllerExpandVolumeRequest.newBuilder().setVolumeId(id)
                        .setCapacityRange(Csi.CapacityRange.newBuilder().setRequiredBytes(1 << 20)).build());
        fails(Status.Code.NOT_FOUND, controller::controllerExpandVolume, Csi.ControllerExpandVolumeRequest.newBuilder().setVolumeId("vol-x")
                        .setCapacityRange(Csi.CapacityRange.newBuilder().setRequiredBytes(3 << 20)).build());
    }

    @Test
    void getVolumeReportsPublicationAndCondition() {
        String id = created(create("g", 1 << 20).build()).getVolumeId();
        engine.publish(id, InMemoryVolumeService.LOCAL_NODE, false);
        engine.setCondition(id, new Volume.Condition(true, "replica on node-2 is stale"));
        Csi.ControllerGetVolumeResponse response = call(controller::controllerGetVolume, Csi.ControllerGetVolumeRequest.newBuilder().setVolumeId(id).build());
        assertEquals(List.of(InMemoryVolumeService.LOCAL_NODE), response.getStatus().getPublishedNodeIdsList());
        assertTrue(response.getStatus().getVolumeCondition().getAbnormal());
        assertEquals("replica on node-2 is stale", response.getStatus().getVolumeCondition().getMessage());
        fails(Status.Code.NOT_FOUND, controller::controllerGetVolume, Csi.ControllerGetVolumeRequest.newBuilder().setVolumeId("vol-x").build());
    }

    @Test
    void modifyVolumePassesMutableParametersAndRejectsOthers() {
        String id = created(create("m", 1 << 20).build()).getVolumeId();
        // No parameters: nothing changes, but the volume must exist.
        call(controller::controllerModifyVolume, Csi.ControllerModifyVolumeRequest.newBuilder().setVolumeId(id).build());
        fails(Status.Code.NOT_FOUND, controller::controllerModifyVolume, Csi.ControllerModifyVolumeRequest.newBuilder().setVolumeId("vol-missing").build());
        call(controller::controllerModifyVolume, Csi.ControllerModifyVolumeRequest.newBuilder().setVolumeId(id).putModifiableParameters("maxIops", "500").build());
        assertEquals("500", engine.getVolume(id).orElseThrow().parameters().get("maxIops"));
        String message = fails(Status.Code.INVALID_ARGUMENT, controller::controllerModifyVolume, Csi.ControllerModifyVolumeRequest.newBuilder().setVolumeId(id).putModifiableParameters("fsType", "xfs").build());
        assertTrue(message.startsWith("mutable_parameters.fsType"), message);
    }

    @Test
    void concurrentCallOnTheSameVolumeIsAborted() {
        String id = created(create("busy", 1 << 20).build()).getVolumeId();
        try (VolumeLocks.Held held = locks.volume(id)) {
            String message = fails(Status.Code.ABORTED, controller::deleteVolume, Csi.DeleteVolumeRequest.newBuilder().setVolumeId(id).build());
            assertEquals("operation in progress for volume " + id, message);
        }
        call(controller::deleteVolume, Csi.DeleteVolumeRequest.newBuilder().setVolumeId(id).build());
        assertFalse(locks.anyHeld());
    }
}
