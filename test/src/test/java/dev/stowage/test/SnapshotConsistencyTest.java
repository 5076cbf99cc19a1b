package dev.stowage.test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import csi.v1.Csi;
import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.StowageException;
import dev.stowage.engine.api.grpc.RemoteVolumeService;
import dev.stowage.test.TestCluster.NodeSpec;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Invariant 9 on real processes: a snapshot or clone of a volume that is being written on another
 * node holds the same writes on every replica. The volume is attached on a storage-less node, which
 * writes to it without pause; the snapshots and the clone are asked of the replica nodes' own
 * controllers, which must have the attached node's coordinator hold its writes while each replica is
 * copied. Each copy is then read from each replica alone (a volume attached on a replica node reads
 * its local replica), and the two must be the same consistent cut of the write sequence.
 */
@Tag("root")
class SnapshotConsistencyTest {
    private static final long MIB = 1L << 20;
    private static final int BLOCKS = 256;

    @Test
    void copiesOfAVolumeWrittenElsewhereHoldTheSameWritesOnEveryReplica() throws Exception {
        // The nodes require a management API token: the replica nodes' calls to n4 must carry it.
        Path token = Files.createTempFile("stowage-cluster-token-", "");
        Files.writeString(token, "snapshot-consistency-0123456789abcdef");
        try (TestCluster cluster = TestCluster.start("snapshot-consistency")) {
            cluster.startNodes(NodeSpec.storage("n1", "127.0.0.2", "zone-a", null).with("--cluster-token-file", token.toString()),
                    NodeSpec.storage("n2", "127.0.0.3", "zone-b", null).with("--cluster-token-file", token.toString()),
                    NodeSpec.storageless("n4", "127.0.0.5", "zone-a").with("--cluster-token-file", token.toString()));
            String volumeId = create(cluster, "n1", "source", null);
            Path device = cluster.attach("n4", volumeId, TestCluster.block(), Duration.ofSeconds(30));
            BlockWorkload writer = new BlockWorkload(device, BLOCKS, 1).start();
            List<String> copies = new ArrayList<>();
            try {
                writer.awaitFlushes(100, Duration.ofSeconds(60));
                for (int i = 0; i < 4; i++) {
                    String via = i % 2 == 0 ? "n1" : "n2";
                    String snapshotId;
                    try (CsiClient c = cluster.csi(via)) {
                        snapshotId = c.controller().createSnapshot(Csi.CreateSnapshotRequest.newBuilder()
                                .setName("snap-" + i).setSourceVolumeId(volumeId).build()).getSnapshot().getSnapshotId();
                    }
                    copies.add(create(cluster, "n1", "restored-" + i, Csi.VolumeContentSource.newBuilder()
                            .setSnapshot(Csi.VolumeContentSource.SnapshotSource.newBuilder().setSnapshotId(snapshotId))
                            .build()));
                    long before = writer.flushes();
                    writer.awaitFlushes(before + 20, Duration.ofSeconds(30)); // the copies land mid-stream
                }
                copies.add(create(cluster, "n2", "clone", Csi.VolumeContentSource.newBuilder()
                        .setVolume(Csi.VolumeContentSource.VolumeSource.newBuilder().setVolumeId(volumeId)).build()));
            } finally {
                assertTrue(writer.stop(Duration.ofSeconds(30)), "the writer did not stop");
            }
            assertEquals(null, writer.failure(), "the writer on n4 failed");

            for (String copy : copies) {
                assertEquals(Set.of("n1", "n2"), replicaNodes(cluster, copy), "replicas of " + copy);
                long[] onN1 = readAlone(cluster, "n1", copy);
                long[] onN2 = readAlone(cluster, "n2", copy);
                assertArrayEquals(onN1, onN2, "the replicas of copy " + copy + " hold different writes");
                long cut = assertConsistentCut(writer, onN1, copy);
                System.out.printf("copy %s: both replicas hold writes 1..%d%n", copy, cut);
            }
            // A management API call without the token is refused (the CSI socket, being local, needs none).
            String api = Files.readAllLines(cluster.log("n1")).stream()
                    .filter(l -> l.contains("management API serving on "))
                    .map(l -> l.replaceAll(".*management API serving on (\\S+?), token required.*", "$1"))
                    .findFirst().orElseThrow();
            try (RemoteVolumeService anonymous = RemoteVolumeService.connect(api)) {
                StowageException refused = assertThrows(StowageException.class, anonymous::clusterStatus);
                assertEquals(ErrorCode.UNAUTHENTICATED, refused.code());
            }
        } finally {
            Files.deleteIfExists(token);
        }
    }

    /** Every write up to the highest one found, and none after it: what a copy taken between two writes holds. */
    private static long assertConsistentCut(BlockWorkload writer, long[] seqs, String copy) {
        long cut = 0;
        for (long s : seqs) {
            cut = Math.max(cut, s);
        }
        assertTrue(cut >= 100, "copy " + copy + " holds only " + cut + " writes; the writer had made 100 before");
        for (long s = Math.max(1, cut - BLOCKS + 1); s <= cut; s++) {
            assertEquals(s, seqs[writer.blockOf(s)], "copy " + copy + ": block " + writer.blockOf(s)
                    + " does not hold write " + s + " of the cut at " + cut);
        }
        return cut;
    }

    /** Attaches {@code volumeId} on replica node {@code node} (which reads its own replica), reads it, detaches it. */
    private static long[] readAlone(TestCluster cluster, String node, String volumeId) throws Exception {
        Path device = cluster.attach(node, volumeId, TestCluster.block(), Duration.ofSeconds(30));
        try {
            return BlockWorkload.readSequences(device, BLOCKS);
        } finally {
            cluster.unstage(node, volumeId, device);
            try (CsiClient c = cluster.csi(node)) {
                c.controller().controllerUnpublishVolume(Csi.ControllerUnpublishVolumeRequest.newBuilder()
                        .setVolumeId(volumeId).setNodeId(node).build());
            }
        }
    }

    private static String create(TestCluster cluster, String via, String name, Csi.VolumeContentSource source) {
        Csi.CreateVolumeRequest.Builder b = Csi.CreateVolumeRequest.newBuilder().setName(name)
                .addVolumeCapabilities(TestCluster.block()).putParameters("repl", "2")
                .setCapacityRange(Csi.CapacityRange.newBuilder().setRequiredBytes(64 * MIB));
        if (source != null) {
            b.setVolumeContentSource(source);
        }
        try (CsiClient c = cluster.csi(via)) {
            return c.controller().createVolume(b.build()).getVolume().getVolumeId();
        }
    }

    private static Set<String> replicaNodes(TestCluster cluster, String volumeId) {
        try (CsiClient c = cluster.csi("n1")) {
            Set<String> s = new TreeSet<>();
            c.controller().controllerGetVolume(Csi.ControllerGetVolumeRequest.newBuilder().setVolumeId(volumeId).build())
                    .getVolume().getAccessibleTopologyList()
                    .forEach(t -> s.add(t.getSegmentsMap().get("topology.stowage.dev/node")));
            return s;
        }
    }
}
