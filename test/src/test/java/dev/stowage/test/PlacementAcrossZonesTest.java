package dev.stowage.test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import csi.v1.Csi;
import dev.stowage.test.TestCluster.NodeSpec;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Invariants 6 and 7 on a real cluster: four storage nodes in zones a, a, b, c (n1 and n2 on
 * different racks of zone a) and a storage-less node. Replicas spread over zones, the {@code zones}
 * parameter restricts them (a request it cannot satisfy is refused with RESOURCE_EXHAUSTED naming
 * the nodes), CreateVolume reports the replica nodes as accessible topology, and a storage-less
 * node mounts a filesystem on a volume whose replicas are all remote.
 */
@Tag("root")
class PlacementAcrossZonesTest {
    private static final String TOPOLOGY_NODE = "topology.stowage.dev/node";

    private TestCluster cluster;

    @BeforeEach
    void startCluster() throws Exception {
        cluster = TestCluster.start("placement");
        cluster.startNodes(NodeSpec.storage("n1", "127.0.0.2", "a", "r1"),
                NodeSpec.storage("n2", "127.0.0.3", "a", "r2"),
                NodeSpec.storage("n3", "127.0.0.4", "b", "r1"),
                NodeSpec.storage("n4", "127.0.0.5", "c", "r1"),
                NodeSpec.storageless("n5", "127.0.0.6", "a"));
    }

    @AfterEach
    void stopCluster() {
        if (cluster != null) {
            cluster.close();
        }
    }

    @Test
    void replicasSpreadOverZonesAndTheZonesParameterRestrictsThem() throws Exception {
        Instant start = Instant.now();
        try (CsiClient c = cluster.csi("n1")) {
            List<String> spread = replicaNodes(create(c, "spread", 3, Map.of()));
            assertEquals(3, spread.size(), "three distinct replica nodes: " + spread);
            assertEquals(Set.of("a", "b", "c"), zones(spread), "repl=3 on zones a,a,b,c covers three zones: " + spread);

            // Only n3 (b) and n4 (c) qualify: two nodes for three replicas.
            StatusRuntimeException refused = assertThrows(StatusRuntimeException.class,
                    () -> create(c, "too-narrow", 3, Map.of("zones", "b,c")));
            assertEquals(Status.Code.RESOURCE_EXHAUSTED, refused.getStatus().getCode(), refused.toString());
            String message = refused.getStatus().getDescription();
            for (String node : List.of("n1", "n2", "n3", "n4", "n5")) {
                assertTrue(message != null && message.contains(node), "the refusal must name " + node + ": " + message);
            }

            // Within zones a and b there are three nodes; the spread still covers both zones.
            List<String> twoZones = replicaNodes(create(c, "two-zones", 3, Map.of("zones", "a,b")));
            assertEquals(Set.of("n1", "n2", "n3"), Set.copyOf(twoZones), "repl=3 zones=a,b: " + twoZones);

            Csi.Volume pairVolume = create(c, "pair", 2, Map.of("zones", "a,b"));
            List<String> pair = replicaNodes(pairVolume);
            assertEquals(2, pair.size(), "two distinct replica nodes: " + pair);
            assertEquals(Set.of("a", "b"), zones(pair), "repl=2 zones=a,b lands in a and b: " + pair);

            // The storage-less node mounts a filesystem on the pair: all I/O goes to remote replicas.
            String volumeId = pairVolume.getVolumeId();
            Csi.VolumeCapability ext4 = TestCluster.mount("ext4");
            Path mounted = cluster.attach("n5", volumeId, ext4, Duration.ofSeconds(30));
            byte[] content = ("written on the storage-less node through replicas on " + pair + "\n")
                    .repeat(2000).getBytes(StandardCharsets.UTF_8);
            Path file = mounted.resolve("hello.txt");
            Files.write(file, content, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE, StandardOpenOption.SYNC);
            assertTrue(HostCleanup.mountsUnder(mounted).contains(mounted), "the target is a mount point");

            // Unmount (dropping every cached page) and mount again: the file comes from the replicas.
            cluster.unstage("n5", volumeId, mounted);
            assertTrue(HostCleanup.mountsUnder(mounted).isEmpty(), "unpublished target still mounted");
            Path again = cluster.attach("n5", volumeId, ext4, Duration.ofSeconds(30));
            assertArrayEquals(content, Files.readAllBytes(again.resolve("hello.txt")),
                    "the file written on the storage-less node reads back after a remount");
            System.out.printf("placement: spread=%s, zones=a,b repl=3 %s, repl=2 %s; refusal: %s; %d ms%n", spread,
                    twoZones, pair, message, Duration.between(start, Instant.now()).toMillis());
        }
    }

    private static Csi.Volume create(CsiClient c, String name, int repl, Map<String, String> parameters) {
        return c.controller().createVolume(Csi.CreateVolumeRequest.newBuilder().setName(name)
                .addVolumeCapabilities(TestCluster.mount("ext4")).putParameters("repl", Integer.toString(repl))
                .putAllParameters(parameters)
                .setCapacityRange(Csi.CapacityRange.newBuilder().setRequiredBytes(64L << 20)).build()).getVolume();
    }

    /** The replica nodes a volume reports as accessible topology, sorted. */
    private static List<String> replicaNodes(Csi.Volume v) {
        Set<String> nodes = new TreeSet<>();
        v.getAccessibleTopologyList().forEach(t -> nodes.add(t.getSegmentsMap().get(TOPOLOGY_NODE)));
        assertEquals(v.getAccessibleTopologyCount(), nodes.size(), "replica nodes repeat: " + v.getAccessibleTopologyList());
        return List.copyOf(nodes);
    }

    private Set<String> zones(List<String> nodes) {
        Set<String> zones = new TreeSet<>();
        nodes.forEach(n -> zones.add(cluster.zoneOf(n)));
        return zones;
    }
}
