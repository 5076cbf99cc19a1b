package dev.stowage.test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import csi.v1.Csi;
import dev.stowage.test.TestCluster.NodeSpec;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.Instant;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
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

    private static NodeSpec storage(String id, int replaceSeconds) {
        String ip = "127.0.0." + (1 + Integer.parseInt(id.substring(1)));
        return NodeSpec.storage(id, ip, "zone-" + id, null)
                .with("--replica-replace-timeout", Integer.toString(replaceSeconds));
    }

    private static Csi.ControllerGetVolumeResponse get(TestCluster cluster, String via, String volumeId) {
        try (CsiClient c = cluster.csi(via)) {
            return c.controller().controllerGetVolume(Csi.ControllerGetVolumeRequest.newBuilder()
                    .setVolumeId(volumeId).build());
        }
    }

    private static Set<String> replicaNodes(Csi.Volume v) {
        Set<String> s = new TreeSet<>();
        v.getAccessibleTopologyList().forEach(t -> s.add(t.getSegmentsMap().get("topology.stowage.dev/node")));
        return s;
    }

    /** Detaches on {@code node} entirely, controller publication included. */
    private static void detach(TestCluster cluster, String node, String volumeId, Path target) {
        cluster.unstage(node, volumeId, target);
        try (CsiClient c = cluster.csi(node)) {
            c.controller().controllerUnpublishVolume(Csi.ControllerUnpublishVolumeRequest.newBuilder()
                    .setVolumeId(volumeId).setNodeId(node).build());
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
                continue;
            }
            return b.array();
        }
    }

    private static void awaitHealthy(TestCluster cluster, String via, String volumeId, Duration timeout) throws Exception {
        Instant deadline = Instant.now().plus(timeout);
        Csi.VolumeCondition c;
        while ((c = get(cluster, via, volumeId).getStatus().getVolumeCondition()).getAbnormal()) {
            assertTrue(Instant.now().isBefore(deadline), "volume still abnormal: " + c.getMessage());
            Thread.sleep(200);
        }
    }

    @Test
    void aReturningReplicaCopiesOnlyWhatItMissed() throws Exception {
        try (TestCluster cluster = TestCluster.start("repair-resync")) {
            cluster.startNodes(storage("n1", 600), storage("n2", 600), storage("n3", 600));
            String volumeId = cluster.createBlockVolume("n1", "v", 3, 256 * MIB);
            Path device = cluster.attach("n1", volumeId, TestCluster.block(), Duration.ofSeconds(30));
            byte[] base = pattern((int) (32 * MIB), 1);
            write(device, 0, base);

            cluster.kill("n3");
            // Written while n3 is away: 1 MiB in each of three regions, plus 4 KiB in a fourth.
            long away = 0;
            for (int i = 0; i < 3; i++) {
                byte[] d = pattern((int) MIB, 10 + i);
                write(device, (64 + 8L * i) * MIB, d);
                away += d.length;
            }
            write(device, 100 * MIB + 4096, pattern(4096, 20));
            away += 4096;
            assertTrue(get(cluster, "n1", volumeId).getStatus().getVolumeCondition().getAbnormal(),
                    "n3 must be STALE while it is away");

            cluster.restart("n3");
            awaitHealthy(cluster, "n1", volumeId, Duration.ofSeconds(60));
            long copied = resyncedBytes(cluster.log("n1"), "n3");
            System.out.printf("delta resync: %d bytes written while away, %d bytes copied%n", away, copied);
            assertTrue(copied > 0, "nothing was copied");
            // At most 1.2x what was written while away, plus rounding to the 1 MiB tracking region (4 touched).
            assertTrue(copied <= 1.2 * away + 4 * MIB, "copied " + copied + " bytes for " + away + " written");
            assertTrue(copied < base.length, "a whole-volume copy is not a delta");

            // The returned replica alone must now hold everything.
            detach(cluster, "n1", volumeId, device);
            cluster.kill("n1");
            cluster.kill("n2");
            Path onN3 = cluster.attach("n3", volumeId, TestCluster.block(), Duration.ofSeconds(30));
            assertArrayEquals(base, read(onN3, 0, base.length));
            for (int i = 0; i < 3; i++) {
                assertArrayEquals(pattern((int) MIB, 10 + i), read(onN3, (64 + 8L * i) * MIB, (int) MIB));
            }
        }
    }

    /**
     * Writes that land while a resync copies regions must reach the returning replica: a region
     * copied after the write carries it from the source, one copied before gets it directly, and a
     * copy never overwrites a newer write (the coordinator locks the region it copies). The copy
     * is slowed by a bandwidth cap so that the writes overlap it; the test checks that they did.
     */
    @Test
    void writesDuringAResyncReachTheReturningReplica() throws Exception {
        try (TestCluster cluster = TestCluster.start("repair-concurrent")) {
            int span = (int) (64 * MIB);
            cluster.startNodes(storage("n1", 600).with("--rebuild-bandwidth", Long.toString(4 * MIB)),
                    storage("n2", 600), storage("n3", 600));
            String volumeId = cluster.createBlockVolume("n1", "v", 3, 128 * MIB);
            Path device = cluster.attach("n1", volumeId, TestCluster.block(), Duration.ofSeconds(30));
            byte[] model = pattern(span, 1);
            write(device, 0, model);

            cluster.kill("n3");
            byte[] away = pattern((int) (40 * MIB), 2); // 40 regions to copy: about 10 s at 4 MiB/s
            write(device, 0, away);
            System.arraycopy(away, 0, model, 0, away.length);

            cluster.restart("n3");
            Path log = cluster.log("n1");
            awaitResyncStarted(log, "n3");
            Random random = new Random(3);
            int writesDuringCopy = 0;
            try (FileChannel ch = FileChannel.open(device, StandardOpenOption.WRITE)) {
                for (int i = 0; i < 400 && !Files.readString(log).contains("replica on node n3 resynced"); i++) {
                    // 4 KiB or 256 KiB, anywhere in the first 64 MiB: regions already copied, being copied and not yet
                    int length = random.nextBoolean() ? 4096 : 256 * 1024;
                    long offset = (long) random.nextInt((span - length) / 4096) * 4096;
                    byte[] data = pattern(length, 100 + i);
                    ByteBuffer b = ByteBuffer.wrap(data);
                    while (b.hasRemaining()) {
                        ch.write(b, offset + b.position());
                    }
                    ch.force(false);
                    System.arraycopy(data, 0, model, (int) offset, length);
                    writesDuringCopy++;
                    Thread.sleep(10);
                }
            }
            assertFalse(Files.readString(log).contains("replica on node n3 resynced")
                    && writesDuringCopy < 20, "the writes did not overlap the copy (" + writesDuringCopy + ")");
            awaitHealthy(cluster, "n1", volumeId, Duration.ofSeconds(90));
            System.out.printf("concurrent resync: %d writes landed while n3 was being resynced%n", writesDuringCopy);

            // The returned replica alone must hold every write: the ones it missed and the ones during the copy.
            detach(cluster, "n1", volumeId, device);
            cluster.kill("n1");
            cluster.kill("n2");
            Path onN3 = cluster.attach("n3", volumeId, TestCluster.block(), Duration.ofSeconds(30));
            byte[] got = read(onN3, 0, span);
            for (int mib = 0; mib < span / MIB; mib++) {
                int from = (int) (mib * MIB);
                assertArrayEquals(java.util.Arrays.copyOfRange(model, from, (int) (from + MIB)),
                        java.util.Arrays.copyOfRange(got, from, (int) (from + MIB)), "MiB " + mib + " on n3");
            }
        }
    }

    /**
     * A snapshot taken while a replica is still being resynced holds only the healthy replicas: a
     * volume restored from it must never get a replica made from the stale one.
     */
    @Test
    void aSnapshotDuringAResyncLeavesTheStaleReplicaOut() throws Exception {
        try (TestCluster cluster = TestCluster.start("repair-snapshot")) {
            cluster.startNodes(storage("n1", 600).with("--rebuild-bandwidth", Long.toString(MIB)),
                    storage("n2", 600), storage("n3", 600));
            String volumeId = cluster.createBlockVolume("n1", "v", 3, 64 * MIB);
            Path device = cluster.attach("n1", volumeId, TestCluster.block(), Duration.ofSeconds(30));
            write(device, 0, pattern((int) (8 * MIB), 1));
            cluster.kill("n3");
            byte[] missed = pattern((int) (8 * MIB), 2); // n3 misses 8 regions: 8 s to copy at 1 MiB/s
            write(device, 0, missed);
            cluster.restart("n3");
            Path log = cluster.log("n1");
            awaitResyncStarted(log, "n3");
            String snapshotId;
            try (CsiClient c = cluster.csi("n1")) {
                snapshotId = c.controller().createSnapshot(Csi.CreateSnapshotRequest.newBuilder().setName("mid-resync")
                        .setSourceVolumeId(volumeId).build()).getSnapshot().getSnapshotId();
            }
            assertFalse(Files.readString(log).contains("replica on node n3 resynced"),
                    "the snapshot must be taken while n3 is still being resynced");

            io.grpc.StatusRuntimeException three = org.junit.jupiter.api.Assertions.assertThrows(
                    io.grpc.StatusRuntimeException.class, () -> restore(cluster, "three", snapshotId, 3));
            assertEquals(io.grpc.Status.Code.INVALID_ARGUMENT, three.getStatus().getCode(),
                    three.getStatus().getDescription());
            String restored = restore(cluster, "two", snapshotId, 2);
            for (String node : replicaNodes(get(cluster, "n1", restored).getVolume())) {
                assertFalse(node.equals("n3"), "a replica of the restored volume was made from n3's stale copy");
            }
            detach(cluster, "n1", volumeId, device);
            Path onN2 = cluster.attach("n2", restored, TestCluster.block(), Duration.ofSeconds(30));
            assertArrayEquals(missed, read(onN2, 0, missed.length));
        }
    }

    /** Waits (at most a minute) until {@code log} says a resync of {@code node} started. */
    private static void awaitResyncStarted(Path log, String node) throws Exception {
        Instant deadline = Instant.now().plusSeconds(60);
        while (!Files.readString(log).contains("resync of node " + node + " from node")) {
            assertTrue(Instant.now().isBefore(deadline), "no resync of " + node + " started");
            Thread.sleep(50);
        }
    }

    private static String restore(TestCluster cluster, String name, String snapshotId, int repl) {
        try (CsiClient c = cluster.csi("n1")) {
            return c.controller().createVolume(Csi.CreateVolumeRequest.newBuilder().setName(name)
                    .addVolumeCapabilities(TestCluster.block()).putParameters("repl", Integer.toString(repl))
                    .setCapacityRange(Csi.CapacityRange.newBuilder().setRequiredBytes(64 * MIB))
                    .setVolumeContentSource(Csi.VolumeContentSource.newBuilder().setSnapshot(
                            Csi.VolumeContentSource.SnapshotSource.newBuilder().setSnapshotId(snapshotId)))
                    .build()).getVolume().getVolumeId();
        }
    }

    @Test
    void aReplicaAwayPastTheTimeoutIsRebuiltOnAnotherNode() throws Exception {
        try (TestCluster cluster = TestCluster.start("repair-replace")) {
            cluster.startNodes(storage("n1", 4), storage("n2", 4), storage("n3", 4), storage("n4", 4));
            String volumeId = cluster.createBlockVolume("n1", "v", 3, 128 * MIB);
            Set<String> before = replicaNodes(get(cluster, "n1", volumeId).getVolume());
            String coordinatorNode = before.iterator().next();
            String lost = before.stream().filter(n -> !n.equals(coordinatorNode)).findFirst().orElseThrow();
            Path device = cluster.attach(coordinatorNode, volumeId, TestCluster.block(), Duration.ofSeconds(30));
            byte[] data = pattern((int) (8 * MIB), 3);
            write(device, 16 * MIB, data);

            cluster.kill(lost);
            Instant deadline = Instant.now().plusSeconds(90);
            Set<String> after;
            do {
                Thread.sleep(250);
                after = replicaNodes(get(cluster, coordinatorNode, volumeId).getVolume());
                assertTrue(Instant.now().isBefore(deadline), "the replica on " + lost + " was not replaced: " + after);
            } while (after.contains(lost) || get(cluster, coordinatorNode, volumeId).getStatus().getVolumeCondition()
                    .getAbnormal());
            assertEquals(3, after.size());
            assertFalse(after.contains(lost));
            String fresh = after.stream().filter(n -> !before.contains(n)).findFirst().orElseThrow();

            // The new replica alone must hold the data: stop every other one and read it there.
            detach(cluster, coordinatorNode, volumeId, device);
            for (String n : after) {
                if (!n.equals(fresh)) {
                    cluster.kill(n);
                }
            }
            Path onFresh = cluster.attach(fresh, volumeId, TestCluster.block(), Duration.ofSeconds(30));
            assertArrayEquals(data, read(onFresh, 16 * MIB, data.length));
        }
    }

    /** Bytes the coordinator reports it copied to resync {@code target}, from its log. */
    private static long resyncedBytes(Path log, String target) throws Exception {
        long total = 0;
        Matcher m = RESYNCED.matcher(Files.readString(log));
        while (m.find()) {
            if (m.group(1).equals(target)) {
                total += Long.parseLong(m.group(2));
            }
        }
        return total;
    }
}
