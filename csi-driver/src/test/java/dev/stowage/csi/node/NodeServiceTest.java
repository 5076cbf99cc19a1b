package dev.stowage.csi.node;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import csi.v1.Csi;
import csi.v1.Csi.VolumeCapability;
import csi.v1.Csi.VolumeCapability.AccessMode.Mode;
import dev.stowage.csi.mount.FakeMounter;
import dev.stowage.csi.server.CsiProtos;
import dev.stowage.csi.server.VolumeLocks;
import dev.stowage.csi.testing.InMemoryVolumeService;
import dev.stowage.engine.api.Volume;
import dev.stowage.engine.api.VolumeSpec;
import io.grpc.Status;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static dev.stowage.csi.testing.Grpc.call;
import static dev.stowage.csi.testing.Grpc.fails;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

// Lock handles are try-with-resources variables held for the scope of the call, not read.
@SuppressWarnings("try")
class NodeServiceTest {
    private final InMemoryVolumeService engine = new InMemoryVolumeService();
    private final FakeMounter mounter = new FakeMounter();
    private final VolumeLocks locks = new VolumeLocks();
    private final NodeService node = new NodeService(engine, mounter, locks, null);
    @TempDir
    Path dir;
    private Path staging;
    private Path target;
    private String id;

    @BeforeEach
    void createVolume() throws Exception {
        staging = dir.resolve("staging");
        Files.createDirectories(staging);
        target = dir.resolve("pods/uid/volumes/target");
        id = engine.createVolume(new VolumeSpec("pvc", 64 << 20, 0, Map.of(), new VolumeSpec.ContentSource.Empty())).id();
        engine.publish(id, InMemoryVolumeService.LOCAL_NODE, false);
    }

    static VolumeCapability mount(String fsType, Mode mode, String... flags) {
        return VolumeCapability.newBuilder()
                .setMount(VolumeCapability.MountVolume.newBuilder().setFsType(fsType).addAllMountFlags(List.of(flags)))
                .setAccessMode(VolumeCapability.AccessMode.newBuilder().setMode(mode))
                .build();
    }

    static final VolumeCapability RWO = mount("", Mode.SINGLE_NODE_WRITER);
    static final VolumeCapability BLOCK = VolumeCapability.newBuilder()
            .setBlock(VolumeCapability.BlockVolume.getDefaultInstance())
            .setAccessMode(VolumeCapability.AccessMode.newBuilder().setMode(Mode.SINGLE_NODE_WRITER))
            .build();

    private Csi.NodeStageVolumeRequest stage(VolumeCapability capability) {
        return Csi.NodeStageVolumeRequest.newBuilder().setVolumeId(id).setStagingTargetPath(staging.toString())
                .setVolumeCapability(capability).build();
    }

    private Csi.NodePublishVolumeRequest.Builder publish(VolumeCapability capability) {
        return Csi.NodePublishVolumeRequest.newBuilder().setVolumeId(id).setStagingTargetPath(staging.toString())
                .setTargetPath(target.toString()).setVolumeCapability(capability);
    }

    private Path device() {
        return Path.of(engine.getVolume(id).orElseThrow().attachment().orElseThrow().devicePath().orElseThrow());
    }

    @Test
    void stageRequiresFieldsNamedAsInTheSpec() {
        assertEquals("volume_id is required", fails(Status.Code.INVALID_ARGUMENT, node::nodeStageVolume,
                stage(RWO).toBuilder().clearVolumeId().build()));
        assertEquals("staging_target_path is required", fails(Status.Code.INVALID_ARGUMENT, node::nodeStageVolume,
                stage(RWO).toBuilder().clearStagingTargetPath().build()));
        assertEquals("volume_capability is required", fails(Status.Code.INVALID_ARGUMENT, node::nodeStageVolume,
                stage(RWO).toBuilder().clearVolumeCapability().build()));
        assertEquals("volume_capability.access_mode is required", fails(Status.Code.INVALID_ARGUMENT,
                node::nodeStageVolume, stage(RWO.toBuilder().clearAccessMode().build())));
        fails(Status.Code.NOT_FOUND, node::nodeStageVolume, stage(RWO).toBuilder().setVolumeId("vol-x").build());
        assertEquals(0, engine.attachCalls);
    }

    @Test
    void stageFormatsABlankDeviceOnceAndMountsItWithTheFlags() {
        call(node::nodeStageVolume, stage(mount("xfs", Mode.SINGLE_NODE_WRITER, "noatime")));
        FakeMounter.Mount mounted = mounter.mountAt(staging).orElseThrow();
        assertEquals("xfs", mounted.fsType());
        assertEquals(List.of("noatime", "nouuid"), mounted.options(), "xfs clones share UUIDs: always nouuid");
        assertEquals(List.of(device()), mounter.formatted);

        call(node::nodeStageVolume, stage(mount("xfs", Mode.SINGLE_NODE_WRITER, "noatime")));
        assertEquals(1, mounter.formatted.size(), "staging again must not format again");
        assertEquals(1, mounter.mountCount());
    }

    @Test
    void stageNeverReformatsAndRefusesAnotherFilesystem() {
        Path device = engine.attachDevice(id);
        engine.detachDevice(id);
        engine.attachCalls = 0;
        engine.detachCalls = 0;
        mounter.setFilesystem(device, "ext4");
        String message = fails(Status.Code.FAILED_PRECONDITION, node::nodeStageVolume,
                stage(mount("xfs", Mode.SINGLE_NODE_WRITER)));
        assertTrue(message.contains("holds a ext4 filesystem"), message);
        assertTrue(mounter.formatted.isEmpty());
        assertEquals(1, engine.detachCalls, "the device this call attached is detached again");
        assertFalse(engine.isAttached(id));

        call(node::nodeStageVolume, stage(RWO));
        assertEquals("ext4", mounter.mountAt(staging).orElseThrow().fsType(), "empty fs_type mounts what it holds");
        assertTrue(mounter.formatted.isEmpty());
    }

    @Test
    void failedMountUndoesTheAttachAndReportsTheToolError() {
        mounter.failNext("mount", "mount: /staging: wrong fs type (exit 32)");
        String message = fails(Status.Code.INTERNAL, node::nodeStageVolume, stage(RWO));
        assertEquals("mount: /staging: wrong fs type (exit 32)", message);
        assertFalse(engine.isAttached(id));
        assertEquals(0, mounter.mountCount());
        assertFalse(locks.anyHeld());
    }

    @Test
    void unstageUnmountsDetachesAndIsIdempotent() {
        call(node::nodeStageVolume, stage(RWO));
        Csi.NodeUnstageVolumeRequest unstage = Csi.NodeUnstageVolumeRequest.newBuilder().setVolumeId(id)
                .setStagingTargetPath(staging.toString()).build();
        call(node::nodeUnstageVolume, unstage);
        assertEquals(0, mounter.mountCount());
        assertFalse(engine.isAttached(id));
        call(node::nodeUnstageVolume, unstage);
        assertEquals("staging_target_path is required", fails(Status.Code.INVALID_ARGUMENT, node::nodeUnstageVolume,
                unstage.toBuilder().clearStagingTargetPath().build()));
    }

    @Test
    void publishBindMountsTheStagedFilesystemReadOnlyWhenAsked() {
        fails(Status.Code.FAILED_PRECONDITION, node::nodePublishVolume, publish(RWO).build());
        assertFalse(Files.exists(target));

        call(node::nodeStageVolume, stage(RWO));
        call(node::nodePublishVolume, publish(RWO).setReadonly(true).build());
        FakeMounter.Mount bind = mounter.mountAt(target).orElseThrow();
        assertTrue(bind.bind());
        assertTrue(bind.readOnly());
        assertEquals(staging, bind.source());
        assertTrue(Files.isDirectory(target));
        call(node::nodePublishVolume, publish(RWO).setReadonly(true).build());
        assertEquals(2, mounter.mountCount());

        Csi.NodeUnpublishVolumeRequest unpublish = Csi.NodeUnpublishVolumeRequest.newBuilder().setVolumeId(id)
                .setTargetPath(target.toString()).build();
        call(node::nodeUnpublishVolume, unpublish);
        assertFalse(Files.exists(target), "the target path is removed");
        assertTrue(mounter.mountAt(target).isEmpty());
        call(node::nodeUnpublishVolume, unpublish);
        fails(Status.Code.NOT_FOUND, node::nodeUnpublishVolume, unpublish.toBuilder().setVolumeId("vol-x").build());
    }

    @Test
    void publishValidatesBeforeLookingUpTheVolume() {
        Csi.NodePublishVolumeRequest request = publish(RWO).setVolumeId("vol-x").build();
        assertEquals("target_path is required", fails(Status.Code.INVALID_ARGUMENT, node::nodePublishVolume,
                request.toBuilder().clearTargetPath().build()));
        assertEquals("volume_capability is required", fails(Status.Code.INVALID_ARGUMENT, node::nodePublishVolume,
                request.toBuilder().clearVolumeCapability().build()));
        String message = fails(Status.Code.INVALID_ARGUMENT, node::nodePublishVolume,
                request.toBuilder().setTargetPath("relative/path").build());
        assertTrue(message.startsWith("target_path must be an absolute path"), message);
        fails(Status.Code.NOT_FOUND, node::nodePublishVolume, request);
    }

    @Test
    void failedBindMountRemovesTheTargetItCreated() {
        call(node::nodeStageVolume, stage(RWO));
        mounter.failNext("bindMount", "mount --bind failed");
        fails(Status.Code.INTERNAL, node::nodePublishVolume, publish(RWO).build());
        assertFalse(Files.exists(target));
    }

    @Test
    void blockVolumesAreStagedWithoutAFilesystemAndPublishedOntoAFile() throws Exception {
        call(node::nodeStageVolume, stage(BLOCK));
        assertEquals(0, mounter.mountCount(), "nothing is mounted at staging for a block volume");
        assertTrue(mounter.formatted.isEmpty());
        assertEquals(device().toString(),
                Files.readString(staging.resolve(NodeService.BLOCK_DEVICE_FILE)).strip());

        call(node::nodePublishVolume, publish(BLOCK).build());
        assertTrue(Files.isRegularFile(target));
        assertEquals(device(), mounter.mountAt(target).orElseThrow().source());

        mounter.setDeviceSize(device(), 64 << 20);
        Csi.NodeGetVolumeStatsResponse stats = call(node::nodeGetVolumeStats, Csi.NodeGetVolumeStatsRequest.newBuilder()
                .setVolumeId(id).setVolumePath(target.toString()).build());
        assertEquals(64 << 20, stats.getUsage(0).getTotal());

        Csi.NodeExpandVolumeResponse expanded = call(node::nodeExpandVolume, Csi.NodeExpandVolumeRequest.newBuilder()
                .setVolumeId(id).setVolumePath(target.toString()).setVolumeCapability(BLOCK).build());
        assertEquals(64 << 20, expanded.getCapacityBytes());
        assertTrue(mounter.resized.isEmpty(), "a raw block volume has no filesystem to grow");

        call(node::nodeUnpublishVolume, Csi.NodeUnpublishVolumeRequest.newBuilder().setVolumeId(id)
                .setTargetPath(target.toString()).build());
        assertFalse(Files.exists(target));
        call(node::nodeUnstageVolume, Csi.NodeUnstageVolumeRequest.newBuilder().setVolumeId(id)
                .setStagingTargetPath(staging.toString()).build());
        assertFalse(Files.exists(staging.resolve(NodeService.BLOCK_DEVICE_FILE)));
        assertFalse(engine.isAttached(id));
    }

    @Test
    void publishingAnUnstagedBlockVolumeIsAPreconditionFailure() {
        fails(Status.Code.FAILED_PRECONDITION, node::nodePublishVolume, publish(BLOCK).build());
    }

    @Test
    void volumeStatsReportBytesInodesAndCondition() {
        Csi.NodeGetVolumeStatsRequest.Builder request = Csi.NodeGetVolumeStatsRequest.newBuilder().setVolumeId(id)
                .setVolumePath(target.toString());
        assertEquals("volume_path is required", fails(Status.Code.INVALID_ARGUMENT, node::nodeGetVolumeStats,
                request.clone().clearVolumePath().build()));
        fails(Status.Code.NOT_FOUND, node::nodeGetVolumeStats, request.clone().setVolumeId("vol-x").build());
        fails(Status.Code.NOT_FOUND, node::nodeGetVolumeStats, request.clone().setVolumePath("some/path").build());
        fails(Status.Code.NOT_FOUND, node::nodeGetVolumeStats, request.build());

        call(node::nodeStageVolume, stage(RWO));
        call(node::nodePublishVolume, publish(RWO).build());
        engine.setCondition(id, new Volume.Condition(true, "1 of 1 replicas stale"));
        Csi.NodeGetVolumeStatsResponse stats = call(node::nodeGetVolumeStats, request.build());
        assertEquals(Csi.VolumeUsage.Unit.BYTES, stats.getUsage(0).getUnit());
        assertEquals(1000L << 20, stats.getUsage(0).getTotal());
        assertEquals(900L << 20, stats.getUsage(0).getAvailable());
        assertEquals(Csi.VolumeUsage.Unit.INODES, stats.getUsage(1).getUnit());
        assertEquals(65536, stats.getUsage(1).getTotal());
        assertTrue(stats.getVolumeCondition().getAbnormal());
    }

    @Test
    void expandGrowsTheMountedFilesystem() {
        call(node::nodeStageVolume, stage(RWO));
        call(node::nodePublishVolume, publish(RWO).build());
        engine.expandVolume(id, 128 << 20, 0);
        Csi.NodeExpandVolumeResponse response = call(node::nodeExpandVolume, Csi.NodeExpandVolumeRequest.newBuilder()
                .setVolumeId(id).setVolumePath(target.toString()).build());
        assertEquals(128 << 20, response.getCapacityBytes());
        assertEquals(List.of(target), mounter.resized);
        fails(Status.Code.NOT_FOUND, node::nodeExpandVolume, Csi.NodeExpandVolumeRequest.newBuilder()
                .setVolumeId("vol-x").setVolumePath("some/path").build());
        assertEquals("volume_path is required", fails(Status.Code.INVALID_ARGUMENT, node::nodeExpandVolume,
                Csi.NodeExpandVolumeRequest.newBuilder().setVolumeId(id).build()));
    }

    @Test
    void nodeInfoCarriesTopologyLabels() {
        Csi.NodeGetInfoResponse info = call(node::nodeGetInfo, Csi.NodeGetInfoRequest.getDefaultInstance());
        assertEquals(InMemoryVolumeService.LOCAL_NODE, info.getNodeId());
        assertEquals(16, info.getMaxVolumesPerNode());
        assertEquals(Map.of(CsiProtos.TOPOLOGY_NODE, InMemoryVolumeService.LOCAL_NODE, CsiProtos.TOPOLOGY_ZONE, "z1",
                CsiProtos.TOPOLOGY_RACK, "r7"), info.getAccessibleTopology().getSegmentsMap());
        Csi.NodeGetCapabilitiesResponse capabilities = call(node::nodeGetCapabilities,
                Csi.NodeGetCapabilitiesRequest.getDefaultInstance());
        assertEquals(4, capabilities.getCapabilitiesCount());
    }

    @Test
    void concurrentStageOfTheSameVolumeIsAborted() {
        try (VolumeLocks.Held held = locks.volume(id)) {
            assertEquals("operation in progress for volume " + id,
                    fails(Status.Code.ABORTED, node::nodeStageVolume, stage(RWO)));
        }
        assertEquals(0, engine.attachCalls);
    }

    @Test
    void concurrentPublishOntoTheSameTargetIsAborted() {
        call(node::nodeStageVolume, stage(RWO));
        try (VolumeLocks.Held held = locks.path(target.toString())) {
            assertEquals("operation in progress for path " + target,
                    fails(Status.Code.ABORTED, node::nodePublishVolume, publish(RWO).build()));
        }
        call(node::nodePublishVolume, publish(RWO).build());
        assertFalse(locks.anyHeld());
    }
}
