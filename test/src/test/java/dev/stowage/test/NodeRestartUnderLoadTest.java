package dev.stowage.test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import csi.v1.Csi;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * A pod keeps writing while its node restarts: with a {@code stowage fuse-keeper} holding the
 * volume's FUSE connection, a kill -9 or a stop of {@code stowage node} pauses the pod's I/O
 * instead of failing it, and the restarted node serves the same mount and loop device again.
 * The "pod" is a separate process appending numbered lines to a file on the published ext4
 * volume, with an fsync after each (or, on a raw block volume, writing numbered 4 KiB records to
 * the published device one after the other); it must see no error, and every line it wrote must
 * be there.
 */
@Tag("root")
class NodeRestartUnderLoadTest {
    private static final String NODE = "restart-node";
    private Path dir;
    private Path data;
    private Path socket;
    private Path keeperSocket;
    private Path logs;
    private Process keeper;
    private Process pod;
    private StowageNode node;
    private java.util.Set<String> loopsAtStart;

    @BeforeEach
    void start() throws Exception {
        loopsAtStart = HostCleanup.allLoops();
        dir = Files.createTempDirectory("stowage-restart-");
        data = dir.resolve("data");
        socket = dir.resolve("csi.sock");
        keeperSocket = dir.resolve("keeper.sock");
        logs = StowageNode.home().resolve("test/target/restart-under-load");
        Files.createDirectories(logs);
        startKeeper();
        node = startNode("node.log");
    }

    private void startKeeper() throws Exception {
        keeper = new ProcessBuilder(StowageNode.home().resolve("bin/stowage").toString(), "fuse-keeper",
                "--socket", keeperSocket.toString()).redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(logs.resolve("keeper.log").toFile())).start();
        Instant deadline = Instant.now().plusSeconds(60);
        while (!Files.exists(keeperSocket) || !keeperAnswers()) {
            assertTrue(keeper.isAlive() && Instant.now().isBefore(deadline), "fuse-keeper did not start; see keeper.log");
            Thread.sleep(50);
        }
    }

    private boolean keeperAnswers() {
        try {
            keeperHolds();
            return true;
        } catch (IOException notYet) {
            return false;
        }
    }

    private StowageNode startNode(String log) throws Exception {
        return new StowageNode(data, socket, logs.resolve(log),
                List.of("--node-id", NODE, "--fuse-keeper", keeperSocket.toString())).start(Duration.ofMinutes(3));
    }

    @AfterEach
    void stop() throws Exception {
        try {
            if (pod != null) {
                pod.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
            }
            if (node != null) {
                node.close();
            }
        } finally {
            try {
                keeper.destroyForcibly().waitFor(30, TimeUnit.SECONDS); // its fds close: any kept connection ends
            } finally {
                HostCleanup.cleanup(dir);
                // A failed run can leave dead loop devices a node kept for the pod's mounts; they
                // read "/" as their file once those are gone, so only this test's list finds them.
                for (String loop : HostCleanup.allLoops()) {
                    if (!loopsAtStart.contains(loop)) {
                        HostCleanup.run("losetup", "-d", loop);
                    }
                }
            }
        }
    }

    @Test
    void aKill9OfTheNodePausesThePodsWritesAndLosesNone() throws Exception {
        restartUnderLoad(true, false);
    }

    @Test
    void aStopAndStartOfTheNodePausesThePodsWritesAndLosesNone() throws Exception {
        restartUnderLoad(false, false);
    }

    /** A raw block publication is the same loop device, bind-mounted at the pod's device file. */
    @Test
    void aKill9OfTheNodePausesARawBlockPodsWritesAndLosesNone() throws Exception {
        restartUnderLoad(true, false, true);
    }

    /**
     * A keeper that restarts holds nothing; the node hands it the connections again within seconds,
     * so that a kill of the node afterwards still pauses the pod instead of failing it.
     */
    @Test
    void aRestartedKeeperIsHandedTheConnectionsAgain() throws Exception {
        restartUnderLoad(true, true);
    }

    private void restartUnderLoad(boolean kill, boolean restartKeeperFirst) throws Exception {
        restartUnderLoad(kill, restartKeeperFirst, false);
    }

    private void restartUnderLoad(boolean kill, boolean restartKeeperFirst, boolean rawBlock) throws Exception {
        Csi.VolumeCapability.Builder capability = Csi.VolumeCapability.newBuilder()
                .setAccessMode(Csi.VolumeCapability.AccessMode.newBuilder()
                        .setMode(Csi.VolumeCapability.AccessMode.Mode.SINGLE_NODE_WRITER));
        Csi.VolumeCapability cap = rawBlock
                ? capability.setBlock(Csi.VolumeCapability.BlockVolume.getDefaultInstance()).build()
                : capability.setMount(Csi.VolumeCapability.MountVolume.newBuilder().setFsType("ext4")).build();
        Path staging = dir.resolve("staging");
        Path target = dir.resolve(rawBlock ? "pod/device" : "pod/volume");
        Path podFile = rawBlock ? target : target.resolve("log.txt");
        java.util.Set<String> loopsBefore = HostCleanup.allLoops();
        String id;
        try (CsiClient csi = new CsiClient(socket)) {
            id = csi.controller().createVolume(Csi.CreateVolumeRequest.newBuilder().setName("busy")
                    .addVolumeCapabilities(cap).setCapacityRange(Csi.CapacityRange.newBuilder().setRequiredBytes(128L << 20))
                    .build()).getVolume().getVolumeId();
            csi.publishStageAndPublish(id, NODE, cap, staging, target);
        }
        assertEquals(List.of(fileNameOf(id)), keeperHolds(), "the keeper holds the staged volume's connection");
        String device = HostCleanup.loopsUnder(data).get(0);

        AtomicLong written = new AtomicLong();
        AtomicReference<String> podError = new AtomicReference<>();
        startPod(podFile, rawBlock, dir.resolve("stop"), written, podError);
        awaitWritten(written, 300, podError);

        if (restartKeeperFirst) {
            keeper.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
            Files.deleteIfExists(keeperSocket);
            startKeeper(); // holds nothing: the node sees its new socket and hands it the connection again
            Instant deadline = Instant.now().plusSeconds(30);
            while (keeperHolds().isEmpty()) {
                assertTrue(Instant.now().isBefore(deadline), "the node did not hand the new keeper its connection");
                Thread.sleep(200);
            }
            assertEquals(List.of(fileNameOf(id)), keeperHolds());
            awaitWritten(written, written.get() + 100, podError);
        }
        if (kill) {
            node.kill9();
        } else {
            node.close(); // a stopping node serves until it leaves its exports: the pod may go on meanwhile
        }
        long gone = written.get();
        Thread.sleep(1000); // the pod is now waiting on the volume
        assertTrue(pod.isAlive(), "the pod must wait for the node, not fail: " + podError.get());
        long whileDown = written.get();
        assertTrue(whileDown - gone <= 1, "the pod went on writing while no node served its volume: line "
                + gone + " when the node was gone, " + whileDown + " a second later");

        node = startNode(kill ? "node-after-kill.log" : "node-after-stop.log");
        awaitWritten(written, whileDown + 300, podError);
        assertTrue(Files.readString(node.log()).contains("resumed the export"), "the new node took over the export");
        assertEquals(List.of(device), HostCleanup.loopsUnder(data), "the pod's loop device stays the same");

        Files.writeString(dir.resolve("stop"), "");
        assertTrue(pod.waitFor(60, TimeUnit.SECONDS), "pod did not stop");
        assertEquals(0, pod.exitValue(), "the pod saw an error: " + podError.get());
        long total = written.get();
        List<String> lines = rawBlock ? records(podFile, total + 1) : Files.readAllLines(podFile);
        if (rawBlock) {
            assertEquals("", lines.get((int) total), "the record after the last one written is blank");
            lines = lines.subList(0, (int) total);
        }
        assertEquals(total, lines.size(), "every fsynced line is in the file");
        for (int i = 0; i < lines.size(); i++) {
            assertEquals(Integer.toString(i + 1), lines.get(i), "line " + (i + 1));
        }
        // The old node may have died polling its fd (non-blocking), a flag the kept fd shares: the
        // new one must not inherit it, or a thread of it would spin on EAGAIN.
        Thread.sleep(300);
        assertEquals(List.of(), nonBlockingFuseFds(node.pid()), "FUSE fds left non-blocking at rest");

        try (CsiClient csi = new CsiClient(socket)) {
            csi.node().nodeUnpublishVolume(Csi.NodeUnpublishVolumeRequest.newBuilder().setVolumeId(id)
                    .setTargetPath(target.toString()).build());
            csi.node().nodeUnstageVolume(Csi.NodeUnstageVolumeRequest.newBuilder().setVolumeId(id)
                    .setStagingTargetPath(staging.toString()).build());
        }
        assertEquals(List.of(), HostCleanup.mountsUnder(dir), "mounts left after unstaging");
        assertEquals(loopsBefore, HostCleanup.allLoops(), "loop devices left after unstaging");
        assertEquals(List.of(), keeperHolds(), "the keeper still holds the unstaged volume's connection");
    }

    /** The /dev/fuse fds of process {@code pid} that have O_NONBLOCK set. */
    private static List<String> nonBlockingFuseFds(long pid) throws IOException {
        List<String> out = new java.util.ArrayList<>();
        try (var fds = Files.list(Path.of("/proc/" + pid + "/fd"))) {
            for (Path fd : fds.toList()) {
                try {
                    if (!Files.readSymbolicLink(fd).toString().equals("/dev/fuse")) {
                        continue;
                    }
                    String flags = Files.readAllLines(Path.of("/proc/" + pid + "/fdinfo/" + fd.getFileName())).stream()
                            .filter(l -> l.startsWith("flags:")).findFirst().orElseThrow().substring(6).trim();
                    if ((Integer.parseInt(flags, 8) & 04000) != 0) {
                        out.add(fd.getFileName().toString());
                    }
                } catch (java.nio.file.NoSuchFileException closedMeanwhile) {
                    // not one of the session's fds
                }
            }
        }
        return out;
    }

    /**
     * The pod: writes "n\n" and fsyncs, for n = 1, 2, ..., until the stop file exists; appended to
     * a file, or on a block device as 4 KiB record n - 1 (the rest of the record zeros).
     */
    private void startPod(Path file, boolean rawBlock, Path stop, AtomicLong written, AtomicReference<String> error)
            throws IOException {
        String script = String.join("\n",
                "import os, sys",
                "block = sys.argv[3] == 'block'",
                "fd = os.open(sys.argv[1], os.O_WRONLY if block else os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)",
                "n = 0",
                "try:",
                "    while not os.path.exists(sys.argv[2]):",
                "        n += 1",
                "        line = b'%d\\n' % n",
                "        if block:",
                "            os.pwrite(fd, line.ljust(4096, b'\\0'), (n - 1) * 4096)",
                "        else:",
                "            os.write(fd, line)",
                "        os.fsync(fd)",
                "        print(n, flush=True)",
                "except OSError as e:",
                "    print('ERROR', e, flush=True)",
                "    sys.exit(1)");
        pod = new ProcessBuilder("python3", "-c", script, file.toString(), stop.toString(), rawBlock ? "block" : "file")
                .redirectErrorStream(true).start();
        Thread reader = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(pod.getInputStream(), StandardCharsets.UTF_8))) {
                for (String line; (line = r.readLine()) != null; ) {
                    if (line.startsWith("ERROR")) {
                        error.set(line);
                    } else {
                        written.set(Long.parseLong(line.strip()));
                    }
                }
            } catch (IOException | NumberFormatException e) {
                error.compareAndSet(null, e.toString());
            }
        }, "pod-output");
        reader.setDaemon(true);
        reader.start();
    }

    /** The first {@code count} 4 KiB records of a block device, each up to its first newline. */
    private static List<String> records(Path device, long count) throws IOException {
        List<String> out = new java.util.ArrayList<>();
        try (var in = java.nio.channels.FileChannel.open(device)) {
            ByteBuffer record = ByteBuffer.allocate(4096);
            for (long i = 0; i < count; i++) {
                record.clear();
                while (record.hasRemaining() && in.read(record, i * 4096 + record.position()) > 0) {
                    // whole record
                }
                String text = new String(record.array(), StandardCharsets.US_ASCII);
                int end = text.indexOf('\n');
                out.add(end < 0 ? "" : text.substring(0, end));
            }
        }
        return out;
    }

    private void awaitWritten(AtomicLong written, long atLeast, AtomicReference<String> error) throws InterruptedException {
        Instant deadline = Instant.now().plusSeconds(120);
        while (written.get() < atLeast) {
            assertTrue(pod.isAlive(), "the pod stopped: " + error.get());
            assertTrue(Instant.now().isBefore(deadline), "the pod wrote " + written.get() + " lines, expected " + atLeast
                    + "; node log:\n" + node.tail());
            Thread.sleep(20);
        }
    }

    /** The FUSE mount point file name of a volume id as the keeper knows it (ids here are plain). */
    private static String fileNameOf(String volumeId) {
        assertTrue(volumeId.matches("[A-Za-z0-9._-]+"), volumeId);
        return volumeId;
    }

    private List<String> keeperHolds() throws IOException {
        try (SocketChannel channel = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            channel.connect(UnixDomainSocketAddress.of(keeperSocket));
            channel.write(ByteBuffer.wrap("LIST\n".getBytes(StandardCharsets.UTF_8)));
            channel.shutdownOutput();
            ByteBuffer reply = ByteBuffer.allocate(4096);
            while (channel.read(reply) >= 0) {
                // until the keeper closes
            }
            String line = new String(reply.array(), 0, reply.position(), StandardCharsets.UTF_8).strip();
            assertTrue(line.startsWith("HELD"), line);
            String rest = line.substring(4).strip();
            return rest.isEmpty() ? List.of() : List.of(rest.split(" "));
        }
    }
}
