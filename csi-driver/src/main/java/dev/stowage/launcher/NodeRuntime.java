package dev.stowage.launcher;

import dev.stowage.csi.mount.LinuxMounter;
import dev.stowage.csi.server.CsiServer;
import dev.stowage.csi.server.CsiServerConfig;
import dev.stowage.engine.api.grpc.ManagementServer;
import dev.stowage.engine.api.grpc.ApiToken;
import dev.stowage.engine.cluster.ClusterToken;
import dev.stowage.engine.api.grpc.RemoteVolumeService;
import dev.stowage.engine.cluster.EmbeddedMetadataStore;
import dev.stowage.engine.cluster.Membership;
import dev.stowage.engine.cluster.NodeDescriptor;
import dev.stowage.engine.replication.net.NettyTransport;
import dev.stowage.engine.replication.net.ReplicaServer;
import io.netty.channel.EventLoopGroup;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import dev.stowage.engine.cluster.MetadataStore;
import dev.stowage.engine.cluster.etcd.EtcdMetadataStore;
import dev.stowage.engine.frontend.fuse.FuseFrontend;
import dev.stowage.engine.frontend.fuse.FuseFrontendConfig;
import dev.stowage.engine.storage.FileStoragePool;
import dev.stowage.engine.volume.LocalVolumeService;
import dev.stowage.engine.volume.VolumeServiceConfig;
import java.nio.file.Files;
import java.time.Clock;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.EnumSet;
import java.util.Optional;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A running node: storage pool, metadata store, FUSE frontend, volume service, CSI server and
 * management API (unless --api-listen off), started in that order and closed in the reverse one.
 * A failure during start (an API port already in use included) closes what had started.
 */
public final class NodeRuntime implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(NodeRuntime.class);
    /** How long a dead node stays registered: the failure detection time of the cluster. */
    static final Duration LEASE_TTL = Duration.ofSeconds(3);
    /** Longest wait for one replica request before the replica is declared failed. */
    static final Duration REPLICA_REQUEST_TIMEOUT = Duration.ofSeconds(5);
    private final Deque<AutoCloseable> started = new ArrayDeque<>();
    /** Deadline of a call to another node's management API (a held copy of a volume's replicas). */
    static final Duration PEER_CALL_DEADLINE = Duration.ofMinutes(1);
    private final LocalVolumeService volumes;
    /** This node's cluster membership; null on a single host. */
    private Membership membership;
    /** The cluster's shared secret (--cluster-token-file), or null. */
    private ClusterToken clusterToken;

    private NodeRuntime(NodeOptions options) throws Exception {
        LOG.info("starting stowage {} node: {}", Version.get(), options.describe());
        try {
            Files.createDirectories(options.dataDir());
            // Read first: a bad token file stops the node before anything starts.
            clusterToken = options.clusterTokenFile().map(f -> ClusterToken.read("--cluster-token-file", f)).orElse(null);
            Optional<ApiToken> apiToken = Optional.ofNullable(clusterToken).map(ApiToken::of);
            FileStoragePool pool = null;
            if (!options.storageless()) {
                pool = FileStoragePool.open(options.dataDir().resolve("pool"));
                started.push(pool);
            }
            MetadataStore metadata = options.etcdEndpoints().isEmpty()
                    ? EmbeddedMetadataStore.open(options.dataDir().resolve("metadata"))
                    : EtcdMetadataStore.connect(options.etcdEndpoints(), "");
            started.push(metadata);
            FuseFrontend frontend = new FuseFrontend(FuseFrontendConfig.defaults(options.dataDir().resolve("run/fuse"))
                    .withThreadsPerVolume(options.fuseThreads()).withFdKeeper(options.fuseKeeper().orElse(null))
                    .withPollMicros(options.fusePollMicros()));
            started.push(frontend);
            long maxVolumeBytes = 64L * 1024 * VolumeServiceConfig.GIB;
            if (pool != null) {
                maxVolumeBytes = Math.min(maxVolumeBytes, pool.maxVolumeBytes()); // e.g. 16 TiB files on ext4
            }
            VolumeServiceConfig config = new VolumeServiceConfig(options.nodeId(), options.labels(),
                    options.maxVolumes(), VolumeServiceConfig.GIB, maxVolumeBytes, 4.0, options.loopDirectIo());
            if (options.etcdEndpoints().isEmpty()) {
                volumes = new LocalVolumeService(config, metadata, pool, frontend, Clock.systemUTC());
            } else {
                volumes = joinCluster(options, config, metadata, pool, frontend);
                volumes.usePeers((api, coordinator, source, nodes, copy) -> {
                    try (RemoteVolumeService peer = RemoteVolumeService.connect(api, PEER_CALL_DEADLINE, apiToken)) {
                        peer.copyReplicasHeld(coordinator, source, nodes, copy);
                    }
                });
            }
            started.push(volumes);
            volumes.start();
            Set<CsiServerConfig.Service> services = EnumSet.noneOf(CsiServerConfig.Service.class);
            if (options.csiController()) {
                services.add(CsiServerConfig.Service.CONTROLLER);
            }
            if (options.csiNode()) {
                services.add(CsiServerConfig.Service.NODE);
            }
            CsiServer csi = new CsiServer(new CsiServerConfig("unix://" + options.csiSocket(),
                    CsiServerConfig.DEFAULT_DRIVER_NAME, Version.get(), options.nodeId(), services),
                    volumes, new LinuxMounter());
            csi.start();
            started.push(csi);
            if (options.apiListen().isPresent()) {
                ManagementServer api = ManagementServer.start(options.apiListen().get(), volumes, apiToken);
                started.push(api);
                if (membership != null) {
                    // Other nodes call it to have this node hold the writes of the volumes it attaches.
                    InetSocketAddress replicationListen = options.listen().orElseThrow();
                    if (options.apiListen().get().getAddress().isLoopbackAddress()
                            && !replicationListen.getAddress().isLoopbackAddress()) {
                        LOG.warn("the management API listens on loopback ({}) while peers reach this node at {}:"
                                + " they cannot hold the writes of volumes attached here for their snapshots and"
                                + " clones, which then fail naming this node; set --api-listen to a reachable"
                                + " address", api.endpoint(), replicationListen.getAddress().getHostAddress());
                    } else {
                        membership.updateApiAddress(advertised(api.endpoint(), options));
                    }
                }
                LOG.info("stowage node {} is serving the management API on {}", options.nodeId(), api.endpoint());
            }
            LOG.info("stowage node {} is serving CSI on unix://{}", options.nodeId(), options.csiSocket());
        } catch (Exception e) {
            close();
            throw e;
        }
    }

    /**
     * Starts this node's replica server (unless storage-less), registers it in the cluster and
     * builds the cluster's volume service on top.
     */
    private LocalVolumeService joinCluster(NodeOptions options, VolumeServiceConfig config, MetadataStore metadata,
                                           FileStoragePool pool, FuseFrontend frontend) throws Exception {
        InetSocketAddress listen = options.listen().orElseThrow();
        String address = listen.getAddress().getHostAddress() + ":" + listen.getPort();
        NodeDescriptor self;
        ReplicaServer server = null;
        if (pool != null) {
            server = ReplicaServer.start(listen, pool, options.dataDir().resolve("replication"), clusterToken);
            started.push(server);
            address = listen.getAddress().getHostAddress() + ":" + server.port();
            self = NodeDescriptor.storage(options.nodeId(), address, options.labels(), pool.capacityBytes(),
                    pool.freeBytes());
        } else {
            self = NodeDescriptor.storageless(options.nodeId(), address, options.labels());
        }
        membership = joinWithRetry(metadata, self);
        started.push(membership);
        EventLoopGroup group = NettyTransport.newEventLoopGroup(2, "replica-client");
        started.push(() -> group.shutdownGracefully(0, 2, TimeUnit.SECONDS).syncUninterruptibly());
        LOG.info("node {} joined the cluster as {} at {}", options.nodeId(),
                pool == null ? "a storage-less node" : "a storage node", address);
        return LocalVolumeService.inCluster(config, metadata, membership, pool, server, group, REPLICA_REQUEST_TIMEOUT,
                options.replicaReplaceTimeout(), options.rebuildBytesPerSecond(), frontend, Clock.systemUTC(), clusterToken);
    }

    /**
     * The management API's address as other nodes reach it: a wildcard listen address (0.0.0.0, ::)
     * is replaced by the host of the replication address, which peers already reach.
     */
    private static String advertised(String apiEndpoint, NodeOptions options) {
        int colon = apiEndpoint.lastIndexOf(':');
        String host = apiEndpoint.substring(0, colon);
        if (!host.equals("0.0.0.0") && !host.equals("[::]") && !host.equals("[0:0:0:0:0:0:0:0]")) {
            return apiEndpoint;
        }
        String replicaHost = options.listen().orElseThrow().getAddress().getHostAddress();
        return (replicaHost.contains(":") ? "[" + replicaHost + "]" : replicaHost) + apiEndpoint.substring(colon);
    }

    /**
     * A node that restarts right after a crash finds its previous registration still held by the
     * dead process's lease until the lease expires: wait for that, a few seconds at most.
     */
    private static Membership joinWithRetry(MetadataStore metadata, NodeDescriptor self) throws InterruptedException {
        long deadline = System.nanoTime() + LEASE_TTL.multipliedBy(3).toNanos();
        while (true) {
            try {
                return Membership.join(metadata, self, LEASE_TTL);
            } catch (IllegalStateException e) {
                if (System.nanoTime() > deadline) {
                    throw e;
                }
                LOG.info("node id {} is still registered by an earlier process; waiting for its lease to expire",
                        self.id());
                Thread.sleep(500);
            }
        }
    }

    public static NodeRuntime start(NodeOptions options) throws Exception {
        return new NodeRuntime(options);
    }

    public LocalVolumeService volumes() {
        return volumes;
    }

    @Override
    public void close() {
        while (!started.isEmpty()) {
            AutoCloseable c = started.pop();
            try {
                c.close();
            } catch (Exception e) {
                LOG.warn("stopping {} failed: {}", c.getClass().getSimpleName(), e.toString());
            }
        }
    }
}
