package dev.stowage.engine.api.grpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.stowage.engine.api.ClusterNode;
import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.Page;
import dev.stowage.engine.api.Snapshot;
import dev.stowage.engine.api.StowageException;
import dev.stowage.engine.api.Volume;
import dev.stowage.engine.api.VolumeService;
import dev.stowage.engine.api.VolumeSpec;
import dev.stowage.engine.cluster.EmbeddedMetadataStore;
import dev.stowage.engine.storage.FileStoragePool;
import dev.stowage.engine.volume.LocalVolumeService;
import dev.stowage.engine.api.ReplicaCopy;
import dev.stowage.engine.api.ErrorCode;
import dev.stowage.proto.management.CloneTarget;
import dev.stowage.proto.management.CopyReplicasHeldRequest;
import dev.stowage.engine.volume.VolumeServiceConfig;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The management API end to end: a real {@link LocalVolumeService} (file pool, embedded metadata) behind a
 * real {@link ManagementServer} on 127.0.0.1, called through {@link RemoteVolumeService}. Every answer and
 * every error is compared with what the local service says, so remote and local cannot be told apart.
 */
class ManagementServiceTest {
    private static final long GIB = 1L << 30;
    private static final String NODE = "node-a";

    @TempDir
    Path dir;

    private final List<AutoCloseable> toClose = new ArrayList<>();
    private RecordingFrontend frontend;
    private LocalVolumeService local;
    private ManagementServer server;
    private RemoteVolumeService remote;

    @BeforeEach
    void start() throws Exception {
        FileStoragePool pool = FileStoragePool.open(dir.resolve("pool"));
        toClose.add(pool);
        EmbeddedMetadataStore metadata = EmbeddedMetadataStore.open(dir.resolve("metadata"));
        toClose.add(metadata);
        frontend = new RecordingFrontend();
        local = new LocalVolumeService(VolumeServiceConfig.defaults(NODE), metadata, pool, frontend, Clock.systemUTC());
        toClose.add(local);
        local.start();
        server = ManagementServer.start(new InetSocketAddress("127.0.0.1", 0), local);
        toClose.add(server);
        remote = RemoteVolumeService.connect(server.endpoint(), Duration.ofSeconds(30));
        toClose.add(remote);
    }

    @AfterEach
    void stop() throws Exception {
        for (int i = toClose.size() - 1; i >= 0; i--) {
            toClose.get(i).close();
        }
    }

    private static VolumeSpec spec(String name, long bytes, Map<String, String> parameters) {
        return new VolumeSpec(name, bytes, 0, parameters, new VolumeSpec.ContentSource.Empty());
    }

    @Test
    void createGetListAndExpandAnswerAsTheLocalServiceDoes() {
        Volume created = remote.createVolume(spec("db", GIB, Map.of("repl", "1", "fsType", "xfs")));
        assertTrue(created.id().startsWith("vol-"), created.id());
        assertEquals("db", created.name());
        assertEquals(GIB, created.sizeBytes());
        assertEquals("xfs", created.fsType());
        assertEquals(List.of(new Volume.Replica(NODE, Volume.ReplicaState.HEALTHY)), created.replicas());
        assertEquals(local.getVolume(created.id()), Optional.of(created));
        assertEquals(local.getVolume(created.id()), remote.getVolume(created.id()));
        // Idempotent create returns the same volume.
        assertEquals(created, remote.createVolume(spec("db", GIB, Map.of("repl", "1", "fsType", "xfs"))));

        remote.createVolume(spec("logs", GIB, Map.of()));
        remote.createVolume(spec("cache", GIB, Map.of()));
        Page<Volume> first = remote.listVolumes(2, "");
        assertEquals(2, first.items().size());
        assertFalse(first.nextToken().isEmpty());
        Page<Volume> rest = remote.listVolumes(2, first.nextToken());
        assertEquals(1, rest.items().size());
        assertEquals("", rest.nextToken());
        assertEquals(local.listVolumes(0, null), remote.listVolumes(0, null));

        assertEquals(2 * GIB, remote.expandVolume(created.id(), 2 * GIB, 0));
        assertEquals(2 * GIB, local.getVolume(created.id()).orElseThrow().sizeBytes());
        assertEquals(Optional.empty(), remote.getVolume("vol-00000000-0000-0000-0000-000000000000"));

        Volume modified = remote.modifyVolume(created.id(), Map.of("maxIops", "500"));
        assertEquals(local.getVolume(created.id()).orElseThrow(), modified);

        RemoteVolumeService.ClusterStatus status = remote.clusterStatus();
        assertTrue(status.ready());
        assertEquals(List.of(local.localNode()), status.nodes());
        assertEquals(3, status.volumeCount());
        assertEquals(local.clusterNodes(), status.members());
        assertEquals(local.clusterNodes(), remote.clusterNodes());
        assertEquals(List.of(NODE), remote.clusterNodes().stream().map(ClusterNode::id).toList());
        ClusterNode self = remote.clusterNodes().get(0);
        assertTrue(self.alive() && !self.storageless() && self.capacityBytes() > 0, self.toString());
        assertEquals("", self.address(), "a single host has no replica server");
        assertEquals(local.localNode(), remote.localNode());
        assertEquals(local.supportedParameters(), remote.supportedParameters());
        assertTrue(remote.ready());
        assertTrue(remote.nodeExists(NODE));
        assertFalse(remote.nodeExists("node-b"));
        assertEquals(local.capacity(Map.of("zone", "elsewhere")), remote.capacity(Map.of("zone", "elsewhere")));
        assertTrue(remote.capacity(Map.of()).availableBytes() > 0);
    }

    @Test
    void errorsKeepTheirCodeFieldAndMessage() {
        Volume v = remote.createVolume(spec("v", GIB, Map.of()));
        String missing = "vol-00000000-0000-0000-0000-000000000000";
        List<Consumer<VolumeService>> calls = List.of(
                s -> s.createVolume(spec("", GIB, Map.of())),
                s -> s.createVolume(spec("x", GIB, Map.of("repl", "many"))),
                s -> s.createVolume(spec("x", GIB, Map.of("colour", "blue"))),
                s -> s.createVolume(spec("x", -1, Map.of())),
                s -> s.createVolume(spec("x", GIB, Map.of("repl", "2"))),
                s -> s.createVolume(spec("v", 2 * GIB, Map.of())),
                s -> s.expandVolume(v.id(), 0, 0),
                s -> s.expandVolume(v.id(), 1L << 62, 0),
                s -> s.expandVolume(missing, GIB, 0),
                s -> s.modifyVolume(v.id(), Map.of("repl", "2")),
                s -> s.listVolumes(-1, ""),
                s -> s.listVolumes(1, "not-a-token"),
                s -> s.publish(v.id(), "node-b", false),
                s -> s.publish("", NODE, false),
                s -> s.createSnapshot("s", missing),
                s -> s.attachDevice(missing),
                // A held copy asked of the wrong node, or of a volume not attached here.
                s -> s.copyReplicasHeld("node-b", v.id(), List.of(NODE), new ReplicaCopy.Snapshot("snap-x")),
                s -> s.copyReplicasHeld(NODE, v.id(), List.of(NODE), new ReplicaCopy.Snapshot("snap-x")),
                s -> s.copyReplicasHeld(NODE, v.id(), List.of(), new ReplicaCopy.Clone("vol-x", GIB)),
                s -> s.copyReplicasHeld(NODE, "", List.of(NODE), new ReplicaCopy.Snapshot("snap-x")));
        for (int i = 0; i < calls.size(); i++) {
            Consumer<VolumeService> call = calls.get(i);
            StowageException expected = assertThrows(StowageException.class, () -> call.accept(local), "call " + i);
            StowageException actual = assertThrows(StowageException.class, () -> call.accept(remote));
            assertEquals(expected.code(), actual.code(), expected.getMessage());
            assertEquals(expected.field(), actual.field(), expected.getMessage());
            String want = expected.field() == null || expected.getMessage().contains(expected.field())
                    ? expected.getMessage() : expected.field() + ": " + expected.getMessage();
            assertEquals(want, actual.getMessage());
        }
    }

    @Test
    void aHeldCopyRequestNamingNoCopyIsRefusedNamingTheField() {
        for (CopyReplicasHeldRequest bad : List.of(
                CopyReplicasHeldRequest.newBuilder().setCoordinatorNodeId(NODE).build(),
                CopyReplicasHeldRequest.newBuilder().setSnapshotId("").build(),
                CopyReplicasHeldRequest.newBuilder().setClone(CloneTarget.newBuilder().setVolumeId("vol-x")).build())) {
            StowageException e = assertThrows(StowageException.class, () -> ManagementProtos.toCopy(bad));
            assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
            assertTrue(e.getMessage().startsWith(e.field() + ":"), e.getMessage());
        }
        ReplicaCopy clone = new ReplicaCopy.Clone("vol-x", GIB);
        assertEquals(clone, ManagementProtos.toCopy(ManagementProtos.toRequest(NODE, "vol-y", List.of(NODE), clone)));
    }

    @Test
    void snapshotsRoundTrip() {
        Volume v = remote.createVolume(spec("v", GIB, Map.of()));
        Snapshot s = remote.createSnapshot("nightly", v.id());
        assertEquals("nightly", s.name());
        assertEquals(v.id(), s.sourceVolumeId());
        assertTrue(s.readyToUse());
        assertEquals(Optional.of(s), remote.getSnapshot(s.id()));
        assertEquals(local.getSnapshot(s.id()), remote.getSnapshot(s.id()));
        assertEquals(List.of(s), remote.listSnapshots(v.id(), null, 0, null).items());
        assertEquals(List.of(s), remote.listSnapshots(null, s.id(), 0, "").items());
        assertEquals(1, remote.clusterStatus().snapshotCount());
        StowageException inUse = assertThrows(StowageException.class,
                () -> remote.createSnapshot("nightly", remote.createVolume(spec("w", GIB, Map.of())).id()));
        assertEquals(ErrorCode.ALREADY_EXISTS, inUse.code());
        assertEquals("name", inUse.field());

        Volume restored = remote.createVolume(new VolumeSpec("restored", 0, 0, Map.of(), Map.of(),
                new VolumeSpec.ContentSource.FromSnapshot(s.id())));
        assertEquals(new VolumeSpec.ContentSource.FromSnapshot(s.id()), restored.contentSource());

        remote.deleteSnapshot(s.id());
        remote.deleteSnapshot(s.id());
        assertEquals(Optional.empty(), remote.getSnapshot(s.id()));
    }

    @Test
    void publishAttachDetachUnpublish() {
        Volume v = remote.createVolume(spec("v", GIB, Map.of()));
        Volume published = remote.publish(v.id(), NODE, false);
        assertEquals(Optional.of(new Volume.Attachment(NODE, false, Optional.empty())), published.attachment());

        Path device = remote.attachDevice(v.id());
        assertEquals(Path.of("/dev/recorded-" + v.id()), device);
        assertEquals(device, remote.attachDevice(v.id()));
        assertTrue(frontend.exports().containsKey(v.id()));
        Volume attached = remote.getVolume(v.id()).orElseThrow();
        assertEquals(Optional.of(device.toString()), attached.attachment().orElseThrow().devicePath());
        assertEquals(1, attached.epoch());

        StowageException busy = assertThrows(StowageException.class, () -> remote.deleteVolume(v.id()));
        assertEquals(ErrorCode.FAILED_PRECONDITION, busy.code());
        StowageException elsewhere = assertThrows(StowageException.class, () -> remote.publish(v.id(), "node-b", false));
        assertEquals(ErrorCode.NOT_FOUND, elsewhere.code());

        remote.detachDevice(v.id());
        assertFalse(frontend.exports().containsKey(v.id()));
        remote.unpublish(v.id(), NODE);
        assertEquals(Optional.empty(), remote.getVolume(v.id()).orElseThrow().attachment());
        remote.deleteVolume(v.id());
        remote.deleteVolume(v.id());
        assertEquals(Optional.empty(), local.getVolume(v.id()));
    }

    @Test
    void anUnexpectedFailureIsInternalWithoutJavaDetails() {
        VolumeService failing = (VolumeService) Proxy.newProxyInstance(VolumeService.class.getClassLoader(),
                new Class<?>[] {VolumeService.class}, (proxy, method, args) -> {
                    if (method.getName().equals("listVolumes")) {
                        throw new IllegalStateException("secret internals at com.example.Foo");
                    }
                    try {
                        return method.invoke(local, args);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
                });
        try (ManagementServer second = ManagementServer.start(new InetSocketAddress("127.0.0.1", 0), failing);
             RemoteVolumeService client = RemoteVolumeService.connect(second.endpoint())) {
            StowageException e = assertThrows(StowageException.class, () -> client.listVolumes(0, ""));
            assertEquals(ErrorCode.INTERNAL, e.code());
            assertNull(e.field());
            assertFalse(e.getMessage().contains("IllegalStateException"), e.getMessage());
            assertFalse(e.getMessage().contains("secret"), e.getMessage());
            assertTrue(e.getMessage().contains("ListVolumes"), e.getMessage());
            assertEquals(NODE, client.localNode().nodeId());
        }
    }

    @Test
    void anUnreachableNodeIsUnavailableAndNamesTheEndpoint() throws Exception {
        int port;
        try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getByName("127.0.0.1"))) {
            port = s.getLocalPort();
        }
        try (RemoteVolumeService client = RemoteVolumeService.connect("127.0.0.1:" + port, Duration.ofSeconds(10))) {
            assertFalse(client.ready());
            StowageException e = assertThrows(StowageException.class, () -> client.getVolume("vol-x"));
            assertEquals(ErrorCode.UNAVAILABLE, e.code());
            assertTrue(e.getMessage().contains("127.0.0.1:" + port), e.getMessage());
            assertNotNull(e.getCause());
        }
    }

    @Test
    void malformedEndpointsAreRefusedNamingTheField() {
        for (String bad : List.of("localhost", ":7420", "host:", "host:http", "host:70000", "[::1]")) {
            StowageException e = assertThrows(StowageException.class, () -> RemoteVolumeService.connect(bad));
            assertEquals(ErrorCode.INVALID_ARGUMENT, e.code(), bad);
            assertEquals("endpoint", e.field());
        }
    }

    @Test
    void aSecondServerCannotTakeABoundPort() {
        java.io.UncheckedIOException e = assertThrows(java.io.UncheckedIOException.class,
                () -> ManagementServer.start(server.address(), local).close());
        assertTrue(e.getMessage().contains(server.endpoint()), e.getMessage());
    }
}
