package dev.stowage.test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import csi.v1.Csi;
import dev.stowage.engine.cluster.etcd.EtcdProcess;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Invariants 4 and 5 on real processes: a replica node that returns copies only what it missed
 * (read from the engine's own resync counter, which it logs), and a replica whose node stays away
 * past {@code --replica-replace-timeout} is rebuilt on another node while the volume stays in use.
 */
@Tag("root")
class ReplicaRepairTest {
    private static final long MIB = 1L << 20;
    private static final Pattern RESYNCED = Pattern.compile("replica on node (\\S+) resynced, (\\d+) bytes copied");

    private Path dir;
    private Path logs;
    private EtcdProcess etcd;
    private final Map<String, StowageNode> nodes = new LinkedHashMap<>();
    private final Map<String, Path> nodeLogs = new LinkedHashMap<>();

    @BeforeEach
    void startEtcd() throws Exception {
        dir = Files.createTempDirectory("stowage-repair-");
        logs = StowageNode.home().resolve("test/target/repair");
        etcd = EtcdProcess.start();
    }

    @AfterEach
    void stop() throws Exception {
        try {
            for (StowageNode n : nodes.values()) {
                n.close();
            }
        } finally {
            HostCleanup.cleanup(dir);
            etcd.close();
        }
    }

    private void startNode(String id, int replaceSeconds) throws Exception {
        String ip = "127.0.0." + (1 + Integer.parseInt(id.substring(1)));
        Path log = logs.resolve(id + "-" + System.nanoTime() + ".log");
        List<String> args = new ArrayList<>(List.of("--node-id", id, "--etcd", etcd.endpoint().toString(),
                "--listen", ip + ":0", "--zone", "zone-" + id, "--replica-replace-timeout", Integer.toString(replaceSeconds)));
        nodes.put(id, new StowageNode(dir.resolve(id).resolve("data"), dir.resolve(id).resolve("csi.sock"), log, args)
                .start(Duration.ofMinutes(3)));
        nodeLogs.put(id, log);
    }

    private static Csi.VolumeCapability block() {
        return Csi.VolumeCapability.newBuilder()
                .setBlock(Csi.VolumeCapability.BlockVolume.getDefaultInstance())
                .setAccessMode(Csi.VolumeCapability.AccessMode.newBuilder()
                        .setMode(Csi.VolumeCapability.AccessMode.Mode.SINGLE_NODE_WRITER))
                .build();
    }

    private Csi.Volume create(String via, int repl, long bytes) {
        try (CsiClient c = new CsiClient(nodes.get(via).socket())) {
            return c.controller().createVolume(Csi.CreateVolumeRequest.newBuilder().setName("v").addVolumeCapabilities(block())
                    .putParameters("repl", Integer.toString(repl))
                    .setCapacityRange(Csi.CapacityRange.newBuilder().setRequiredBytes(bytes)).build()).getVolume();
        }
    }

    private static Set<String> replicaNodes(Csi.Volume v) {
        Set<String> s = new TreeSet<>();
        v.getAccessibleTopologyList().forEach(t -> s.add(t.getSegmentsMap().get("topology.stowage.dev/node")));
        return s;
    }

    private Path attach(String node, String volumeId) throws Exception {
        Path staging = dir.resolve(node).resolve("staging");
        Path target = dir.resolve(node).resolve("publish").resolve("dev");
        try (CsiClient c = new CsiClient(nodes.get(node).socket())) {
            Instant deadline = Instant.now().plusSeconds(30);
            while (true) {
                try {
                    c.controller().controllerPublishVolume(Csi.ControllerPublishVolumeRequest.newBuilder()
                            .setVolumeId(volumeId).setNodeId(node).setVolumeCapability(block()).build());
                    break;
                } catch (StatusRuntimeException e) {
                    if (e.getStatus().getCode() != Status.Code.FAILED_PRECONDITION || Instant.now().isAfter(deadline)) {
                        throw e;
                    }
                    Thread.sleep(100);
                }
            }
            c.node().nodeStageVolume(Csi.NodeStageVolumeRequest.newBuilder().setVolumeId(volumeId)
                    .setStagingTargetPath(staging.toString()).setVolumeCapability(block()).build());
            c.node().nodePublishVolume(Csi.NodePublishVolumeRequest.newBuilder().setVolumeId(volumeId)
                    .setStagingTargetPath(staging.toString()).setTargetPath(target.toString())
                    .setVolumeCapability(block()).build());
        }
        return target;
    }

    private void detach(String node, String volumeId) {
        try (CsiClient c = new CsiClient(nodes.get(node).socket())) {
            c.node().nodeUnpublishVolume(Csi.NodeUnpublishVolumeRequest.newBuilder().setVolumeId(volumeId)
                    .setTargetPath(dir.resolve(node).resolve("publish").resolve("dev").toString()).build());
            c.node().nodeUnstageVolume(Csi.NodeUnstageVolumeRequest.newBuilder().setVolumeId(volumeId)
                    .setStagingTargetPath(dir.resolve(node).resolve("staging").toString()).build());
            c.controller().controllerUnpublishVolume(Csi.ControllerUnpublishVolumeRequest.newBuilder()
                    .setVolumeId(volumeId).setNodeId(node).build());
        }
    }

    private Csi.VolumeCondition condition(String via, String volumeId) {
        try (CsiClient c = new CsiClient(nodes.get(via).socket())) {
            return c.controller().controllerGetVolume(Csi.ControllerGetVolumeRequest.newBuilder().setVolumeId(volumeId)
                    .build()).getStatus().getVolumeCondition();
        }
    }

    private Csi.Volume volume(String via, String volumeId) {
        try (CsiClient c = new CsiClient(nodes.get(via).socket())) {
            return c.controller().controllerGetVolume(Csi.ControllerGetVolumeRequest.newBuilder().setVolumeId(volumeId)
                    .build()).getVolume();
        }
    }

    private static byte[] pattern(int length, long seed) {
        byte[] b = new byte[length];
        new Random(seed).nextBytes(b);
        return b;
    }

    private static void write(Path device, long offset, byte[] data) throws Exception {
        try (FileChannel ch = FileChannel.open(device, StandardOpenOption.WRITE)) {
            ByteBuffer b = ByteBuffer.wrap(data);
            while (b.hasRemaining()) {
                ch.write(b, offset + b.position());
            }
            ch.force(false);
        }
    }

    private static byte[] read(Path device, long offset, int length) throws Exception {
        try (FileChannel ch = FileChannel.open(device, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate(length);
            while (b.hasRemaining() && ch.read(b, offset + b.position()) > 0) {
                // keep reading
            }
            return b.array();
        }
    }

    private void awaitHealthy(String via, String volumeId, Duration timeout) throws Exception {
        Instant deadline = Instant.now().plus(timeout);
        while (condition(via, volumeId).getAbnormal()) {
            assertTrue(Instant.now().isBefore(deadline), "volume still abnormal: " + condition(via, volumeId).getMessage());
            Thread.sleep(200);
        }
    }

    @Test
    void aReturningReplicaCopiesOnlyWhatItMissed() throws Exception {
        for (String id : List.of("n1", "n2", "n3")) {
            startNode(id, 600);
        }
        Csi.Volume v = create("n1", 3, 256 * MIB);
        Path device = attach("n1", v.getVolumeId());
        byte[] base = pattern((int) (32 * MIB), 1);
        write(device, 0, base);

        nodes.get("n3").kill9();
        // Written while n3 is away: 3 MiB in three separate regions, plus 4 KiB in a fourth.
        long away = 0;
        for (int i = 0; i < 3; i++) {
            byte[] d = pattern((int) MIB, 10 + i);
            write(device, (64 + 8L * i) * MIB, d);
            away += d.length;
        }
        write(device, 100 * MIB + 4096, pattern(4096, 20));
        away += 4096;
        assertTrue(condition("n1", v.getVolumeId()).getAbnormal(), "n3 must be STALE while it is away");

        startNode("n3", 600);
        awaitHealthy("n1", v.getVolumeId(), Duration.ofSeconds(60));
        long copied = resyncedBytes("n1", "n3");
        System.out.printf("delta resync: %d bytes written while away, %d bytes copied%n", away, copied);
        assertTrue(copied > 0, "nothing was copied");
        // At most 1.2x what was written while away, plus rounding to the 1 MiB tracking region (4 regions touched).
        assertTrue(copied <= 1.2 * away + 4 * MIB, "copied " + copied + " bytes for " + away + " written");
        assertTrue(copied < base.length, "a whole-volume copy is not a delta");

        // The returned replica holds the data: make it the only one that can serve reads.
        detach("n1", v.getVolumeId());
        nodes.get("n1").kill9();
        nodes.get("n2").kill9();
        nodes.remove("n1").close();
        nodes.remove("n2").close();
        Path onN3 = attach("n3", v.getVolumeId());
        assertArrayEquals(base, read(onN3, 0, base.length));
        for (int i = 0; i < 3; i++) {
            assertArrayEquals(pattern((int) MIB, 10 + i), read(onN3, (64 + 8L * i) * MIB, (int) MIB));
        }
    }

    @Test
    void aReplicaAwayPastTheTimeoutIsRebuiltOnAnotherNode() throws Exception {
        for (String id : List.of("n1", "n2", "n3", "n4")) {
            startNode(id, 4);
        }
        Csi.Volume v = create("n1", 3, 128 * MIB);
        Set<String> before = replicaNodes(v);
        String coordinatorNode = before.iterator().next();
        String lost = before.stream().filter(n -> !n.equals(coordinatorNode)).findFirst().orElseThrow();
        Path device = attach(coordinatorNode, v.getVolumeId());
        byte[] data = pattern((int) (8 * MIB), 3);
        write(device, 16 * MIB, data);

        nodes.get(lost).kill9();
        nodes.remove(lost).close();
        Instant deadline = Instant.now().plusSeconds(90);
        Set<String> after;
        do {
            Thread.sleep(250);
            after = replicaNodes(volume(coordinatorNode, v.getVolumeId()));
            assertTrue(Instant.now().isBefore(deadline), "the replica on " + lost + " was not replaced: " + after);
        } while (after.contains(lost) || condition(coordinatorNode, v.getVolumeId()).getAbnormal());
        assertEquals(3, after.size());
        assertFalse(after.contains(lost));
        String fresh = after.stream().filter(n -> !before.contains(n)).findFirst().orElseThrow();

        // The new replica alone must hold the data: stop every other one and read it there.
        detach(coordinatorNode, v.getVolumeId());
        for (String n : after) {
            if (!n.equals(fresh)) {
                nodes.remove(n).kill9();
            }
        }
        Path onFresh = attach(fresh, v.getVolumeId());
        assertArrayEquals(data, read(onFresh, 16 * MIB, data.length));
    }

    /** Bytes the coordinator on {@code node} reports it copied to resync {@code target}, from its log. */
    private long resyncedBytes(String node, String target) throws Exception {
        long total = 0;
        Matcher m = RESYNCED.matcher(Files.readString(nodeLogs.get(node)));
        while (m.find()) {
            if (m.group(1).equals(target)) {
                total += Long.parseLong(m.group(2));
            }
        }
        return total;
    }
}
