package dev.stowage.test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import csi.v1.Csi;
import dev.stowage.engine.api.Volume;
import dev.stowage.engine.api.grpc.RemoteVolumeService;
import dev.stowage.test.TestCluster.NodeSpec;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.Map;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * A real partition: the node that coordinates a repl=3 volume, and holds one of its replicas, is
 * cut off from everything, etcd included, while its process runs on (a cgroup-matched iptables
 * rule). What must hold:
 *
 * <ul>
 *   <li>invariant 3: the cut-off coordinator acknowledges nothing more. Its local replica still
 *       takes writes, but the other two fail, and marking them STALE needs etcd, which it cannot
 *       reach; so every write fails instead of being acknowledged by one replica;
 *   <li>the volume attaches on the other side of the cut without force (the node's lease expired),
 *       with every write that completed a flush before the cut;
 *   <li>invariant 2: once the cut heals, the old coordinator is fenced and its node rejoins the
 *       cluster without touching the new attachment;
 *   <li>invariant 4: the returning replica, which the old coordinator may still have written to
 *       locally, is resynced to exactly the new coordinator's data: read from that replica alone
 *       (the other two nodes killed), the pattern written during the cut is there.
 * </ul>
 */
@Tag("root")
class PartitionTest {
    private static final int BLOCKS = 2048;
    private static final int WRITES_PER_FLUSH = 8;
    /** Sequence numbers of the pattern written on the far side of the cut: far above the workload's. */
    private static final long PATTERN = 1L << 48;

    private TestCluster cluster;

    @BeforeEach
    void startCluster() throws Exception {
        cluster = TestCluster.start("partition");
        cluster.startNodes(NodeSpec.storage("n1", "127.0.0.2", "zone-a", null).inOwnCgroup(),
                NodeSpec.storage("n2", "127.0.0.3", "zone-b", null),
                NodeSpec.storage("n3", "127.0.0.4", "zone-c", null));
    }

    @AfterEach
    void stopCluster() {
        if (cluster != null) {
            cluster.close();
        }
    }

    @Test
    void aCoordinatorCutOffFromEverythingAcknowledgesNothingAndItsReplicaComesBackExact() throws Exception {
        String volumeId = createVolume("partitioned");
        Path oldDevice = cluster.attach("n1", volumeId, TestCluster.block(), Duration.ofSeconds(30));
        BlockWorkload workload = new BlockWorkload(oldDevice, BLOCKS, WRITES_PER_FLUSH).start();
        workload.awaitFlushes(50, Duration.ofSeconds(60));

        Path newDevice;
        Instant cutAt = Instant.now();
        Duration writerFailed;
        Duration attachedElsewhere;
        int verified;
        try (NetworkCut cut = cluster.isolate("n1")) {
            // 5 s replica deadline, then 10 s etcd timeout to record the others STALE, once for all
            // the writes in flight (before, once per write in turn: 85 s in one run).
            assertTrue(workload.awaitEnd(Duration.ofSeconds(40)), "the writer on the cut-off coordinator's device"
                    + " did not fail within 40 s of the cut (" + workload.flushes() + " flushes)");
            writerFailed = Duration.between(cutAt, Instant.now());
            assertInstanceOf(IOException.class, workload.failure(), "the writer must end with an I/O error");

            // No force: the CSI path takes the volume over once n1's lease has expired.
            newDevice = cluster.attach("n2", volumeId, TestCluster.block(), Duration.ofSeconds(60));
            attachedElsewhere = Duration.between(cutAt, Instant.now());
            verified = workload.verify(newDevice);
            BlockWorkload.writePattern(newDevice, PATTERN, BLOCKS);
            try (RemoteVolumeService api = RemoteVolumeService.connect(cluster.managementEndpoint("n2"))) {
                Map<String, Volume.ReplicaState> states = states(api, volumeId);
                assertNotEquals(Volume.ReplicaState.HEALTHY, states.get("n1"),
                        "n1's replica missed the pattern, yet is recorded healthy: " + states);
            }
        }
        Instant healed = Instant.now();
        System.out.printf("partition: %d flushes on n1 before the cut; its writer failed %d ms after the cut with %s;"
                        + " attached on n2 %d ms after the cut; %d flushed blocks verified there%n",
                workload.flushes(), writerFailed.toMillis(), workload.failure(), attachedElsewhere.toMillis(), verified);

        // The cut healed: n1 joins again, and its coordinator, still holding the old device, is fenced
        // by the replicas' epoch (its TCP back-off after the cut may take a while to retransmit).
        await(Duration.ofSeconds(90), "n1 to join the cluster again", () -> cluster.logged("n1", "joined the cluster again"));
        do {
            assertThrows(IOException.class, () -> BlockWorkload.writeOneDirect(oldDevice, PATTERN - 1, 0),
                    "a write through the old coordinator must fail once the cut has healed");
        } while (!cluster.logged("n1", "fenced at epoch") && Instant.now().isBefore(healed.plusSeconds(90)));
        assertTrue(cluster.logged("n1", "fenced at epoch"), "n1 reached its peers again within 90 s but was not fenced");
        cluster.unstage("n1", volumeId, oldDevice);

        try (RemoteVolumeService api = RemoteVolumeService.connect(cluster.managementEndpoint("n2"))) {
            Volume.Attachment a = api.getVolume(volumeId).orElseThrow().attachment().orElseThrow();
            assertEquals("n2", a.nodeId(), "n1's return moved the attachment");
            assertTrue(a.devicePath().isPresent(), "n1's clean-up cleared n2's device: " + a);
            await(Duration.ofSeconds(120), "n1's replica to be resynced",
                    () -> states(api, volumeId).get("n1") == Volume.ReplicaState.HEALTHY);
        }
        Duration resynced = Duration.between(healed, Instant.now());
        BlockWorkload.verifyPattern(newDevice, PATTERN, BLOCKS);

        // Now n1's replica alone: the nodes of the other two die, and the volume comes back on n1.
        cluster.kill("n2");
        cluster.kill("n3");
        cluster.releaseHostState("n2");
        Path onlyN1 = cluster.attach("n1", volumeId, TestCluster.block(), Duration.ofSeconds(60));
        BlockWorkload.verifyPattern(onlyN1, PATTERN, BLOCKS);
        System.out.printf("partition: n1 fenced and resynced %d ms after the cut healed; its replica alone reads"
                + " back all %d pattern blocks%n", resynced.toMillis(), BLOCKS);
    }

    private static Map<String, Volume.ReplicaState> states(RemoteVolumeService api, String volumeId) {
        return api.getVolume(volumeId).orElseThrow().replicas().stream()
                .collect(Collectors.toMap(Volume.Replica::nodeId, Volume.Replica::state));
    }

    @FunctionalInterface
    private interface Condition {
        boolean holds() throws Exception;
    }

    private static void await(Duration timeout, String what, Condition condition) throws Exception {
        Instant deadline = Instant.now().plus(timeout);
        while (!condition.holds()) {
            assertTrue(Instant.now().isBefore(deadline), "waited " + timeout.toSeconds() + " s for " + what);
            Thread.sleep(200);
        }
    }

    private String createVolume(String name) {
        try (CsiClient c = cluster.csi("n2")) {
            return c.controller().createVolume(Csi.CreateVolumeRequest.newBuilder().setName(name)
                    .addVolumeCapabilities(TestCluster.block()).putParameters("repl", "3")
                    .setCapacityRange(Csi.CapacityRange.newBuilder().setRequiredBytes(64L << 20)).build())
                    .getVolume().getVolumeId();
        }
    }
}
