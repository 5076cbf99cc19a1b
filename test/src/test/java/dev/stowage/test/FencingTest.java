package dev.stowage.test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import csi.v1.Csi;
import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.StowageException;
import dev.stowage.engine.api.Volume;
import dev.stowage.engine.api.grpc.RemoteVolumeService;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Invariant 2 (one writer) against a frozen, not dead, coordinator: a repl=3 volume is attached on
 * the storage-less node n4 and written; n4 is frozen with SIGSTOP, so its lease expires and the
 * cluster forgets it while its coordinator still holds the volume open. The volume is attached on
 * n1 (a new epoch), a pattern is written and flushed there, and n4 is resumed with SIGCONT. Every
 * write the old coordinator had pending or takes afterwards must fail, the pattern must read back
 * unchanged through n1, and the old coordinator must not have touched the volume's record (its
 * replicas stay healthy).
 *
 * <p>n1 runs in a cgroup of its own, so that one case can cut it off from everything, etcd
 * included: a real partition (see that case's comment).
 */
@Tag("root")
class FencingTest {
    private static final int BLOCKS = 2048;
    private static final int WRITES_PER_FLUSH = 8;
    /** Sequence numbers of the pattern written through n1: far above anything the workload reaches. */
    private static final long PATTERN = 1L << 48;

    private TestCluster cluster;

    @BeforeEach
    void startCluster() throws Exception {
        cluster = TestCluster.startThreeStorageNodesAndOneStorageless("fencing", "n1");
    }

    @AfterEach
    void stopCluster() {
        if (cluster != null) {
            cluster.close();
        }
    }

    @Test
    void aFrozenCoordinatorCanNoLongerWriteOnceTheVolumeIsAttachedElsewhere() throws Exception {
        String volumeId = cluster.createBlockVolume("n1", "fenced", 3, 64L << 20);
        Path oldDevice = cluster.attach("n4", volumeId, TestCluster.block(), Duration.ofSeconds(30));
        BlockWorkload workload = new BlockWorkload(oldDevice, BLOCKS, WRITES_PER_FLUSH)
                .startAndAwait(50, Duration.ofSeconds(60));

        Instant frozen = Instant.now();
        cluster.stop("n4");
        Path newDevice;
        Duration takeover;
        Duration fencedAfter;
        try {
            // Publishing on n1 is refused while n4 is a live member; it succeeds once n4's lease expired.
            newDevice = cluster.attach("n1", volumeId, TestCluster.block(), Duration.ofSeconds(30));
            takeover = Duration.between(frozen, Instant.now());
            BlockWorkload.writePattern(newDevice, PATTERN, BLOCKS);
        } finally {
            cluster.resume("n4");
        }
        Instant resumed = Instant.now();

        // The old coordinator's pending writes (dirty pages of its device, a flush in progress) fail ...
        assertTrue(workload.awaitEnd(Duration.ofSeconds(30)), "the writer on the old coordinator's device did not"
                + " fail within 30 s of SIGCONT (" + workload.flushes() + " flushes)");
        fencedAfter = Duration.between(resumed, Instant.now());
        assertInstanceOf(IOException.class, workload.failure(), "the writer must end with an I/O error");
        // ... and so does a new write.
        assertThrows(IOException.class, () -> BlockWorkload.writeOneDirect(oldDevice, PATTERN - 1, 0),
                "a new write through the old coordinator must fail");

        // Nothing of it reached the replicas after the epoch change.
        BlockWorkload.verifyPattern(newDevice, PATTERN, BLOCKS);

        List<String> fenceLines = Files.readAllLines(cluster.node("n4").log()).stream()
                .filter(l -> l.contains("fenced")).limit(3).toList();
        System.out.printf("fencing: %d flushes on n4 before SIGSTOP, attached on n1 %d ms after SIGSTOP, old writer"
                        + " failed %d ms after SIGCONT with %s; n4 log: %s%n", workload.flushes(), takeover.toMillis(),
                fencedAfter.toMillis(), workload.failure(), fenceLines);
        assertConditionNormal(volumeId, "a fenced coordinator must not change the volume's record");
    }

    /**
     * Invariant 2 against a live, running coordinator that an operator forces off (as when its
     * node is cut from its client but not from the cluster): the publication on n4 is refused
     * without {@code force}, taken over with it; attaching on n1 fences n4's coordinator, whose
     * writes then fail while the pattern written through n1 reads back; n4's later clean-up must
     * not touch n1's attachment.
     */
    @Test
    void aLiveCoordinatorForcedOffCanNoLongerWrite() throws Exception {
        String volumeId = cluster.createBlockVolume("n1", "forced", 3, 64L << 20);
        Path oldDevice = cluster.attach("n4", volumeId, TestCluster.block(), Duration.ofSeconds(30));
        BlockWorkload workload = new BlockWorkload(oldDevice, BLOCKS, WRITES_PER_FLUSH)
                .startAndAwait(50, Duration.ofSeconds(60));

        try (RemoteVolumeService api = RemoteVolumeService.connect(cluster.managementEndpoint("n1"))) {
            StowageException refused = assertThrows(StowageException.class, () -> api.publish(volumeId, "n1", false));
            assertEquals(ErrorCode.FAILED_PRECONDITION, refused.code(), refused.getMessage());
            assertEquals("n1", api.publish(volumeId, "n1", false, true).attachment().orElseThrow().nodeId());
            Path newDevice = cluster.attach("n1", volumeId, TestCluster.block(), Duration.ofSeconds(30));
            BlockWorkload.writePattern(newDevice, PATTERN, BLOCKS);

            assertTrue(workload.awaitEnd(Duration.ofSeconds(30)), "the writer on the forced-off coordinator's device"
                    + " did not fail within 30 s (" + workload.flushes() + " flushes)");
            assertInstanceOf(IOException.class, workload.failure(), "the writer must end with an I/O error");
            assertThrows(IOException.class, () -> BlockWorkload.writeOneDirect(oldDevice, PATTERN - 1, 0),
                    "a new write through the forced-off coordinator must fail");
            BlockWorkload.verifyPattern(newDevice, PATTERN, BLOCKS);

            cluster.unstage("n4", volumeId, oldDevice);
            Volume.Attachment a = api.getVolume(volumeId).orElseThrow().attachment().orElseThrow();
            assertEquals("n1", a.nodeId());
            assertTrue(a.devicePath().isPresent(), "n4's clean-up cleared n1's device: " + a);
            BlockWorkload.verifyPattern(newDevice, PATTERN, BLOCKS);
            System.out.printf("forced take-over: %d flushes on n4 before; its writer failed with %s%n",
                    workload.flushes(), workload.failure());
        }
    }

    /**
     * Invariant 2 against a coordinator cut off from its replicas (a network partition) but not from
     * etcd, so it stays a live member: its writes time out on every replica and fail without marking
     * any replica STALE (else no node could attach the volume any more); the volume is forced onto
     * n1 and a pattern written there; once the cut heals, n4's writes must fail, n4 must be fenced
     * by the replicas' epoch (not merely time out) and the pattern must read back unchanged.
     */
    @Test
    void aCutOffCoordinatorCanNoLongerWriteOnceTheVolumeIsAttachedElsewhere() throws Exception {
        String volumeId = cluster.createBlockVolume("n1", "cut", 3, 64L << 20);
        Path oldDevice = cluster.attach("n4", volumeId, TestCluster.block(), Duration.ofSeconds(30));
        BlockWorkload workload = new BlockWorkload(oldDevice, BLOCKS, WRITES_PER_FLUSH)
                .startAndAwait(50, Duration.ofSeconds(60));

        Path newDevice;
        Instant cutAt = Instant.now();
        List<String> healthyAfterCut;
        try (NetworkCut cut = NetworkCut.from(cluster.spec("n4").ip());
             RemoteVolumeService api = RemoteVolumeService.connect(cluster.managementEndpoint("n1"))) {
            assertTrue(workload.awaitEnd(Duration.ofSeconds(60)), "the writer on the cut-off coordinator's device"
                    + " did not fail within 60 s of the cut (" + workload.flushes() + " flushes)");
            assertInstanceOf(IOException.class, workload.failure(), "the writer must end with an I/O error");
            System.out.printf("network cut: the writer on n4 failed %d ms after the cut with %s%n",
                    Duration.between(cutAt, Instant.now()).toMillis(), workload.failure());
            Volume afterCut = api.getVolume(volumeId).orElseThrow();
            healthyAfterCut = healthy(afterCut);
            // The cut drops what n4 sends, not what it receives. A write whose frame to one replica
            // left just before the rule took effect, and whose frames to the others just after, is
            // acknowledged by that one: then the others did miss a write, and the coordinator is right
            // to mark them stale. What it must never do is mark every replica stale for its own cut.
            assertFalse(healthyAfterCut.isEmpty(), "the cut-off coordinator marked every replica stale: "
                    + afterCut.replicas());
            if (healthyAfterCut.size() < afterCut.replicas().size()) {
                System.out.printf("network cut: a write straddled the cut; the replicas it reached first stay"
                        + " healthy, the others were marked stale: %s%n", afterCut.replicas());
            }
            api.publish(volumeId, "n1", false, true);
            newDevice = cluster.attach("n1", volumeId, TestCluster.block(), Duration.ofSeconds(30));
            BlockWorkload.writePattern(newDevice, PATTERN, BLOCKS);
        }
        // Once TCP retransmits again (its back-off after the cut takes seconds), n4's requests reach
        // the replicas, which refuse its epoch: every write fails, and the refusal is what fences it.
        Duration fenced = cluster.awaitFenced("n4", oldDevice, PATTERN - 1);
        System.out.printf("network cut: n4 fenced %d ms after the cut healed%n", fenced.toMillis());
        BlockWorkload.verifyPattern(newDevice, PATTERN, BLOCKS);
        try (RemoteVolumeService api = RemoteVolumeService.connect(cluster.managementEndpoint("n1"))) {
            Volume atEnd = api.getVolume(volumeId).orElseThrow();
            assertTrue(healthy(atEnd).containsAll(healthyAfterCut), "the old coordinator must not change the"
                    + " volume's record: healthy after the cut " + healthyAfterCut + ", now " + atEnd.replicas());
        }
        if (healthyAfterCut.size() == 3) {
            assertConditionNormal(volumeId, "the old coordinator must not change the volume's record");
        }
    }

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
    @Test
    void aCoordinatorCutOffFromEverythingAcknowledgesNothingAndItsReplicaComesBackExact() throws Exception {
        String volumeId = cluster.createBlockVolume("n2", "partitioned", 3, 64L << 20);
        Path oldDevice = cluster.attach("n1", volumeId, TestCluster.block(), Duration.ofSeconds(30));
        BlockWorkload workload = new BlockWorkload(oldDevice, BLOCKS, WRITES_PER_FLUSH)
                .startAndAwait(50, Duration.ofSeconds(60));

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
        cluster.awaitFenced("n1", oldDevice, PATTERN - 1);
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

    /** ControllerGetVolume on n1 reports {@code volumeId}'s condition as normal. */
    private void assertConditionNormal(String volumeId, String why) {
        try (CsiClient c = cluster.csi("n1")) {
            Csi.VolumeCondition condition = c.controller().controllerGetVolume(
                    Csi.ControllerGetVolumeRequest.newBuilder().setVolumeId(volumeId).build()).getStatus()
                    .getVolumeCondition();
            assertFalse(condition.getAbnormal(), why + ", but the replica states now say: " + condition.getMessage());
        }
    }

    private static List<String> healthy(Volume v) {
        return v.replicas().stream().filter(r -> r.state() == Volume.ReplicaState.HEALTHY)
                .map(Volume.Replica::nodeId).toList();
    }
}
