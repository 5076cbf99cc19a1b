package dev.stowage.test;

import static org.junit.jupiter.api.Assertions.assertTrue;

import csi.v1.Csi;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Invariant 1 on one host: a write acknowledged after a completed flush survives a kill -9 of
 * {@code stowage node} in the middle of a write workload. The workload writes self-describing 4 KiB
 * blocks (sequence number, block index, crc) to a raw block volume published through CSI, flushing
 * every few writes; after the kill and a restart every block must hold its last flushed write or a
 * later one, intact.
 */
@Tag("root")
class CrashDurabilityTest {
    private static final int BLOCKS = 2048;
    private static final int WRITES_PER_FLUSH = 8;

    @Test
    void flushedWritesSurviveKill9OfTheNode() throws Exception {
        Path dir = Files.createTempDirectory("stowage-crash-");
        Path logs = StowageNode.home().resolve("test/target/crash");
        Path data = dir.resolve("data");
        Path socket = dir.resolve("csi.sock");
        StowageNode node = new StowageNode(data, socket, logs.resolve("node.log"), List.of("--node-id", "crash-node"));
        StowageNode restarted = null;
        try {
            node.start(Duration.ofMinutes(3));
            Csi.VolumeCapability block = Csi.VolumeCapability.newBuilder()
                    .setBlock(Csi.VolumeCapability.BlockVolume.getDefaultInstance())
                    .setAccessMode(Csi.VolumeCapability.AccessMode.newBuilder()
                            .setMode(Csi.VolumeCapability.AccessMode.Mode.SINGLE_NODE_WRITER))
                    .build();
            String volumeId;
            String nodeId;
            Path target1 = dir.resolve("publish-1/dev");
            try (CsiClient csi = new CsiClient(socket)) {
                nodeId = csi.node().nodeGetInfo(Csi.NodeGetInfoRequest.getDefaultInstance()).getNodeId();
                volumeId = csi.controller().createVolume(Csi.CreateVolumeRequest.newBuilder()
                        .setName("crash-volume").addVolumeCapabilities(block)
                        .setCapacityRange(Csi.CapacityRange.newBuilder().setRequiredBytes(64L << 20))
                        .build()).getVolume().getVolumeId();
                csi.publishStageAndPublish(volumeId, nodeId, block, dir.resolve("staging"), target1);
            }

            BlockWorkload workload = new BlockWorkload(target1, BLOCKS, WRITES_PER_FLUSH).start();
            workload.awaitFlushes(300, Duration.ofSeconds(120));
            node.kill9();
            assertTrue(workload.awaitEnd(Duration.ofSeconds(60)), "the writer did not notice the dead node");

            // The kernel still holds mounts of the dead node's device: an orchestrator would unpublish;
            // here the test lets go of them before restarting.
            HostCleanup.cleanup(dir.resolve("publish-1"));
            HostCleanup.cleanup(dir.resolve("staging"));

            restarted = new StowageNode(data, socket, logs.resolve("node-restarted.log"), List.of("--node-id", "crash-node"));
            restarted.start(Duration.ofMinutes(3));
            Path target2 = dir.resolve("publish-2/dev");
            try (CsiClient csi = new CsiClient(socket)) {
                csi.publishStageAndPublish(volumeId, nodeId, block, dir.resolve("staging"), target2);
            }
            int checked = workload.verify(target2);
            System.out.printf("crash test: %d flushes before kill -9, %d blocks verified%n", workload.flushes(), checked);
            assertTrue(checked > 0, "no block had a flushed write to verify");
        } finally {
            if (restarted != null) {
                restarted.close();
            }
            node.close();
            HostCleanup.cleanup(dir);
        }
    }
}
