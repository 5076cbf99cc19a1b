package dev.stowage.test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import csi.v1.Csi;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * A real cluster on one machine: etcd, three storage nodes and one storage-less node, each a
 * {@code bin/stowage node} process on its own 127.0.0.x address. A repl=3 volume is attached on the
 * storage-less node and written with flushes; a replica node and then the coordinator's node are
 * killed with SIGKILL; the volume is attached on a surviving node and every write acknowledged before
 * a completed flush must read back (invariants 1, 3 and 6 of DESIGN.md).
 */
@Tag("root")
class ClusterFailoverTest {
    private static final int BLOCKS = 2048;
    private static final int WRITES_PER_FLUSH = 8;

    private TestCluster cluster;

    @BeforeEach
    void startCluster() throws Exception {
        cluster = TestCluster.startThreeStorageNodesAndOneStorageless("cluster");
    }

    @AfterEach
    void stopCluster() {
        if (cluster != null) {
            cluster.close();
        }
    }

    @Test
    void aRepl3VolumeSurvivesKillingAReplicaAndThenTheCoordinatorsNode() throws Exception {
        String volumeId;
        try (CsiClient c = cluster.csi("n1")) {
            Csi.Volume v = c.controller().createVolume(Csi.CreateVolumeRequest.newBuilder().setName("replicated")
                    .addVolumeCapabilities(TestCluster.block()).putParameters("repl", "3")
                    .setCapacityRange(Csi.CapacityRange.newBuilder().setRequiredBytes(64L << 20)).build()).getVolume();
            volumeId = v.getVolumeId();
            Set<String> replicaNodes = new TreeSet<>();
            v.getAccessibleTopologyList().forEach(t -> replicaNodes.add(t.getSegmentsMap().get("topology.stowage.dev/node")));
            assertEquals(Set.of("n1", "n2", "n3"), replicaNodes, "three replicas on the three storage nodes, none on"
                    + " the storage-less one");
        }

        // The storage-less node attaches the volume: all its replicas are remote.
        Path device = cluster.attach("n4", volumeId, TestCluster.block(), Duration.ofSeconds(30));
        BlockWorkload workload = new BlockWorkload(device, BLOCKS, WRITES_PER_FLUSH).start();
        workload.awaitFlushes(100, Duration.ofSeconds(120));

        cluster.node("n3").kill9();
        long afterReplicaKill = workload.flushes();
        workload.awaitFlushes(afterReplicaKill + 100, Duration.ofSeconds(120));

        Instant kill = Instant.now();
        cluster.node("n4").kill9();
        assertTrue(workload.awaitEnd(Duration.ofSeconds(60)), "the writer did not notice the dead coordinator");

        Path moved = cluster.attach("n1", volumeId, TestCluster.block(), Duration.ofSeconds(60));
        Duration failover = Duration.between(kill, Instant.now());
        int checked = workload.verify(moved);
        System.out.printf("cluster failover: %d flushes (%d after the replica kill), %d blocks verified, "
                + "attached on n1 %d ms after the kill of n4%n", workload.flushes(),
                workload.flushes() - afterReplicaKill, checked, failover.toMillis());
        assertTrue(checked > BLOCKS / 2, "too few blocks had flushed writes: " + checked);

        try (CsiClient c = cluster.csi("n1")) {
            Csi.ControllerGetVolumeResponse got = c.controller().controllerGetVolume(
                    Csi.ControllerGetVolumeRequest.newBuilder().setVolumeId(volumeId).build());
            assertTrue(got.getStatus().getVolumeCondition().getAbnormal(), "n3's replica must be reported STALE");
            assertTrue(got.getStatus().getVolumeCondition().getMessage().contains("n3"),
                    got.getStatus().getVolumeCondition().getMessage());
        }

        // n4 comes back, and its kubelet unpublishes and unstages the volume of the pod it lost. The
        // restarted node must answer both and leave nothing of its dead export on the host, although
        // the volume is attached on n1 now (before, its dead FUSE mount and loop device stayed for good).
        cluster.restart("n4");
        // At its start n4 removes its dead FUSE mount, but keeps the dead loop device: the pod's
        // publication (a bind mount of the device node) still names it.
        assertEquals(List.of(), HostCleanup.mountsUnder(cluster.dir("n4").resolve("data")), "n4's dead FUSE mount");
        assertEquals(1, HostCleanup.loopsOnADetachedFile().size(), "the dead device the publication names");
        cluster.unstage("n4", volumeId, device);
        assertEquals(List.of(), HostCleanup.mountsUnder(cluster.dir("n4")), "mounts left of n4's dead export");
        assertEquals(List.of(), HostCleanup.loopsUnder(cluster.dir("n4")), "loop devices left of n4's dead export");
        assertEquals(List.of(), HostCleanup.loopsOnADetachedFile(), "loop devices left on a detached FUSE file");
        assertTrue(workload.verify(moved) > BLOCKS / 2, "n1 still serves the volume after n4's clean-up");
    }
}
