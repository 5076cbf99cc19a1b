package dev.stowage.engine.cluster;

import dev.stowage.proto.metadata.NodeRecord;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class NodeProtosTest {
    @Test
    void roundTrips() {
        NodeDescriptor node = NodeDescriptor.storage("node-1", "10.0.0.7:7400", Map.of("zone", "a", "rack", "r1"),
                1L << 40, 1L << 39);
        assertEquals(node, NodeProtos.decode(NodeProtos.encode(node)));
        NodeDescriptor storageless = NodeDescriptor.storageless("edge.2", "[::1]:7400", Map.of());
        assertEquals(storageless, NodeProtos.fromProto(NodeProtos.toProto(storageless)));
        NodeDescriptor withApi = node.withApiAddress("10.0.0.7:7420");
        assertEquals(withApi, NodeProtos.decode(NodeProtos.encode(withApi)));
        assertEquals("10.0.0.7:7420", NodeProtos.decode(NodeProtos.encode(withApi)).apiAddress());
        assertEquals("", node.apiAddress(), "none until the node publishes it");
    }

    @Test
    void garbageAndInvalidRecordsAreRefusedNamingTheField() {
        IllegalArgumentException garbage = assertThrows(IllegalArgumentException.class,
                () -> NodeProtos.decode(new byte[] {(byte) 0xff, 1, 2}));
        assertTrue(garbage.getMessage().startsWith("node record"), garbage.getMessage());
        NodeRecord huge = NodeRecord.newBuilder().setId("n1").setAddress("h:1").setCapacityBytes(-1).build();
        assertTrue(assertThrows(IllegalArgumentException.class, () -> NodeProtos.fromProto(huge)).getMessage()
                .startsWith("capacity_bytes"));
        NodeRecord noAddress = NodeRecord.newBuilder().setId("n1").build();
        assertTrue(assertThrows(IllegalArgumentException.class, () -> NodeProtos.fromProto(noAddress)).getMessage()
                .startsWith("address"));
    }

    @Test
    void descriptorValidation() {
        Map<String, String> none = Map.of();
        assertThrows(IllegalArgumentException.class, () -> NodeDescriptor.storage("a/b", "h:1", none, 1, 1));
        assertThrows(IllegalArgumentException.class, () -> NodeDescriptor.storage("", "h:1", none, 1, 1));
        assertThrows(IllegalArgumentException.class, () -> NodeDescriptor.storage("n", "h", none, 1, 1));
        assertThrows(IllegalArgumentException.class, () -> NodeDescriptor.storage("n", "h:0", none, 1, 1));
        assertThrows(IllegalArgumentException.class, () -> NodeDescriptor.storage("n", ":80", none, 1, 1));
        assertThrows(IllegalArgumentException.class, () -> NodeDescriptor.storage("n", "::1:80", none, 1, 1));
        assertThrows(IllegalArgumentException.class, () -> NodeDescriptor.storage("n", "h:1", none, 1, 2));
        assertThrows(IllegalArgumentException.class, () -> NodeDescriptor.storage("n", "h:1", none, -1, 0));
        NodeDescriptor ok = NodeDescriptor.storage("n", "h:1", Map.of("zone", "a"), 10, 5);
        assertEquals("a", ok.zone());
        assertEquals("", ok.rack());
        assertEquals(3, ok.withFreeBytes(3).freeBytes());
        IllegalArgumentException api = assertThrows(IllegalArgumentException.class, () -> ok.withApiAddress("h"));
        assertTrue(api.getMessage().startsWith("apiAddress:"), api.getMessage());
        assertEquals("[::1]:7420", ok.withApiAddress("[::1]:7420").apiAddress());
    }
}
