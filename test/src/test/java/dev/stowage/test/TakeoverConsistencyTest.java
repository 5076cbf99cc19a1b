package dev.stowage.test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.nio.file.ExtendedOpenOption;
import csi.v1.Csi;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Writes in flight when a coordinator dies must not leave the replicas disagreeing: a repl=3 volume
 * attached on the storage-less node takes random 4 KiB writes from many threads at once; the
 * coordinator's traffic to n3 is cut, so the writes then in flight reach n1 and n2 only, and the
 * coordinator's node is killed with SIGKILL before its deadline marks n3 STALE. The volume is then
 * attached on each replica node in turn, where reads come from the local replica, and the three
 * must hold the same bytes (docs/replication.md, "Takeover").
 */
@Tag("root")
class TakeoverConsistencyTest {
    private static final long SIZE = 64L << 20;
    private static final int REGION = 1 << 20;
    private static final int WRITERS = 16;

    private TestCluster cluster;

    @BeforeEach
    void startCluster() throws Exception {
        cluster = TestCluster.startThreeStorageNodesAndOneStorageless("takeover");
    }

    @AfterEach
    void stopCluster() {
        if (cluster != null) {
            cluster.close();
        }
    }

    @Test
    void theReplicasAgreeAfterTheCoordinatorDiedWithWritesInFlight() throws Exception {
        String volumeId = cluster.createBlockVolume("n1", "takeover", 3, SIZE);
        Path device = cluster.attach("n4", volumeId, TestCluster.block(), Duration.ofSeconds(30));
        AtomicBoolean stop = new AtomicBoolean();
        AtomicLong written = new AtomicLong();
        List<Thread> writers = new ArrayList<>();
        for (int i = 0; i < WRITERS; i++) {
            long seed = i;
            Thread t = new Thread(() -> writeUntilStopped(device, seed, stop, written), "writer-" + i);
            t.start();
            writers.add(t);
        }
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (written.get() < 4000) {
            assertTrue(System.nanoTime() < deadline, "the writers did not get going: " + written.get());
            Thread.sleep(10);
        }
        // The coordinator's frames stop reaching n3: the writes in flight land on n1 and n2 and wait
        // for n3 (up to the 5 s request deadline, so n3 is never marked STALE); then the node dies.
        try (NetworkCut cut = NetworkCut.between(cluster.spec("n4").ip(), cluster.spec("n3").ip())) {
            long before = written.get();
            Thread.sleep(1000);
            assertTrue(written.get() - before <= WRITERS, "writes completed without n3");
            cluster.node("n4").kill9();
            stop.set(true);
        }
        for (Thread t : writers) {
            t.join(60_000);
            assertTrue(!t.isAlive(), t.getName() + " still runs");
        }
        cluster.releaseHostState("n4");

        byte[][] first = null;
        String firstNode = null;
        for (String node : List.of("n1", "n2", "n3")) {
            Path on = cluster.attach(node, volumeId, TestCluster.block(), Duration.ofSeconds(60));
            byte[][] digests = regionDigests(on);
            detach(node, volumeId, on);
            if (first == null) {
                first = digests;
                firstNode = node;
                continue;
            }
            List<Integer> differ = new ArrayList<>();
            for (int r = 0; r < digests.length; r++) {
                if (!MessageDigest.isEqual(first[r], digests[r])) {
                    differ.add(r);
                }
            }
            assertEquals(List.of(), differ, "regions in which the replicas on " + firstNode + " and " + node
                    + " differ after " + written.get() + " writes");
        }
        System.out.printf("takeover consistency: %d writes before the kill, the three replicas agree%n",
                written.get());
    }

    /** Random aligned 4 KiB writes with O_DIRECT, each a synchronous request, until told to stop or failing. */
    private static void writeUntilStopped(Path device, long seed, AtomicBoolean stop, AtomicLong written) {
        Random random = new Random(seed);
        ByteBuffer block = ByteBuffer.allocateDirect(8192).alignedSlice(4096);
        block.limit(4096);
        try (FileChannel ch = FileChannel.open(device, StandardOpenOption.WRITE, ExtendedOpenOption.DIRECT)) {
            while (!stop.get()) {
                for (int i = 0; i < 4096; i += 8) {
                    block.putLong(i, random.nextLong());
                }
                long offset = (long) random.nextInt((int) (SIZE / 4096)) * 4096;
                ch.write(block.clear().limit(4096), offset);
                written.incrementAndGet();
            }
        } catch (IOException e) {
            // the coordinator's node died under this write
        }
    }

    /** A SHA-256 per 1 MiB region of the whole device. */
    private static byte[][] regionDigests(Path device) throws Exception {
        byte[][] out = new byte[(int) (SIZE / REGION)][];
        ByteBuffer buf = ByteBuffer.allocate(REGION);
        try (FileChannel ch = FileChannel.open(device, StandardOpenOption.READ)) {
            for (int r = 0; r < out.length; r++) {
                buf.clear();
                while (buf.hasRemaining() && ch.read(buf, (long) r * REGION + buf.position()) > 0) {
                    continue;
                }
                out[r] = MessageDigest.getInstance("SHA-256").digest(buf.array());
            }
        }
        return out;
    }

    private void detach(String node, String volumeId, Path target) {
        cluster.unstage(node, volumeId, target);
        try (CsiClient c = cluster.csi(node)) {
            c.controller().controllerUnpublishVolume(Csi.ControllerUnpublishVolumeRequest.newBuilder()
                    .setVolumeId(volumeId).setNodeId(node).build());
        }
    }
}
