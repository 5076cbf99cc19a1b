package dev.stowage.test;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import csi.v1.Csi;
import dev.stowage.engine.cluster.etcd.EtcdProcess;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A real cluster on one machine for fault tests: an etcd server and named {@code bin/stowage node}
 * processes, each on its own 127.0.0.x address with its data, CSI socket and staging/publish paths
 * under one temporary directory, and its log under {@code test/target/<name>/}.
 *
 * <p>{@link #close()} resumes stopped nodes, stops every node by pid (SIGTERM, then SIGKILL),
 * removes mounts and loop devices left under the directory and stops etcd; it is meant for a
 * try-with-resources or {@code @AfterEach}, and runs every step even when one fails.
 *
 * <p>Threading: one test thread; {@link #startNodes} starts nodes in parallel internally.
 */
public final class TestCluster implements AutoCloseable {
    /**
     * How a node is started: its id, 127.0.0.x address, topology labels (null: none), role, and
     * whether its process runs in a cgroup of its own (so that {@link #isolate} can cut it off).
     */
    public record NodeSpec(String id, String ip, String zone, String rack, boolean storageless, List<String> extraArgs,
                           boolean ownCgroup) {
        public NodeSpec {
            extraArgs = List.copyOf(extraArgs);
        }

        public static NodeSpec storage(String id, String ip, String zone, String rack) {
            return new NodeSpec(id, ip, zone, rack, false, List.of(), false);
        }

        public static NodeSpec storageless(String id, String ip, String zone) {
            return new NodeSpec(id, ip, zone, null, true, List.of(), false);
        }

        /** The same node started with more command-line options. */
        public NodeSpec with(String... args) {
            List<String> all = new ArrayList<>(extraArgs);
            all.addAll(List.of(args));
            return new NodeSpec(id, ip, zone, rack, storageless, all, ownCgroup);
        }

        /** The same node started in a cgroup of its own, so that a test can {@link #isolate} it. */
        public NodeSpec inOwnCgroup() {
            return new NodeSpec(id, ip, zone, rack, storageless, extraArgs, true);
        }
    }

    private static final Duration NODE_START = Duration.ofMinutes(3);

    private final Path dir;
    private final Path logs;
    private final EtcdProcess etcd;
    private final Map<String, StowageNode> nodes = new LinkedHashMap<>();
    private final Map<String, NodeSpec> specs = new LinkedHashMap<>();
    private final Map<String, NodeCgroup> cgroups = new LinkedHashMap<>();

    private TestCluster(Path dir, Path logs, EtcdProcess etcd) {
        this.dir = dir;
        this.logs = logs;
        this.etcd = etcd;
    }

    /** Starts etcd for a cluster whose logs go to {@code test/target/<name>/}. */
    public static TestCluster start(String name) throws Exception {
        Path dir = Files.createTempDirectory("stowage-" + name + "-");
        try {
            return new TestCluster(dir, StowageNode.home().resolve("test/target").resolve(name), EtcdProcess.start());
        } catch (Exception | Error e) {
            HostCleanup.cleanup(dir);
            throw e;
        }
    }

    /**
     * The cluster most tests need: storage nodes n1-n3 in zones a, b, c on 127.0.0.2-4 and the
     * storage-less node n4 (zone a) on 127.0.0.5; the nodes named in {@code inOwnCgroup} run in a
     * cgroup of their own (see {@link #isolate}).
     */
    public static TestCluster startThreeStorageNodesAndOneStorageless(String name, String... inOwnCgroup)
            throws Exception {
        TestCluster cluster = start(name);
        try {
            List<String> own = List.of(inOwnCgroup);
            List<NodeSpec> specs = new ArrayList<>(List.of(NodeSpec.storage("n1", "127.0.0.2", "zone-a", null),
                    NodeSpec.storage("n2", "127.0.0.3", "zone-b", null),
                    NodeSpec.storage("n3", "127.0.0.4", "zone-c", null),
                    NodeSpec.storageless("n4", "127.0.0.5", "zone-a")));
            specs.replaceAll(spec -> own.contains(spec.id()) ? spec.inOwnCgroup() : spec);
            cluster.startNodes(specs.toArray(NodeSpec[]::new));
            return cluster;
        } catch (Exception | Error e) {
            cluster.close();
            throw e;
        }
    }

    /** Starts the nodes in parallel and waits until each is ready; on failure every started node stays owned by this cluster. */
    public void startNodes(NodeSpec... wanted) throws Exception {
        List<StowageNode> starting = new ArrayList<>();
        for (NodeSpec spec : wanted) {
            if (nodes.containsKey(spec.id()) && nodes.get(spec.id()).isAlive()) {
                throw new IllegalArgumentException("node " + spec.id() + " already runs");
            }
            List<String> args = new ArrayList<>(List.of("--node-id", spec.id(), "--etcd", etcd.endpoint().toString(),
                    "--listen", spec.ip() + (spec.storageless() ? ":7499" : ":0")));
            if (spec.zone() != null) {
                args.addAll(List.of("--zone", spec.zone()));
            }
            if (spec.rack() != null) {
                args.addAll(List.of("--rack", spec.rack()));
            }
            if (spec.storageless()) {
                args.add("--storageless");
            }
            args.addAll(spec.extraArgs());
            NodeCgroup group = null;
            if (spec.ownCgroup()) {
                group = cgroups.get(spec.id());
                if (group == null) {
                    group = NodeCgroup.create(dir.getFileName() + "-" + spec.id());
                    cgroups.put(spec.id(), group);
                }
            }
            StowageNode node = new StowageNode(dir.resolve(spec.id()).resolve("data"),
                    dir.resolve(spec.id()).resolve("csi.sock"),
                    logs.resolve(spec.id() + "-" + System.nanoTime() + ".log"), args, group);
            nodes.put(spec.id(), node);
            specs.put(spec.id(), spec);
            starting.add(node);
        }
        ExecutorService pool = Executors.newFixedThreadPool(starting.size());
        try {
            List<Future<StowageNode>> futures = new ArrayList<>();
            for (StowageNode n : starting) {
                futures.add(pool.submit(() -> n.start(NODE_START)));
            }
            Exception first = null;
            for (Future<StowageNode> f : futures) {
                try {
                    f.get();
                } catch (ExecutionException e) {
                    Exception cause = e.getCause() instanceof Exception c ? c : e;
                    if (first == null) {
                        first = cause;
                    } else {
                        first.addSuppressed(cause);
                    }
                }
            }
            if (first != null) {
                throw first;
            }
        } finally {
            pool.shutdownNow();
        }
    }

    public StowageNode node(String id) {
        StowageNode n = nodes.get(id);
        if (n == null) {
            throw new IllegalArgumentException("no node " + id);
        }
        return n;
    }

    public NodeSpec spec(String id) { return specs.get(id); }

    /** The zone label of {@code nodeId} as started (null: none). */
    public String zoneOf(String nodeId) { return specs.get(nodeId).zone(); }

    /** A new CSI client on {@code id}'s socket; the caller closes it. */
    public CsiClient csi(String id) { return new CsiClient(node(id).socket()); }

    /** The directory that holds {@code id}'s data, socket and staging/publish paths. */
    public Path dir(String id) { return dir.resolve(id); }

    /** SIGKILL of a node; its host state (mounts, loops) stays until {@link #releaseHostState}. */
    public void kill(String id) throws InterruptedException {
        node(id).kill9();
    }

    /** Starts a node that was killed or stopped again, on the same data directory and options. */
    public void restart(String id) throws Exception {
        StowageNode old = node(id);
        old.close();
        startNodes(specs.get(id));
    }

    /** The log file of {@code id}'s current process. */
    public Path log(String id) {
        return node(id).log();
    }

    /**
     * Cuts node {@code id} off from everything, etcd included, until the returned cut is closed:
     * a real partition, with the node's process running on. The node must have been started
     * {@link NodeSpec#inOwnCgroup}.
     */
    public NetworkCut isolate(String id) throws IOException, InterruptedException {
        return NetworkCut.isolating(cgroupOf(id));
    }

    /**
     * Cuts node {@code id} off from etcd only, until the returned cut is closed: its lease expires
     * and the cluster sees it leave, while its replication traffic flows. The node must have been
     * started {@link NodeSpec#inOwnCgroup}.
     */
    public NetworkCut cutFromEtcd(String id) throws IOException, InterruptedException {
        return NetworkCut.isolatingFrom(cgroupOf(id), etcd.endpoint().getPort());
    }

    private NodeCgroup cgroupOf(String id) {
        NodeCgroup group = cgroups.get(id);
        if (group == null) {
            throw new IllegalArgumentException("node " + id + " was not started in a cgroup of its own");
        }
        return group;
    }

    /** Whether the current process of node {@code id} has logged a line containing {@code text}. */
    public boolean logged(String id, String text) throws IOException {
        return Files.readAllLines(node(id).log()).stream().anyMatch(l -> l.contains(text));
    }

    /**
     * After a cut that kept node {@code id} from its replicas has healed: writes through
     * {@code oldDevice} (its coordinator's device of a volume attached elsewhere since, with a
     * block of sequence {@code seq}) must fail, until the node logs that its coordinator was fenced
     * by the replicas' epoch, which must happen within 90 s (TCP retransmits again only after its
     * back-off). Returns how long the fencing took.
     */
    public Duration awaitFenced(String id, Path oldDevice, long seq) throws Exception {
        Instant healed = Instant.now();
        do {
            assertThrows(IOException.class, () -> BlockWorkload.writeOneDirect(oldDevice, seq, 0),
                    "a write through " + id + "'s old coordinator must fail once the cut has healed");
        } while (!logged(id, "fenced at epoch") && Instant.now().isBefore(healed.plusSeconds(90)));
        assertTrue(logged(id, "fenced at epoch"), id + " reached its replicas again within 90 s but was not fenced");
        return Duration.between(healed, Instant.now());
    }

    /** The management API address node {@code id} logged at start (tests bind it to a free port). */
    public String managementEndpoint(String id) throws IOException {
        Pattern serving = Pattern.compile("is serving the management API on (\\S+)");
        for (String line : Files.readAllLines(node(id).log())) {
            Matcher m = serving.matcher(line);
            if (m.find()) {
                return m.group(1);
            }
        }
        throw new IllegalStateException("node " + id + " logged no management API address");
    }

    /** SIGSTOP: the node freezes (no I/O served, no lease kept alive) without dying. */
    public void stop(String id) {
        signal(id, "STOP");
    }

    /** SIGCONT after {@link #stop}. */
    public void resume(String id) {
        signal(id, "CONT");
    }

    /** SIGSTOP of etcd: the metadata store stops answering while every connection to it stays open. */
    public void stopEtcd() {
        signal(etcd.pid(), "STOP", "etcd");
    }

    /** SIGCONT after {@link #stopEtcd}. */
    public void resumeEtcd() {
        signal(etcd.pid(), "CONT", "etcd");
    }

    private void signal(String id, String signal) {
        signal(node(id).pid(), signal, id);
    }

    private static void signal(long pid, String signal, String what) {
        HostCleanup.ProcessResult r = HostCleanup.run("kill", "-" + signal, Long.toString(pid));
        if (r.exitCode() != 0) {
            throw new IllegalStateException("kill -" + signal + " " + pid + " (" + what + ") failed: " + r.stderr());
        }
    }

    /** After a node was killed: lets go of the mounts and loop devices its volumes left on this host. */
    public void releaseHostState(String id) {
        HostCleanup.cleanup(dir(id));
    }

    /** A single-node-writer raw block capability. */
    public static Csi.VolumeCapability block() {
        return Csi.VolumeCapability.newBuilder()
                .setBlock(Csi.VolumeCapability.BlockVolume.getDefaultInstance())
                .setAccessMode(writer())
                .build();
    }

    /** A single-node-writer filesystem capability. */
    public static Csi.VolumeCapability mount(String fsType) {
        return Csi.VolumeCapability.newBuilder()
                .setMount(Csi.VolumeCapability.MountVolume.newBuilder().setFsType(fsType))
                .setAccessMode(writer())
                .build();
    }

    private static Csi.VolumeCapability.AccessMode writer() {
        return Csi.VolumeCapability.AccessMode.newBuilder()
                .setMode(Csi.VolumeCapability.AccessMode.Mode.SINGLE_NODE_WRITER).build();
    }

    /**
     * ControllerPublish (through {@code node}'s own controller), NodeStage and NodePublish on {@code node}.
     * While the volume's previous node is still a live member, publish answers FAILED_PRECONDITION:
     * that is retried until {@code timeout}. Returns the publish target: the device file for a block
     * capability, the mounted directory otherwise.
     */
    public Path attach(String node, String volumeId, Csi.VolumeCapability cap, Duration timeout) throws Exception {
        Path staging = dir(node).resolve("staging-" + volumeId);
        Path target = dir(node).resolve("publish-" + volumeId).resolve(cap.hasBlock() ? "dev" : "mnt");
        Instant deadline = Instant.now().plus(timeout);
        try (CsiClient c = csi(node)) {
            while (true) {
                try {
                    c.controller().controllerPublishVolume(Csi.ControllerPublishVolumeRequest.newBuilder()
                            .setVolumeId(volumeId).setNodeId(node).setVolumeCapability(cap).build());
                    break;
                } catch (StatusRuntimeException e) {
                    if (e.getStatus().getCode() != Status.Code.FAILED_PRECONDITION || Instant.now().isAfter(deadline)) {
                        throw e;
                    }
                    Thread.sleep(100);
                }
            }
            c.node().nodeStageVolume(Csi.NodeStageVolumeRequest.newBuilder().setVolumeId(volumeId)
                    .setStagingTargetPath(staging.toString()).setVolumeCapability(cap).build());
            c.node().nodePublishVolume(Csi.NodePublishVolumeRequest.newBuilder().setVolumeId(volumeId)
                    .setStagingTargetPath(staging.toString()).setTargetPath(target.toString())
                    .setVolumeCapability(cap).build());
        }
        return target;
    }

    /**
     * Creates a raw block volume through {@code node}'s CSI controller: CreateVolume named
     * {@code name} with {@code repl} replicas and {@code bytes} of capacity. Returns its id.
     */
    public String createBlockVolume(String node, String name, int repl, long bytes) {
        try (CsiClient c = csi(node)) {
            return c.controller().createVolume(Csi.CreateVolumeRequest.newBuilder().setName(name)
                    .addVolumeCapabilities(block()).putParameters("repl", Integer.toString(repl))
                    .setCapacityRange(Csi.CapacityRange.newBuilder().setRequiredBytes(bytes)).build())
                    .getVolume().getVolumeId();
        }
    }

    /** NodeUnpublish and NodeUnstage of {@code volumeId} on {@code node} (the publication in the controller stays). */
    public void unstage(String node, String volumeId, Path target) {
        Path staging = dir(node).resolve("staging-" + volumeId);
        try (CsiClient c = csi(node)) {
            c.node().nodeUnpublishVolume(Csi.NodeUnpublishVolumeRequest.newBuilder().setVolumeId(volumeId)
                    .setTargetPath(target.toString()).build());
            c.node().nodeUnstageVolume(Csi.NodeUnstageVolumeRequest.newBuilder().setVolumeId(volumeId)
                    .setStagingTargetPath(staging.toString()).build());
        }
    }

    @Override
    public void close() {
        for (Map.Entry<String, StowageNode> e : nodes.entrySet()) {
            StowageNode n = e.getValue();
            try {
                if (n.isAlive()) {
                    // A stopped process would hold SIGTERM until the 30 s SIGKILL fallback.
                    HostCleanup.run("kill", "-CONT", Long.toString(n.pid()));
                }
                n.close();
            } catch (InterruptedException ie) {
                Thread.currentThread().interrupt();
            } catch (RuntimeException re) {
                System.err.println("cluster: stopping node " + e.getKey() + " failed: " + re);
            }
        }
        try {
            HostCleanup.cleanup(dir);
        } finally {
            for (Map.Entry<String, NodeCgroup> e : cgroups.entrySet()) {
                try {
                    e.getValue().close();
                } catch (IOException | InterruptedException | RuntimeException ex) {
                    System.err.println("cluster: removing node " + e.getKey() + "'s cgroup failed: " + ex);
                }
            }
            HostCleanup.run("kill", "-CONT", Long.toString(etcd.pid())); // a stopped etcd holds SIGTERM
            etcd.close();
        }
    }
}
