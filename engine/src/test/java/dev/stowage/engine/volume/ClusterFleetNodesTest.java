package dev.stowage.engine.volume;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.stowage.engine.api.ClusterNode;
import dev.stowage.engine.cluster.Await;
import dev.stowage.engine.cluster.Membership;
import dev.stowage.engine.cluster.NodeDescriptor;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link ClusterFleet#nodes()} over a real {@link Membership} on the embedded store: live members as
 * their records say, a member that left shown as away, and back as alive when it returns.
 */
class ClusterFleetNodesTest {
    private static final Duration DEADLINE = Duration.ofSeconds(30);
    private static final long GIB = 1L << 30;

    @TempDir
    Path dir;

    private EmbeddedFleet cluster;

    @AfterEach
    void close() {
        if (cluster != null) {
            cluster.close();
        }
    }

    @Test
    void listsLiveMembersAndMarksDepartedOnesAway() throws Exception {
        cluster = new EmbeddedFleet(dir.resolve("meta"),
                NodeDescriptor.storageless("n4", "127.0.0.5:7499", Map.of("zone", "a")));
        ClusterFleet fleet = cluster.fleet;
        NodeDescriptor n1 = NodeDescriptor.storage("n1", "127.0.0.2:40001", Map.of("zone", "b", "rack", "r1"),
                10 * GIB, 7 * GIB);
        Membership peer = cluster.join(n1);
        Await.until(DEADLINE, "n1 in n4's view", () -> fleet.nodes().size() == 2);

        assertEquals(List.of(
                new ClusterNode("n1", "127.0.0.2:40001", Map.of("zone", "b", "rack", "r1"), 10 * GIB, 7 * GIB, false,
                        true),
                new ClusterNode("n4", "127.0.0.5:7499", Map.of("zone", "a"), 0, 0, true, true)), fleet.nodes());

        cluster.leave(peer); // revokes n1's lease: n4 sees it leave
        Await.until(DEADLINE, "n1 away", () -> fleet.nodes().stream().anyMatch(n -> n.id().equals("n1") && !n.alive()));
        assertEquals(List.of("n1", "n4"), fleet.nodes().stream().map(ClusterNode::id).toList(),
                "an away member stays listed, in id order");
        assertEquals(7 * GIB, fleet.nodes().get(0).freeBytes(), "as last seen");

        cluster.join(n1.withFreeBytes(6 * GIB));
        Await.until(DEADLINE, "n1 back", () -> fleet.nodes().stream()
                .anyMatch(n -> n.id().equals("n1") && n.alive() && n.freeBytes() == 6 * GIB));
        assertEquals(2, fleet.nodes().size());
    }
}
