package dev.stowage.test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
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
        cluster = TestCluster.startThreeStorageNodesAndOneStorageless("fencing");
    }

    @AfterEach
    void stopCluster() {
        if (cluster != null) {
            cluster.close();
        }
    }

    @Test
    void aFrozenCoordinatorCanNoLongerWriteOnceTheVolumeIsAttachedElsewhere() throws Exception {
        String volumeId = createVolume("fenced");
        Path oldDevice = cluster.attach("n4", volumeId, TestCluster.block(), Duration.ofSeconds(30));
        BlockWorkload workload = new BlockWorkload(oldDevice, BLOCKS, WRITES_PER_FLUSH).start();
        workload.awaitFlushes(50, Duration.ofSeconds(60));

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
        String volumeId = createVolume("forced");
        Path oldDevice = cluster.attach("n4", volumeId, TestCluster.block(), Duration.ofSeconds(30));
        BlockWorkload workload = new BlockWorkload(oldDevice, BLOCKS, WRITES_PER_FLUSH).start();
        workload.awaitFlushes(50, Duration.ofSeconds(60));

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
        String volumeId = createVolume("cut");
        Path oldDevice = cluster.attach("n4", volumeId, TestCluster.block(), Duration.ofSeconds(30));
        BlockWorkload workload = new BlockWorkload(oldDevice, BLOCKS, WRITES_PER_FLUSH).start();
        workload.awaitFlushes(50, Duration.ofSeconds(60));

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
        Instant healed = Instant.now();
        do {
            assertThrows(IOException.class, () -> BlockWorkload.writeOneDirect(oldDevice, PATTERN - 1, 0),
                    "a write through the old coordinator must fail once the cut has healed");
        } while (!cluster.logged("n4", "fenced at epoch") && Instant.now().isBefore(healed.plusSeconds(90)));
        assertTrue(cluster.logged("n4", "fenced at epoch"), "n4 reached its replicas again within 90 s but was not fenced");
        System.out.printf("network cut: n4 fenced %d ms after the cut healed%n",
                Duration.between(healed, Instant.now()).toMillis());
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

    private String createVolume(String name) {
        try (CsiClient c = cluster.csi("n1")) {
            return c.controller().createVolume(Csi.CreateVolumeRequest.newBuilder().setName(name)
                    .addVolumeCapabilities(TestCluster.block()).putParameters("repl", "3")
                    .setCapacityRange(Csi.CapacityRange.newBuilder().setRequiredBytes(64L << 20)).build())
                    .getVolume().getVolumeId();
        }
    }
}
