package dev.stowage.test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import csi.v1.Csi;
import dev.stowage.engine.cluster.etcd.EtcdProcess;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * A real cluster on one machine: etcd, three storage nodes and one storage-less node, each a
 * {@code bin/stowage node} process on its own 127.0.0.x address. A repl=3 volume is attached on the
 * storage-less node and written with flushes; a replica node and then the coordinator's node are
 * killed with SIGKILL; the volume is attached on a surviving node and every write acknowledged before
 * a completed flush must read back (invariants 1, 3 and 6 of DESIGN.md).
 */
@Tag("root")
class ClusterFailoverTest {
    private static final int BLOCK = 4096;
    private static final int BLOCKS = 2048;
    private static final int WRITES_PER_FLUSH = 8;

    private Path dir;
    private EtcdProcess etcd;
    private final Map<String, StowageNode> nodes = new java.util.LinkedHashMap<>();
    private Path logs;

    @BeforeEach
    void startCluster() throws Exception {
        dir = Files.createTempDirectory("stowage-cluster-");
        logs = StowageNode.home().resolve("test/target/cluster");
        etcd = EtcdProcess.start();
        startNode("n1", "127.0.0.2", "zone-a", false);
        startNode("n2", "127.0.0.3", "zone-b", false);
        startNode("n3", "127.0.0.4", "zone-c", false);
        startNode("n4", "127.0.0.5", "zone-a", true);
    }

    private StowageNode startNode(String id, String ip, String zone, boolean storageless) throws Exception {
        List<String> args = new ArrayList<>(List.of("--node-id", id, "--etcd", etcd.endpoint().toString(),
                "--listen", ip + (storageless ? ":7499" : ":0"), "--zone", zone));
        if (storageless) {
            args.add("--storageless");
        }
        StowageNode node = new StowageNode(dir.resolve(id).resolve("data"), dir.resolve(id).resolve("csi.sock"),
                logs.resolve(id + "-" + System.nanoTime() + ".log"), args).start(Duration.ofMinutes(3));
        nodes.put(id, node);
        return node;
    }

    @AfterEach
    void stopCluster() throws Exception {
        try {
            for (StowageNode n : nodes.values()) {
                n.close();
            }
        } finally {
            HostCleanup.cleanup(dir);
            if (etcd != null) {
                etcd.close();
            }
        }
    }

    private CsiClient csi(String node) {
        return new CsiClient(nodes.get(node).socket());
    }

    private static Csi.VolumeCapability block() {
        return Csi.VolumeCapability.newBuilder()
                .setBlock(Csi.VolumeCapability.BlockVolume.getDefaultInstance())
                .setAccessMode(Csi.VolumeCapability.AccessMode.newBuilder()
                        .setMode(Csi.VolumeCapability.AccessMode.Mode.SINGLE_NODE_WRITER))
                .build();
    }

    /** Publishes, stages and publishes on {@code node}; retries while the previous node is still alive. */
    private Path attach(String node, String volumeId, Duration timeout) throws Exception {
        Path staging = dir.resolve(node).resolve("staging-" + volumeId);
        Path target = dir.resolve(node).resolve("publish-" + volumeId).resolve("dev");
        Instant deadline = Instant.now().plus(timeout);
        try (CsiClient c = csi(node)) {
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

    @Test
    void aRepl3VolumeSurvivesKillingAReplicaAndThenTheCoordinatorsNode() throws Exception {
        String volumeId;
        try (CsiClient c = csi("n1")) {
            Csi.Volume v = c.controller().createVolume(Csi.CreateVolumeRequest.newBuilder().setName("replicated")
                    .addVolumeCapabilities(block()).putParameters("repl", "3")
                    .setCapacityRange(Csi.CapacityRange.newBuilder().setRequiredBytes(64L << 20)).build()).getVolume();
            volumeId = v.getVolumeId();
            Set<String> replicaNodes = new TreeSet<>();
            v.getAccessibleTopologyList().forEach(t -> replicaNodes.add(t.getSegmentsMap().get("topology.stowage.dev/node")));
            assertEquals(Set.of("n1", "n2", "n3"), replicaNodes, "three replicas on the three storage nodes, none on"
                    + " the storage-less one");
        }

        // The storage-less node attaches the volume: all its replicas are remote.
        Path device = attach("n4", volumeId, Duration.ofSeconds(30));
        long[] durable = new long[BLOCKS];
        AtomicLong flushes = new AtomicLong();
        AtomicReference<Throwable> writerEnd = new AtomicReference<>();
        Thread writer = new Thread(() -> writeUntilFailure(device, durable, flushes, writerEnd), "writer");
        writer.start();
        awaitFlushes(flushes, 100, writer, writerEnd);

        nodes.get("n3").kill9();
        long afterReplicaKill = flushes.get();
        awaitFlushes(flushes, afterReplicaKill + 100, writer, writerEnd);

        Instant kill = Instant.now();
        nodes.get("n4").kill9();
        writer.join(60_000);
        assertTrue(!writer.isAlive(), "the writer did not notice the dead coordinator");
        HostCleanup.cleanup(dir.resolve("n4"));

        Path moved = attach("n1", volumeId, Duration.ofSeconds(60));
        Duration failover = Duration.between(kill, Instant.now());
        int checked = verify(moved, durable);
        System.out.printf("cluster failover: %d flushes (%d after the replica kill), %d blocks verified, "
                + "attached on n1 %d ms after the kill of n4%n", flushes.get(), flushes.get() - afterReplicaKill,
                checked, failover.toMillis());
        assertTrue(checked > BLOCKS / 2, "too few blocks had flushed writes: " + checked);

        try (CsiClient c = csi("n1")) {
            Csi.ControllerGetVolumeResponse got = c.controller().controllerGetVolume(
                    Csi.ControllerGetVolumeRequest.newBuilder().setVolumeId(volumeId).build());
            assertTrue(got.getStatus().getVolumeCondition().getAbnormal(), "n3's replica must be reported STALE");
            assertTrue(got.getStatus().getVolumeCondition().getMessage().contains("n3"),
                    got.getStatus().getVolumeCondition().getMessage());
        }
    }

    private static void awaitFlushes(AtomicLong flushes, long target, Thread writer, AtomicReference<Throwable> end)
            throws InterruptedException {
        Instant deadline = Instant.now().plusSeconds(120);
        while (flushes.get() < target && writer.isAlive() && Instant.now().isBefore(deadline)) {
            Thread.sleep(20);
        }
        assertTrue(flushes.get() >= target, "only " + flushes.get() + " flushes, wanted " + target
                + " (writer: " + end.get() + ")");
    }

    private static void writeUntilFailure(Path device, long[] durableSeq, AtomicLong flushes,
                                          AtomicReference<Throwable> end) {
        long[] pending = new long[BLOCKS];
        ByteBuffer buf = ByteBuffer.allocateDirect(BLOCK);
        try (FileChannel ch = FileChannel.open(device, StandardOpenOption.WRITE)) {
            for (long seq = 1; ; seq++) {
                int blockIndex = (int) ((seq * 7919) % BLOCKS);
                fill(buf, seq, blockIndex);
                while (buf.hasRemaining()) {
                    ch.write(buf, (long) blockIndex * BLOCK + buf.position());
                }
                pending[blockIndex] = seq;
                if (seq % WRITES_PER_FLUSH == 0) {
                    ch.force(false);
                    synchronized (durableSeq) {
                        for (int b = 0; b < BLOCKS; b++) {
                            if (pending[b] != 0) {
                                durableSeq[b] = pending[b];
                                pending[b] = 0;
                            }
                        }
                    }
                    flushes.incrementAndGet();
                }
            }
        } catch (Throwable t) {
            end.set(t);
        }
    }

    private static void fill(ByteBuffer buf, long seq, int blockIndex) {
        buf.clear();
        buf.putLong(seq).putInt(blockIndex);
        long x = seq * 0x9E3779B97F4A7C15L + blockIndex;
        while (buf.remaining() > 4) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
            buf.put((byte) x);
        }
        CRC32C crc = new CRC32C();
        crc.update(buf.duplicate().flip());
        buf.putInt((int) crc.getValue());
        buf.flip();
    }

    private static int verify(Path device, long[] durableSeq) throws IOException {
        ByteBuffer got = ByteBuffer.allocateDirect(BLOCK);
        ByteBuffer want = ByteBuffer.allocateDirect(BLOCK);
        int checked = 0;
        try (FileChannel ch = FileChannel.open(device, StandardOpenOption.READ)) {
            for (int b = 0; b < BLOCKS; b++) {
                if (durableSeq[b] == 0) {
                    continue;
                }
                got.clear();
                while (got.hasRemaining()) {
                    if (ch.read(got, (long) b * BLOCK + got.position()) < 0) {
                        throw new IOException("short read of block " + b);
                    }
                }
                got.flip();
                long seq = got.getLong(0);
                assertEquals(b, got.getInt(8), "block " + b + " holds data of another block");
                assertTrue(seq >= durableSeq[b], "block " + b + " lost a flushed write: holds seq " + seq
                        + ", flushed seq " + durableSeq[b]);
                fill(want, seq, b);
                assertEquals(want, got, "block " + b + " (seq " + seq + ") is corrupt");
                checked++;
            }
        }
        return checked;
    }
}
