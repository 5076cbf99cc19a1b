package dev.stowage.launcher;

import dev.stowage.csi.mount.LinuxMounter;
import dev.stowage.csi.server.CsiServer;
import dev.stowage.csi.server.CsiServerConfig;
import dev.stowage.engine.api.grpc.ManagementServer;
import dev.stowage.engine.cluster.EmbeddedMetadataStore;
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
    private final Deque<AutoCloseable> started = new ArrayDeque<>();
    private final LocalVolumeService volumes;

    private NodeRuntime(NodeOptions options) throws Exception {
        LOG.info("starting stowage {} node: {}", Version.get(), options.describe());
        try {
            Files.createDirectories(options.dataDir());
            FileStoragePool pool = FileStoragePool.open(options.dataDir().resolve("pool"));
            started.push(pool);
            MetadataStore metadata = options.etcdEndpoints().isEmpty()
                    ? EmbeddedMetadataStore.open(options.dataDir().resolve("metadata"))
                    : EtcdMetadataStore.connect(options.etcdEndpoints(), "");
            started.push(metadata);
            FuseFrontend frontend = new FuseFrontend(FuseFrontendConfig.defaults(options.dataDir().resolve("run/fuse"))
                    .withThreadsPerVolume(options.fuseThreads()));
            started.push(frontend);
            VolumeServiceConfig config = new VolumeServiceConfig(options.nodeId(), options.labels(),
                    options.maxVolumes(), VolumeServiceConfig.GIB, 64L * 1024 * VolumeServiceConfig.GIB, 4.0,
                    options.loopDirectIo());
            volumes = new LocalVolumeService(config, metadata, pool, frontend, Clock.systemUTC());
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
                ManagementServer api = ManagementServer.start(options.apiListen().get(), volumes);
                started.push(api);
                LOG.info("stowage node {} is serving the management API on {}", options.nodeId(), api.endpoint());
            }
            LOG.info("stowage node {} is serving CSI on unix://{}", options.nodeId(), options.csiSocket());
        } catch (Exception e) {
            close();
            throw e;
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
