package dev.stowage.test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import csi.v1.Csi;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * A real node's life on one host: a restart keeps volumes, snapshots, publications and data; a
 * failed CreateVolume or NodeStageVolume leaves no record, mount or loop device behind.
 */
@Tag("root")
class NodeLifecycleTest {
    private static final String NODE = "lifecycle-node";
    private Path dir;
    private Path data;
    private Path socket;
    private Path logs;
    private StowageNode node;

    @BeforeEach
    void startNode() throws Exception {
        dir = Files.createTempDirectory("stowage-lifecycle-");
        data = dir.resolve("data");
        socket = dir.resolve("csi.sock");
        logs = StowageNode.home().resolve("test/target/lifecycle");
        node = new StowageNode(data, socket, logs.resolve("node.log"), List.of("--node-id", NODE)).start(Duration.ofMinutes(3));
    }

    @AfterEach
    void stopNode() throws Exception {
        try {
            node.close();
        } finally {
            HostCleanup.cleanup(dir);
        }
    }

    private static Csi.VolumeCapability mount(String fsType) {
        return Csi.VolumeCapability.newBuilder()
                .setMount(Csi.VolumeCapability.MountVolume.newBuilder().setFsType(fsType))
                .setAccessMode(Csi.VolumeCapability.AccessMode.newBuilder()
                        .setMode(Csi.VolumeCapability.AccessMode.Mode.SINGLE_NODE_WRITER))
                .build();
    }

    private static String create(CsiClient csi, String name, long bytes, Csi.VolumeCapability cap) {
        return csi.controller().createVolume(Csi.CreateVolumeRequest.newBuilder().setName(name)
                .addVolumeCapabilities(cap).setCapacityRange(Csi.CapacityRange.newBuilder().setRequiredBytes(bytes))
                .build()).getVolume().getVolumeId();
    }

    private void stage(CsiClient csi, String id, Path staging, Csi.VolumeCapability cap) {
        csi.node().nodeStageVolume(Csi.NodeStageVolumeRequest.newBuilder().setVolumeId(id)
                .setStagingTargetPath(staging.toString()).setVolumeCapability(cap).build());
    }

    private void unstage(CsiClient csi, String id, Path staging) {
        csi.node().nodeUnstageVolume(Csi.NodeUnstageVolumeRequest.newBuilder().setVolumeId(id)
                .setStagingTargetPath(staging.toString()).build());
    }

    @Test
    void restartKeepsVolumesSnapshotsPublicationsAndData() throws Exception {
        Csi.VolumeCapability cap = mount("ext4");
        Path staging = dir.resolve("staging");
        String id;
        String snapshotId;
        try (CsiClient csi = new CsiClient(socket)) {
            id = create(csi, "kept", 128L << 20, cap);
            csi.controller().controllerPublishVolume(Csi.ControllerPublishVolumeRequest.newBuilder()
                    .setVolumeId(id).setNodeId(NODE).setVolumeCapability(cap).build());
            stage(csi, id, staging, cap);
            Files.writeString(staging.resolve("hello.txt"), "written before the restart");
            unstage(csi, id, staging);
            snapshotId = csi.controller().createSnapshot(Csi.CreateSnapshotRequest.newBuilder().setName("kept-snap")
                    .setSourceVolumeId(id).build()).getSnapshot().getSnapshotId();
        }
        node.close();
        node = new StowageNode(data, socket, logs.resolve("node-restarted.log"), List.of("--node-id", NODE))
                .start(Duration.ofMinutes(3));
        try (CsiClient csi = new CsiClient(socket)) {
            Csi.ListVolumesResponse volumes = csi.controller().listVolumes(Csi.ListVolumesRequest.getDefaultInstance());
            assertEquals(1, volumes.getEntriesCount());
            assertEquals(id, volumes.getEntries(0).getVolume().getVolumeId());
            assertEquals(List.of(NODE), volumes.getEntries(0).getStatus().getPublishedNodeIdsList(),
                    "the publication survives the restart");
            Csi.ListSnapshotsResponse snapshots = csi.controller().listSnapshots(Csi.ListSnapshotsRequest.getDefaultInstance());
            assertEquals(snapshotId, snapshots.getEntries(0).getSnapshot().getSnapshotId());
            stage(csi, id, staging, cap);
            assertEquals("written before the restart", Files.readString(staging.resolve("hello.txt")));
            unstage(csi, id, staging);
        }
    }

    /**
     * After a kill -9 the staged and published mounts point at a dead FUSE connection. The calls an
     * orchestrator then makes (unpublish and unstage the old pod's volume, stage and publish it for
     * the new one) must succeed on the restarted node, leave no mount or loop device of the dead
     * one behind, and give back the data.
     */
    @Test
    void afterAKill9UnpublishUnstageAndStagingAgainWork() throws Exception {
        Csi.VolumeCapability cap = mount("ext4");
        Path staging = dir.resolve("staging");
        Path target = dir.resolve("pod-1/volume");
        java.util.Set<String> loopsBefore = HostCleanup.allLoops();
        String id = stageWriteAndKill(staging, target, cap);
        try (CsiClient csi = new CsiClient(socket)) {
            unpublish(csi, id, target);
            unstage(csi, id, staging);
            assertEquals(List.of(), HostCleanup.mountsUnder(dir), "mounts left of the dead node's volume");
            assertEquals(loopsBefore, HostCleanup.allLoops(), "loop devices left of the dead node's volume");

            Path target2 = dir.resolve("pod-2/volume");
            stage(csi, id, staging, cap);
            publish(csi, id, staging, target2, cap);
            assertEquals("written before the kill", Files.readString(target2.resolve("kept.txt")));
            unpublish(csi, id, target2);
            unstage(csi, id, staging);
            assertEquals(List.of(), HostCleanup.mountsUnder(dir));
            assertEquals(List.of(), HostCleanup.loopsUnder(data));
        }
    }

    /**
     * An orchestrator that stages again without unstaging (kubelet does after its own restart) must
     * not be told "already staged" about the dead node's mount: the staging path then serves the
     * live device, and the new pod's publication reads and writes the volume.
     */
    @Test
    void afterAKill9StagingAgainReplacesTheDeadMount() throws Exception {
        Csi.VolumeCapability cap = mount("ext4");
        Path staging = dir.resolve("staging");
        Path target = dir.resolve("pod-1/volume");
        java.util.Set<String> loopsBefore = HostCleanup.allLoops();
        String id = stageWriteAndKill(staging, target, cap);
        try (CsiClient csi = new CsiClient(socket)) {
            stage(csi, id, staging, cap);
            assertEquals("written before the kill", Files.readString(staging.resolve("kept.txt")));
            Path target2 = dir.resolve("pod-2/volume");
            publish(csi, id, staging, target2, cap);
            Files.writeString(target2.resolve("after.txt"), "written after the restart");
            assertEquals("written before the kill", Files.readString(target2.resolve("kept.txt")));

            unpublish(csi, id, target);
            unpublish(csi, id, target2);
            unstage(csi, id, staging);
            assertEquals(List.of(), HostCleanup.mountsUnder(dir), "mounts left of the dead node's volume");
            assertEquals(loopsBefore, HostCleanup.allLoops(), "loop devices left of the dead node's volume");
            stage(csi, id, staging, cap);
            assertEquals("written after the restart", Files.readString(staging.resolve("after.txt")));
            unstage(csi, id, staging);
        }
    }

    /**
     * A raw block publication is a bind mount of the device node, which names the loop device by
     * number and does not hold it. After a kill -9 the dead device must keep its number while that
     * publication exists: another volume attached meanwhile must never be reachable through the old
     * pod's path. The test holds the old device open across the restart, as a pod's process would.
     */
    @Test
    void afterAKill9ADeadBlockPublicationNeverReachesAnotherVolume() throws Exception {
        Csi.VolumeCapability block = Csi.VolumeCapability.newBuilder()
                .setBlock(Csi.VolumeCapability.BlockVolume.getDefaultInstance())
                .setAccessMode(Csi.VolumeCapability.AccessMode.newBuilder()
                        .setMode(Csi.VolumeCapability.AccessMode.Mode.SINGLE_NODE_WRITER))
                .build();
        java.util.Set<String> loopsBefore = HostCleanup.allLoops();
        Path stagingA = dir.resolve("staging-a");
        Path targetA = dir.resolve("pod-a/dev");
        String a;
        java.nio.channels.FileChannel held;
        try (CsiClient csi = new CsiClient(socket)) {
            a = create(csi, "block-a", 64L << 20, block);
            csi.controller().controllerPublishVolume(Csi.ControllerPublishVolumeRequest.newBuilder()
                    .setVolumeId(a).setNodeId(NODE).setVolumeCapability(block).build());
            stage(csi, a, stagingA, block);
            Files.createDirectories(targetA.getParent());
            publish(csi, a, stagingA, targetA, block);
            held = java.nio.channels.FileChannel.open(targetA, java.nio.file.StandardOpenOption.READ,
                    java.nio.file.StandardOpenOption.WRITE);
            held.write(java.nio.ByteBuffer.wrap(pattern('A')), 0);
            held.force(true);
        }
        node.kill9();
        node = new StowageNode(data, socket, logs.resolve("node-after-kill.log"), List.of("--node-id", NODE))
                .start(Duration.ofMinutes(3));
        held.close(); // the pod's process lets go of the dead device

        Path stagingB = dir.resolve("staging-b");
        Path targetB = dir.resolve("pod-b/dev");
        try (CsiClient csi = new CsiClient(socket)) {
            String b = create(csi, "block-b", 64L << 20, block);
            csi.controller().controllerPublishVolume(Csi.ControllerPublishVolumeRequest.newBuilder()
                    .setVolumeId(b).setNodeId(NODE).setVolumeCapability(block).build());
            stage(csi, b, stagingB, block);
            Files.createDirectories(targetB.getParent());
            publish(csi, b, stagingB, targetB, block);
            try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(targetB,
                    java.nio.file.StandardOpenOption.WRITE)) {
                ch.write(java.nio.ByteBuffer.wrap(pattern('B')), 0);
                ch.force(true);
            }
            byte[] seen = new byte[4096];
            boolean failed = false;
            try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(targetA,
                    java.nio.file.StandardOpenOption.READ)) {
                ch.read(java.nio.ByteBuffer.wrap(seen), 0);
            } catch (java.io.IOException e) {
                failed = true; // the dead device fails its I/O: what it must do
            }
            assertTrue(failed || !java.util.Arrays.equals(pattern('B'), seen),
                    "the old pod's publication of volume A reads volume B's data");

            unpublish(csi, a, targetA);
            unstage(csi, a, stagingA);
            unpublish(csi, b, targetB);
            unstage(csi, b, stagingB);
            assertEquals(List.of(), HostCleanup.mountsUnder(dir), "mounts left behind");
            assertEquals(loopsBefore, HostCleanup.allLoops(), "loop devices left behind");
        }
    }

    /** Every loop device on the host: a dead device's file reads "/" once its FUSE mount is gone, so paths cannot find it. */
    private static byte[] pattern(char c) {
        byte[] b = new byte[4096];
        java.util.Arrays.fill(b, (byte) c);
        return b;
    }

    /**
     * Creates a volume, stages it at {@code staging}, publishes it at {@code target}, writes and
     * fsyncs kept.txt, kills the node with SIGKILL and starts it again; returns the volume id.
     */
    private String stageWriteAndKill(Path staging, Path target, Csi.VolumeCapability cap) throws Exception {
        String id;
        try (CsiClient csi = new CsiClient(socket)) {
            id = create(csi, "survivor", 128L << 20, cap);
            csi.publishStageAndPublish(id, NODE, cap, staging, target);
            Path file = target.resolve("kept.txt");
            Files.writeString(file, "written before the kill");
            try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(file,
                    java.nio.file.StandardOpenOption.WRITE)) {
                ch.force(true); // ext4 commits the file's journal entry: it survives the kill
            }
        }
        assertEquals(1, HostCleanup.loopsUnder(data).size(), "one loop device for the staged volume");
        node.kill9();
        node = new StowageNode(data, socket, logs.resolve("node-after-kill.log"), List.of("--node-id", NODE))
                .start(Duration.ofMinutes(3));
        return id;
    }

    private void unpublish(CsiClient csi, String id, Path target) {
        csi.node().nodeUnpublishVolume(Csi.NodeUnpublishVolumeRequest.newBuilder().setVolumeId(id)
                .setTargetPath(target.toString()).build());
    }

    private void publish(CsiClient csi, String id, Path staging, Path target, Csi.VolumeCapability cap) {
        csi.node().nodePublishVolume(Csi.NodePublishVolumeRequest.newBuilder().setVolumeId(id)
                .setStagingTargetPath(staging.toString()).setTargetPath(target.toString())
                .setVolumeCapability(cap).build());
    }

    @Test
    void failedCreateAndStageLeaveNothingBehind() throws Exception {
        Path staging = dir.resolve("staging");
        try (CsiClient csi = new CsiClient(socket)) {
            String id = create(csi, "formatted-xfs", 512L << 20, mount("xfs"));
            stage(csi, id, staging, mount("xfs"));
            unstage(csi, id, staging);
            String snapshotId = csi.controller().createSnapshot(Csi.CreateSnapshotRequest.newBuilder()
                    .setName("snap").setSourceVolumeId(id).build()).getSnapshot().getSnapshotId();

            // A restore smaller than its snapshot cannot be made: nothing may remain of the attempt.
            StatusRuntimeException tooSmall = assertThrows(StatusRuntimeException.class, () -> csi.controller()
                    .createVolume(Csi.CreateVolumeRequest.newBuilder().setName("too-small")
                            .addVolumeCapabilities(mount("xfs"))
                            .setCapacityRange(Csi.CapacityRange.newBuilder().setRequiredBytes(64L << 20))
                            .setVolumeContentSource(Csi.VolumeContentSource.newBuilder().setSnapshot(
                                    Csi.VolumeContentSource.SnapshotSource.newBuilder().setSnapshotId(snapshotId)))
                            .build()));
            assertEquals(Status.Code.OUT_OF_RANGE, tooSmall.getStatus().getCode());
            assertEquals(1, csi.controller().listVolumes(Csi.ListVolumesRequest.getDefaultInstance()).getEntriesCount());
            // The same name now works with a valid size: no claim of the failed attempt is left.
            create(csi, "too-small", 512L << 20, mount("xfs"));

            // Staging an xfs volume as ext4 must fail without reformatting, and undo its attach.
            StatusRuntimeException wrongFs = assertThrows(StatusRuntimeException.class,
                    () -> stage(csi, id, staging, mount("ext4")));
            assertEquals(Status.Code.FAILED_PRECONDITION, wrongFs.getStatus().getCode());
            assertTrue(wrongFs.getStatus().getDescription().contains("xfs"), wrongFs.getStatus().getDescription());
            assertEquals(List.of(), HostCleanup.mountsUnder(dir), "mounts left by the failed stage");
            assertEquals(List.of(), HostCleanup.loopsUnder(data), "loop devices left by the failed stage");

            // The volume still holds its xfs file system and stages as xfs.
            stage(csi, id, staging, mount("xfs"));
            unstage(csi, id, staging);
            assertEquals(List.of(), HostCleanup.mountsUnder(dir));
            assertEquals(List.of(), HostCleanup.loopsUnder(data));
        }
    }
}
