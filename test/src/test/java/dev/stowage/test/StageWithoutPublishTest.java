package dev.stowage.test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import csi.v1.Csi;
import dev.stowage.test.TestCluster.NodeSpec;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * A container orchestrator that never calls ControllerPublishVolume (Mesos 1.11 calls only the Node
 * service): NodeStageVolume takes the volume for its node, fencing any earlier writer, and
 * NodeUnstageVolume must give it up again, so that the task can start on another agent next time.
 */
@Tag("root")
class StageWithoutPublishTest {
    private static final long MIB = 1L << 20;

    @Test
    void aVolumeStagedWithoutControllerPublishMovesToAnotherNodeAfterUnstage() throws Exception {
        try (TestCluster cluster = TestCluster.start("stage-without-publish")) {
            cluster.startNodes(NodeSpec.storage("n1", "127.0.0.2", "zone-a", null),
                    NodeSpec.storage("n2", "127.0.0.3", "zone-b", null));
            String id;
            try (CsiClient c = cluster.csi("n1")) {
                id = c.controller().createVolume(Csi.CreateVolumeRequest.newBuilder().setName("task-data")
                        .addVolumeCapabilities(TestCluster.block()).putParameters("repl", "2")
                        .setCapacityRange(Csi.CapacityRange.newBuilder().setRequiredBytes(64 * MIB))
                        .build()).getVolume().getVolumeId();
            }
            byte[] pattern = new byte[4096];
            Arrays.fill(pattern, (byte) 'M');

            Path onN1 = stage(cluster, "n1", id);
            try (FileChannel ch = FileChannel.open(onN1, StandardOpenOption.WRITE)) {
                ch.write(ByteBuffer.wrap(pattern), 0);
                ch.force(true);
            }
            // While n1 holds it, n2 cannot take it: one writer.
            StatusRuntimeException held = assertThrows(StatusRuntimeException.class, () -> stage(cluster, "n2", id));
            assertEquals(Status.Code.FAILED_PRECONDITION, held.getStatus().getCode(), held.getStatus().toString());
            unstage(cluster, "n1", id, onN1);

            // The task starts on the other agent: its stage must not find the volume still held by n1.
            Path onN2 = stage(cluster, "n2", id);
            byte[] seen = new byte[4096];
            try (FileChannel ch = FileChannel.open(onN2, StandardOpenOption.READ)) {
                ch.read(ByteBuffer.wrap(seen), 0);
            }
            assertArrayEquals(pattern, seen, "n2 reads what n1 wrote");
            unstage(cluster, "n2", id, onN2);
            assertEquals(List.of(), HostCleanup.mountsUnder(cluster.dir("n1")));
            assertEquals(List.of(), HostCleanup.mountsUnder(cluster.dir("n2")));
        }
    }

    /** NodeStage and NodePublish of a block volume on {@code node}, as Mesos does; returns the device file. */
    private static Path stage(TestCluster cluster, String node, String id) throws Exception {
        Path staging = cluster.dir(node).resolve("staging-" + id);
        Path target = cluster.dir(node).resolve("task-" + id).resolve("dev");
        Files.createDirectories(target.getParent());
        try (CsiClient c = cluster.csi(node)) {
            c.node().nodeStageVolume(Csi.NodeStageVolumeRequest.newBuilder().setVolumeId(id)
                    .setStagingTargetPath(staging.toString()).setVolumeCapability(TestCluster.block()).build());
            c.node().nodePublishVolume(Csi.NodePublishVolumeRequest.newBuilder().setVolumeId(id)
                    .setStagingTargetPath(staging.toString()).setTargetPath(target.toString())
                    .setVolumeCapability(TestCluster.block()).build());
        }
        return target;
    }

    private static void unstage(TestCluster cluster, String node, String id, Path target) {
        cluster.unstage(node, id, target);
    }
}
