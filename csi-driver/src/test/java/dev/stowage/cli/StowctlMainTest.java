package dev.stowage.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.stowage.engine.api.Volume;
import dev.stowage.engine.api.grpc.ManagementServer;
import dev.stowage.engine.api.grpc.RecordingFrontend;
import dev.stowage.engine.cluster.EmbeddedMetadataStore;
import dev.stowage.engine.storage.FileStoragePool;
import dev.stowage.engine.volume.LocalVolumeService;
import dev.stowage.engine.volume.VolumeServiceConfig;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Clock;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * stowctl end to end: {@link StowctlMain#run} against a real management server on 127.0.0.1 in front of a
 * real {@link LocalVolumeService} (file pool, embedded metadata, a frontend that records exports).
 */
class StowctlMainTest {
    private static final long GIB = 1L << 30;

    @TempDir
    Path dir;

    private final List<AutoCloseable> toClose = new ArrayList<>();
    private RecordingFrontend frontend;
    private LocalVolumeService volumes;
    private ManagementServer server;

    /** What one stowctl run printed and returned. */
    record Result(int code, String out, String err) {
        Object json() {
            return MiniJson.parse(out);
        }
    }

    @BeforeEach
    void start() throws Exception {
        FileStoragePool pool = FileStoragePool.open(dir.resolve("pool"));
        toClose.add(pool);
        EmbeddedMetadataStore metadata = EmbeddedMetadataStore.open(dir.resolve("metadata"));
        toClose.add(metadata);
        frontend = new RecordingFrontend();
        volumes = new LocalVolumeService(VolumeServiceConfig.defaults("node-a"), metadata, pool, frontend,
                Clock.systemUTC());
        toClose.add(volumes);
        volumes.start();
        server = ManagementServer.start(new InetSocketAddress("127.0.0.1", 0), volumes);
        toClose.add(server);
    }

    @AfterEach
    void stop() throws Exception {
        for (int i = toClose.size() - 1; i >= 0; i--) {
            toClose.get(i).close();
        }
    }

    private Result stowctl(String... args) {
        List<String> argv = new ArrayList<>(List.of("--endpoint", server.endpoint()));
        argv.addAll(List.of(args));
        return run(argv);
    }

    private static Result run(List<String> argv) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = StowctlMain.run(argv, new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    private static void ok(Result r) {
        assertEquals(0, r.code(), () -> "stowctl failed: " + r.err());
        assertEquals("", r.err());
    }

    @Test
    void aNodeWithATokenServesOnlyCallsThatCarryIt() throws Exception {
        java.nio.file.Path tokenFile = dir.resolve("api-token");
        java.nio.file.Files.writeString(tokenFile, "0123456789abcdef0123456789abcdef\n");
        java.nio.file.Path wrongFile = dir.resolve("wrong-token");
        java.nio.file.Files.writeString(wrongFile, "fedcba9876543210fedcba9876543210");
        try (ManagementServer guarded = ManagementServer.start(new InetSocketAddress("127.0.0.1", 0), volumes,
                java.util.Optional.of(dev.stowage.engine.api.grpc.ApiToken.read("--cluster-token-file", tokenFile)))) {
            Result without = run(List.of("--endpoint", guarded.endpoint(), "volume", "list"));
            assertEquals(1, without.code());
            assertTrue(without.err().startsWith("stowctl: UNAUTHENTICATED: ") && without.err().contains("--token-file"),
                    without.err());
            Result wrong = run(List.of("--endpoint", guarded.endpoint(), "--token-file", wrongFile.toString(),
                    "volume", "create", "x", "--size", "1GiB", "--repl", "1"));
            assertEquals(1, wrong.code());
            assertTrue(wrong.err().contains("wrong cluster token"), wrong.err());
            assertTrue(volumes.listVolumes(0, null).items().isEmpty(), "a refused call did nothing");

            ok(run(List.of("--endpoint", guarded.endpoint(), "--token-file", tokenFile.toString(),
                    "volume", "create", "x", "--size", "1GiB", "--repl", "1")));
            assertEquals(1, volumes.listVolumes(0, null).items().size());

            java.nio.file.Path shortFile = dir.resolve("short-token");
            java.nio.file.Files.writeString(shortFile, "secret");
            Result tooShort = run(List.of("--endpoint", guarded.endpoint(), "--token-file", shortFile.toString(),
                    "volume", "list"));
            assertEquals(2, tooShort.code());
            assertTrue(tooShort.err().contains("--token-file") && tooShort.err().contains("at least 32"), tooShort.err());
        }
    }

    @Test
    @SuppressWarnings("unchecked")
    void createListInspectResizeDelete() {
        Result created = stowctl("volume", "create", "db", "--size", "10GiB", "--repl", "1", "--fs", "xfs", "-o", "json");
        ok(created);
        Map<String, Object> v = (Map<String, Object>) created.json();
        String id = (String) v.get("id");
        assertTrue(id.startsWith("vol-"), id);
        assertEquals("db", v.get("name"));
        assertEquals(10 * GIB, v.get("sizeBytes"));
        assertEquals("xfs", v.get("fsType"));
        assertEquals(List.of(Map.of("nodeId", "node-a", "state", "HEALTHY", "progressPercent", 100L)), v.get("replicas"));
        assertEquals(10 * GIB, volumes.getVolume(id).orElseThrow().sizeBytes());

        ok(stowctl("volume", "create", "logs", "--size", "512MiB", "--repl", "1"));
        Result table = stowctl("volume", "list");
        ok(table);
        String[] lines = table.out().split("\n");
        assertEquals(3, lines.length, table.out());
        assertTrue(lines[0].startsWith("ID"), lines[0]);
        int nameColumn = lines[0].indexOf("NAME");
        for (String line : lines) {
            assertFalse(line.endsWith(" "), line);
        }
        assertTrue(table.out().contains("10GiB") && table.out().contains("512MiB"), table.out());
        assertTrue(lines[1].substring(nameColumn).startsWith("db ") || lines[1].substring(nameColumn).startsWith("logs "),
                table.out());

        List<Object> listed = (List<Object>) stowctl("-o", "json", "volume", "list").json();
        assertEquals(2, listed.size());

        Result inspectByName = stowctl("volume", "inspect", "db");
        ok(inspectByName);
        assertTrue(inspectByName.out().contains(id), inspectByName.out());
        assertTrue(inspectByName.out().contains("replica     node-a HEALTHY")
                || inspectByName.out().matches("(?s).*replica\\s+node-a HEALTHY.*"), inspectByName.out());
        Map<String, Object> byId = (Map<String, Object>) stowctl("volume", "inspect", id, "-o", "json").json();
        assertEquals(v.get("id"), byId.get("id"));

        Result resized = stowctl("volume", "resize", "db", "--size", "20GiB");
        ok(resized);
        assertTrue(resized.out().contains("20GiB"), resized.out());
        assertEquals(20 * GIB, volumes.getVolume(id).orElseThrow().sizeBytes());

        Result status = stowctl("cluster", "status", "-o", "json");
        ok(status);
        Map<String, Object> s = (Map<String, Object>) status.json();
        assertEquals(2L, s.get("volumeCount"));
        assertEquals(true, s.get("ready"));
        Result nodes = stowctl("node", "list");
        ok(nodes);
        assertTrue(nodes.out().contains("node-a"), nodes.out());

        ok(stowctl("volume", "delete", "db"));
        assertTrue(volumes.getVolume(id).isEmpty());
        Result again = stowctl("volume", "delete", "db");
        assertEquals(1, again.code());
        assertEquals("", again.out());
        assertEquals("stowctl: NOT_FOUND: no volume has the id or name 'db'\n", again.err());
    }

    @Test
    @SuppressWarnings("unchecked")
    void attachDetachAndSnapshots() {
        ok(stowctl("volume", "create", "web", "--size", "1G", "--repl", "1"));
        String id = volumes.listVolumes(0, "").items().get(0).id();
        Result attached = stowctl("volume", "attach", "web", "--node", "node-a");
        ok(attached);
        assertEquals("/dev/recorded-" + id + "\n", attached.out());
        assertTrue(frontend.exports().containsKey(id));

        Result busy = stowctl("volume", "delete", "web");
        assertEquals(1, busy.code());
        assertTrue(busy.err().startsWith("stowctl: FAILED_PRECONDITION: "), busy.err());
        assertEquals(1, busy.err().split("\n").length);

        ok(stowctl("volume", "detach", id));
        assertFalse(frontend.exports().containsKey(id));
        assertTrue(volumes.getVolume(id).orElseThrow().attachment().isEmpty());
        // --force is a switch (the take-over from a live node is tested on a real cluster in FencingTest)
        ok(stowctl("volume", "attach", "web", "--node", "node-a", "--force"));
        assertEquals("node-a", volumes.getVolume(id).orElseThrow().attachment().orElseThrow().nodeId());
        ok(stowctl("volume", "detach", id));

        Map<String, Object> snap = (Map<String, Object>) stowctl("snapshot", "create", "nightly", "--volume", "web",
                "-o", "json").json();
        assertEquals(id, snap.get("sourceVolumeId"));
        Result list = stowctl("snapshot", "list", "--volume", "web");
        ok(list);
        assertTrue(list.out().contains("nightly"), list.out());
        ok(stowctl("snapshot", "delete", "nightly"));
        assertEquals(List.of(), stowctl("snapshot", "list", "-o", "json").json());
        Volume gone = volumes.getVolume(id).orElseThrow();
        assertEquals("web", gone.name());
    }

    @Test
    void badInputIsOneLineWithTheRightExitCode() {
        Result badSize = stowctl("volume", "create", "x", "--size", "10XB", "--repl", "1");
        assertEquals(2, badSize.code());
        assertTrue(badSize.err().startsWith("stowctl: USAGE: --size '10XB' is not a size"), badSize.err());
        assertEquals(1, badSize.err().split("\n").length);

        Result tooMany = stowctl("volume", "create", "x", "--size", "1GiB", "--repl", "9");
        assertEquals(1, tooMany.code());
        assertTrue(tooMany.err().startsWith("stowctl: INVALID_ARGUMENT: parameters.repl"), tooMany.err());

        assertEquals(2, stowctl("volume", "frobnicate").code());
        assertEquals(2, stowctl("volume", "create", "x", "--size", "1GiB").code());
        assertEquals(2, stowctl("volume", "list", "--size", "1GiB").code());
        assertEquals(2, stowctl("-o", "yaml", "volume", "list").code());
        assertEquals(2, run(List.of()).code());
        Result help = run(List.of("help"));
        assertEquals(0, help.code());
        assertTrue(help.out().contains("volume create NAME"), help.out());
        assertEquals(2, run(List.of("--endpoint", "nohost", "volume", "list")).code());
    }

    @Test
    void anUnreachableEndpointIsUnavailable() throws Exception {
        int port;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1"))) {
            port = s.getLocalPort();
        }
        Result r = run(List.of("--endpoint", "127.0.0.1:" + port, "volume", "list"));
        assertEquals(1, r.code());
        assertTrue(r.err().startsWith("stowctl: UNAVAILABLE: management API at 127.0.0.1:" + port), r.err());
        assertEquals(1, r.err().split("\n").length, r.err());
    }
}
