package dev.stowage.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.stowage.csi.testing.InMemoryVolumeService;
import dev.stowage.engine.api.VolumeSpec;
import dev.stowage.engine.api.grpc.ManagementServer;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * stowctl's cluster view ({@code node list}, {@code cluster status}) through a real management server on
 * 127.0.0.1 in front of a two-node {@link InMemoryVolumeService}: one storage node, one storage-less node
 * that can be made to look away.
 */
class StowctlClusterViewTest {
    private static final long GIB = 1L << 30;

    private InMemoryVolumeService volumes;
    private ManagementServer server;

    @BeforeEach
    void start() {
        volumes = new InMemoryVolumeService();
        server = ManagementServer.start(new InetSocketAddress("127.0.0.1", 0), volumes);
    }

    @AfterEach
    void stop() {
        if (server != null) {
            server.close();
        }
    }

    private record Result(int code, String out, String err) {}

    private Result stowctl(String... args) {
        List<String> argv = new ArrayList<>(List.of("--endpoint", server.endpoint()));
        argv.addAll(List.of(args));
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = StowctlMain.run(argv, new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        Result r = new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
        assertEquals(0, r.code(), () -> "stowctl failed: " + r.err());
        assertEquals("", r.err());
        return r;
    }

    @Test
    void nodeListTableShowsRoleStateCapacityAndLabels() {
        volumes.otherNodeAlive = false;
        String[] lines = stowctl("node", "list").out().split("\n");
        assertEquals(3, lines.length, String.join("\n", lines));
        assertEquals(List.of("NODE", "ADDRESS", "ROLE", "STATE", "CAPACITY", "FREE", "LABELS"),
                List.of(lines[0].trim().split("\\s{3,}")));
        assertEquals(List.of("node-1", "127.0.0.2:7400", "storage", "alive", "100GiB", "100GiB", "rack=r7,zone=z1"),
                List.of(lines[1].trim().split("\\s{3,}")));
        assertEquals(List.of("node-2", "127.0.0.3:7499", "storage-less", "away", "-", "-", "zone=z2"),
                List.of(lines[2].trim().split("\\s{3,}")));
    }

    @Test
    @SuppressWarnings("unchecked")
    void nodeListJsonCarriesEveryField() {
        volumes.createVolume(new VolumeSpec("a", 10 * GIB, 0, Map.of(), new VolumeSpec.ContentSource.Empty()));
        List<Object> nodes = (List<Object>) MiniJson.parse(stowctl("-o", "json", "node", "list").out());
        assertEquals(2, nodes.size());
        Map<String, Object> first = (Map<String, Object>) nodes.get(0);
        assertEquals("node-1", first.get("nodeId"));
        assertEquals("127.0.0.2:7400", first.get("address"));
        assertEquals(Map.of("zone", "z1", "rack", "r7"), first.get("labels"));
        assertEquals(100 * GIB, first.get("capacityBytes"));
        assertEquals(90 * GIB, first.get("freeBytes"));
        assertEquals(false, first.get("storageless"));
        assertEquals(true, first.get("alive"));
        Map<String, Object> second = (Map<String, Object>) nodes.get(1);
        assertEquals(true, second.get("storageless"));
        assertEquals(true, second.get("alive"));
    }

    @Test
    @SuppressWarnings("unchecked")
    void clusterStatusCountsMembersAndSumsLiveStorage() {
        volumes.otherNodeAlive = false;
        Map<String, Object> s = (Map<String, Object>) MiniJson.parse(stowctl("cluster", "status", "-o", "json").out());
        assertEquals(true, s.get("ready"));
        assertEquals("node-1", ((Map<String, Object>) s.get("servingNode")).get("nodeId"));
        assertEquals(2, ((List<Object>) s.get("nodes")).size());
        assertEquals(1L, s.get("aliveNodes"));
        assertEquals(1L, s.get("storageNodes"));
        assertEquals(100 * GIB, s.get("capacityBytes"));
        assertEquals(0L, s.get("volumeCount"));

        String table = stowctl("cluster", "status").out();
        assertTrue(table.contains("2 (1 alive, 1 alive with storage)"), table);
        assertTrue(table.contains("100GiB (100GiB free)"), table);
        assertTrue(table.lines().anyMatch(l -> l.startsWith("node-2") && l.contains("away")), table);
    }
}
