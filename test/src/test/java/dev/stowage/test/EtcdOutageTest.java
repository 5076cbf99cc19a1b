package dev.stowage.test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.stowage.engine.api.Volume;
import dev.stowage.engine.api.grpc.RemoteVolumeService;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The metadata store goes away, for everyone or for one node, under a running workload on a repl=3
 * volume attached on the storage-less node n4. The data path needs etcd only to record a failed
 * replica, so with every replica well the writes and flushes must go on. A node whose lease
 * expired is seen to leave the cluster, but that says it lost etcd, not its coordinator: a replica
 * that still answers must not be marked STALE (before, the coordinator's repair pass did so, and
 * the volume ran on fewer replicas while they were resynced for nothing). Afterwards the volume
 * must be as it was: attached where it was, at the same epoch, every replica HEALTHY, every
 * flushed write readable.
 */
@Tag("root")
class EtcdOutageTest {
    private static final int BLOCKS = 2048;
    private static final Duration OUTAGE = Duration.ofSeconds(12);

    private TestCluster cluster;

    @BeforeEach
    void startCluster() throws Exception {
        cluster = TestCluster.startThreeStorageNodesAndOneStorageless("etcd-outage", "n2");
    }

    @AfterEach
    void stopCluster() {
        if (cluster != null) {
            cluster.close();
        }
    }

    @Test
    void attachedVolumesKeepServingThroughAnEtcdOutageAndComeOutUnchanged() throws Exception {
        Running run = startWorkload();
        BlockWorkload workload = run.workload();

        long atStop = workload.flushes();
        cluster.stopEtcd();
        long duringOutage;
        try {
            Thread.sleep(OUTAGE.toMillis());
            duringOutage = workload.flushes() - atStop;
        } finally {
            cluster.resumeEtcd();
        }
        Instant resumed = Instant.now();
        assertTrue(workload.isRunning(), "the writer failed during the etcd outage: " + workload.failure());
        assertTrue(duringOutage > 0, "no flush completed in " + OUTAGE.toSeconds() + " s without etcd");

        for (String node : List.of("n1", "n2", "n3", "n4")) {
            awaitLogged(node, "joined the cluster again");
        }
        Duration rejoined = Duration.between(resumed, Instant.now());
        int verified = finish(run);
        System.out.printf("etcd outage: %d flushes during the %d s outage; all four nodes joined again within %d ms;"
                        + " %d flushed blocks verified%n", duringOutage, OUTAGE.toSeconds(), rejoined.toMillis(),
                verified);
    }

    /**
     * One replica's node loses etcd and keeps its network otherwise: its lease expires and the
     * coordinator sees it leave the cluster for seconds, several repair passes long. The replica
     * answers the coordinator throughout, so it stays HEALTHY and keeps taking every write.
     */
    @Test
    void aReplicaWhoseNodeLostEtcdButNotItsCoordinatorStaysHealthy() throws Exception {
        Running run = startWorkload();
        BlockWorkload workload = run.workload();

        long duringCut;
        Instant cutAt = Instant.now();
        Duration left;
        try (NetworkCut cut = cluster.cutFromEtcd("n2")) {
            awaitLogged("n4", "node n2 left the cluster");
            left = Duration.between(cutAt, Instant.now());
            long atLeave = workload.flushes();
            Thread.sleep(OUTAGE.toMillis() / 2); // the repair pass runs every few seconds meanwhile
            duringCut = workload.flushes() - atLeave;
        }
        assertTrue(workload.isRunning(), "the writer failed while n2 had no etcd: " + workload.failure());
        assertTrue(duringCut > 0, "no flush completed while n2 was away from etcd");
        assertFalse(cluster.logged("n4", "marking it STALE"), "the coordinator marked n2's replica stale, which"
                + " took every write; see " + cluster.log("n4"));
        assertTrue(cluster.logged("n4", "but its replica still answers this coordinator"),
                "the coordinator never asked n2's replica whether it answers; see " + cluster.log("n4"));
        awaitLogged("n2", "joined the cluster again");
        int verified = finish(run);
        System.out.printf("etcd cut from n2: seen to leave %d ms after the cut; %d flushes while it was away;"
                + " %d flushed blocks verified%n", left.toMillis(), duringCut, verified);
    }

    /** A repl=3 volume attached on n4, its record as attached, and a flushed workload on it. */
    private record Running(String volumeId, Path device, Volume before, BlockWorkload workload) {
    }

    /** Creates and attaches the volume and starts the workload; returns once 50 flushes completed. */
    private Running startWorkload() throws Exception {
        String volumeId = cluster.createBlockVolume("n1", "outage", 3, 64L << 20);
        Path device = cluster.attach("n4", volumeId, TestCluster.block(), Duration.ofSeconds(30));
        Volume before = volume(volumeId);
        BlockWorkload workload = new BlockWorkload(device, BLOCKS, 8).startAndAwait(50, Duration.ofSeconds(60));
        return new Running(volumeId, device, before, workload);
    }

    /**
     * Checks that the coordinator marked nothing stale, writes 50 more flushes, stops the writer,
     * verifies every flushed block and compares the volume's record with the one as attached.
     */
    private int finish(Running run) throws Exception {
        BlockWorkload workload = run.workload();
        Volume before = run.before();
        assertFalse(cluster.logged("n4", "marking it STALE"), "the coordinator marked a replica stale that took"
                + " every write; see " + cluster.log("n4"));
        workload.awaitFlushes(workload.flushes() + 50, Duration.ofSeconds(60));
        assertTrue(workload.stop(Duration.ofSeconds(30)), "the writer did not stop");
        assertEquals(null, workload.failure(), "the writer failed");
        int verified = workload.verify(run.device());
        Volume after = volume(run.volumeId());
        assertEquals(before.attachment().map(Volume.Attachment::nodeId), after.attachment().map(Volume.Attachment::nodeId),
                "the attachment moved");
        assertEquals(before.replicas().stream().map(Volume.Replica::nodeId).sorted().toList(),
                after.replicas().stream().map(Volume.Replica::nodeId).sorted().toList(), "replicas were replaced");
        assertTrue(after.replicas().stream().allMatch(r -> r.state() == Volume.ReplicaState.HEALTHY),
                "a replica is no longer healthy: " + after.replicas());
        assertEquals(before.epoch(), after.epoch(), "the epoch changed, so something attached the volume again");
        return verified;
    }

    private Volume volume(String volumeId) throws Exception {
        try (RemoteVolumeService api = RemoteVolumeService.connect(cluster.managementEndpoint("n1"))) {
            return api.getVolume(volumeId).orElseThrow();
        }
    }

    private void awaitLogged(String node, String text) throws Exception {
        Instant deadline = Instant.now().plusSeconds(60);
        while (!cluster.logged(node, text)) {
            assertTrue(Instant.now().isBefore(deadline), node + " did not log '" + text + "' within 60 s");
            Thread.sleep(200);
        }
    }
}
