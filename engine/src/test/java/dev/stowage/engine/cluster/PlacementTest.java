package dev.stowage.engine.cluster;

import dev.stowage.engine.api.ErrorCode;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PlacementTest {
    private static final long GIB = 1L << 30;

    private static NodeDescriptor node(String id, String zone, String rack, long freeGib) {
        Map<String, String> labels = new HashMap<>();
        if (zone != null) {
            labels.put(NodeDescriptor.ZONE, zone);
        }
        if (rack != null) {
            labels.put(NodeDescriptor.RACK, rack);
        }
        return NodeDescriptor.storage(id, "127.0.0.1:7000", labels, 1000 * GIB, freeGib * GIB);
    }

    private static List<String> choose(int replicas, List<NodeDescriptor> nodes) {
        return Placement.choose(replicas, nodes, 10 * GIB, Set.of(), Set.of());
    }

    @Test
    void spreadsOverZonesBeforeFreeCapacity() {
        List<NodeDescriptor> nodes = List.of(node("a1", "a", null, 900), node("a2", "a", null, 800),
                node("b1", "b", null, 20), node("c1", "c", null, 30));
        assertEquals(List.of("a1", "c1", "b1"), choose(3, nodes));
    }

    @Test
    void spreadsOverRacksWithinAZone() {
        List<NodeDescriptor> nodes = List.of(node("n1", "a", "r1", 900), node("n2", "a", "r1", 800),
                node("n3", "a", "r2", 20));
        assertEquals(List.of("n1", "n3"), choose(2, nodes));
    }

    @Test
    void zonesFirstThenRacksWithinTheSpread() {
        // zone a has two racks, zone b one: three replicas land on three racks across both zones.
        List<NodeDescriptor> nodes = List.of(node("a-r1-x", "a", "r1", 500), node("a-r1-y", "a", "r1", 400),
                node("a-r2-x", "a", "r2", 10), node("b-r3-x", "b", "r3", 50), node("b-r3-y", "b", "r3", 45));
        assertEquals(List.of("a-r1-x", "b-r3-x", "a-r2-x"), choose(3, nodes));
    }

    @Test
    void sameRackNameInTwoZonesIsTwoRacks() {
        List<NodeDescriptor> nodes = List.of(node("a1", "a", "r1", 100), node("a2", "a", "r2", 10),
                node("b1", "b", "r1", 50));
        // a1 (zone a), b1 (zone b, its own rack r1), then a2 (new rack a/r2)
        assertEquals(List.of("a1", "b1", "a2"), choose(3, nodes));
    }

    @Test
    void withoutLabelsMostFreeCapacityFirst() {
        List<NodeDescriptor> nodes = List.of(node("n1", null, null, 50), node("n2", null, null, 200),
                node("n3", null, null, 100));
        assertEquals(List.of("n2", "n3"), choose(2, nodes));
        assertEquals(List.of("n2", "n3", "n1"), choose(3, nodes));
    }

    @Test
    void unlabelledNodesShareOneZone() {
        List<NodeDescriptor> nodes = List.of(node("x1", null, null, 900), node("x2", null, null, 800),
                node("a1", "a", null, 20));
        assertEquals(List.of("x1", "a1"), choose(2, nodes));
    }

    @Test
    void tiesBreakByNodeIdWhateverTheInputOrder() {
        List<NodeDescriptor> nodes = new ArrayList<>();
        for (int i = 0; i < 12; i++) {
            nodes.add(node("n" + (char) ('a' + i), "z" + (i % 3), "r" + (i % 2), 100));
        }
        List<String> expected = choose(3, nodes);
        assertEquals(List.of("na", "nb", "nc"), expected);
        Random random = new Random(42);
        for (int round = 0; round < 50; round++) {
            List<NodeDescriptor> shuffled = new ArrayList<>(nodes);
            Collections.shuffle(shuffled, random);
            assertEquals(expected, choose(3, shuffled));
        }
    }

    @Test
    void storagelessNodesNeverHoldReplicas() {
        List<NodeDescriptor> nodes = List.of(NodeDescriptor.storageless("s1", "127.0.0.1:7000", Map.of("zone", "c")),
                node("a1", "a", null, 10), node("b1", "b", null, 10));
        assertEquals(List.of("a1", "b1"), choose(2, nodes));
        PlacementException e = assertThrows(PlacementException.class, () -> choose(3, nodes));
        assertEquals("repl=3 needs 3 storage nodes with 10 GiB free; found 2: a1 (zone a), b1 (zone b);"
                + " not eligible: s1 (storage-less)", e.getMessage());
    }

    @Test
    void impossiblePlacementSaysExactlyWhy() {
        List<NodeDescriptor> nodes = List.of(node("n1", "a", null, 100), node("n2", "b", null, 100),
                node("n3", "c", null, 100), NodeDescriptor.storageless("n4", "127.0.0.1:7000", Map.of("zone", "a")),
                node("n5", "a", null, 4), node("n6", "b", "r9", 100));
        PlacementException e = assertThrows(PlacementException.class, () -> Placement.choose(3, nodes, 10 * GIB,
                Set.of("n6"), Set.of("b", "a")));
        assertEquals("repl=3 needs 3 storage nodes with 10 GiB free in zones [a,b]; found 2: n1 (zone a),"
                + " n2 (zone b); not eligible: n3 (zone c), n4 (storage-less), n5 (4 GiB free), n6 (excluded)",
                e.getMessage());
        assertEquals(ErrorCode.RESOURCE_EXHAUSTED, e.code());
        assertEquals(3, e.needed());
        assertEquals(List.of("n1", "n2"), e.eligible());
        assertEquals(Map.of("n3", "zone c", "n4", "storage-less", "n5", "4 GiB free", "n6", "excluded"), e.refused());
    }

    @Test
    void noCandidatesAtAll() {
        PlacementException e = assertThrows(PlacementException.class,
                () -> Placement.choose(1, List.of(), 512L << 20, Set.of(), Set.of()));
        assertEquals("repl=1 needs 1 storage node with 512 MiB free; found 0", e.getMessage());
    }

    @Test
    void zoneRestrictionRefusesUnlabelledNodes() {
        PlacementException e = assertThrows(PlacementException.class, () -> Placement.choose(1,
                List.of(node("n1", null, "r1", 100)), GIB, Set.of(), Set.of("a")));
        assertEquals("repl=1 needs 1 storage node with 1 GiB free in zones [a]; found 0; not eligible: n1 (no zone)",
                e.getMessage());
    }

    @Test
    void capacityIsComparedThinlyWithTheOverprovisionRatio() {
        List<NodeDescriptor> nodes = List.of(node("n1", null, null, 5), node("n2", null, null, 4));
        assertEquals(List.of("n1"), Placement.choose(1, nodes, 10 * GIB, Set.of(), Set.of(), 2.0));
        PlacementException e = assertThrows(PlacementException.class,
                () -> Placement.choose(2, nodes, 10 * GIB, Set.of(), Set.of(), 2.0));
        assertEquals("repl=2 needs 2 storage nodes with 5 GiB free; found 1: n1 (no zone); not eligible:"
                + " n2 (4 GiB free)", e.getMessage());
        assertEquals(5 * GIB, Placement.requiredFreeBytes(10 * GIB, 2.0));
        assertEquals(4, Placement.requiredFreeBytes(10, 3.0)); // rounded up
        assertEquals(10 * GIB, Placement.requiredFreeBytes(10 * GIB, Placement.NO_OVERPROVISIONING));
    }

    @Test
    void exactlyEnoughFreeSpaceIsEnough() {
        assertEquals(List.of("n1"), choose(1, List.of(node("n1", null, null, 10))));
    }

    @Test
    void badArgumentsNameTheArgument() {
        List<NodeDescriptor> nodes = List.of(node("n1", "a", null, 100));
        assertMessage("replicas", () -> Placement.choose(0, nodes, GIB, Set.of(), Set.of()));
        assertMessage("sizeBytes", () -> Placement.choose(1, nodes, -1, Set.of(), Set.of()));
        assertMessage("overprovisionRatio", () -> Placement.choose(1, nodes, GIB, Set.of(), Set.of(), 0.5));
        assertMessage("overprovisionRatio", () -> Placement.choose(1, nodes, GIB, Set.of(), Set.of(), Double.NaN));
        assertMessage("candidates: node n1 is listed twice",
                () -> Placement.choose(1, List.of(nodes.get(0), nodes.get(0)), GIB, Set.of(), Set.of()));
        assertMessage("allowedZones", () -> Placement.choose(1, nodes, GIB, Set.of(), null));
    }

    private static void assertMessage(String expected, org.junit.jupiter.api.function.Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().startsWith(expected), e.getMessage());
    }

    @Test
    void replacementKeepsZonesDistinct() {
        NodeDescriptor keptA = node("a1", "a", null, 100);
        NodeDescriptor keptB = node("b1", "b", null, 100);
        List<NodeDescriptor> candidates = List.of(keptA, keptB, node("a2", "a", null, 900),
                node("b2", "b", null, 900), node("c1", "c", null, 20));
        assertEquals(List.of("c1"), Placement.chooseReplacement(1, List.of(keptA, keptB), candidates, 10 * GIB,
                Set.of("c9"), Set.of(), Placement.NO_OVERPROVISIONING));
    }

    @Test
    void replacementPrefersANewRackWhenZonesRunOut() {
        NodeDescriptor kept = node("a1", "a", "r1", 100);
        List<NodeDescriptor> candidates = List.of(kept, node("a2", "a", "r1", 900), node("a3", "a", "r2", 20));
        assertEquals(List.of("a3"), Placement.chooseReplacement(1, List.of(kept), candidates, 10 * GIB, Set.of(),
                Set.of(), Placement.NO_OVERPROVISIONING));
    }

    @Test
    void replacementNeverReusesAKeptNodeAndSaysWhy() {
        NodeDescriptor keptA = node("a1", "a", null, 100);
        NodeDescriptor lost = node("b1", "b", null, 100);
        List<NodeDescriptor> candidates = List.of(keptA, lost);
        PlacementException e = assertThrows(PlacementException.class, () -> Placement.chooseReplacement(1,
                List.of(keptA), candidates, 10 * GIB, Set.of("b1"), Set.of(), Placement.NO_OVERPROVISIONING));
        assertEquals("re-replication needs 1 more storage node with 10 GiB free besides a1; found 0;"
                + " not eligible: a1 (holds a replica), b1 (excluded)", e.getMessage());
    }

    @Test
    void replacementOfSeveralReplicas() {
        NodeDescriptor kept = node("a1", "a", null, 100);
        List<NodeDescriptor> candidates = List.of(node("a2", "a", null, 999), node("b1", "b", null, 10),
                node("c1", "c", null, 50));
        assertEquals(List.of("c1", "b1"), Placement.chooseReplacement(2, List.of(kept), candidates, GIB, Set.of(),
                Set.of(), 1.0));
    }

    @Test
    void bytesAreFormattedForPeople() {
        assertEquals("100 B", Placement.formatBytes(100));
        assertEquals("1.5 GiB", Placement.formatBytes(3 * GIB / 2));
        assertEquals("2 TiB", Placement.formatBytes(2048 * GIB));
        assertEquals("0 B", Placement.formatBytes(0));
    }
}
