package dev.stowage.engine.volume;

import dev.stowage.engine.api.Capacity;
import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.NodeInfo;
import dev.stowage.engine.api.Page;
import dev.stowage.engine.api.ReplicaCopy;
import dev.stowage.engine.api.Snapshot;
import dev.stowage.engine.api.StowageException;
import dev.stowage.engine.api.Volume;
import dev.stowage.engine.api.VolumeService;
import dev.stowage.engine.api.VolumeSpec;
import dev.stowage.engine.cluster.ClusterToken;
import dev.stowage.engine.cluster.MetadataStore;
import dev.stowage.engine.cluster.MetadataStore.Versioned;
import dev.stowage.engine.cluster.RevisionMismatchException;
import dev.stowage.engine.frontend.Frontend;
import dev.stowage.engine.replication.Coordinator;
import dev.stowage.engine.replication.IoLimits;
import dev.stowage.engine.storage.StoragePool;
import dev.stowage.proto.metadata.AttachmentRecord;
import dev.stowage.proto.metadata.VolumeRecord;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Clock;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.UnaryOperator;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The volume service of one node that holds every replica itself: volumes live in the node's
 * {@link StoragePool}, their records in a {@link MetadataStore}, and attached volumes are served to
 * the kernel by a {@link Frontend} through a {@link VolumeCoordinator}.
 *
 * <p>Nothing half-made: creating a volume claims its name in metadata first, then makes the replica
 * data, then writes the volume record. A failure undoes the earlier steps; a crash between them is
 * repaired by {@link #start()}, which drops name claims and replica data that have no volume record.
 *
 * <p>Threading: control operations (create, delete, snapshot, attach...) are serialised by one lock;
 * they are rare and short next to I/O, which never takes it. Records are updated by compare-and-set
 * on their revision, so a concurrent writer elsewhere (another node, later) is detected, not overwritten.
 */
public final class LocalVolumeService implements VolumeService, AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(LocalVolumeService.class);
    private static final Pattern VOLUME_ID = Pattern.compile("vol-[0-9a-f-]{36}");
    private static final int MAX_NAME_LENGTH = 256;

    private final VolumeServiceConfig config;
    private final MetadataStore metadata;
    private final ReplicaFleet fleet;
    private final VolumeSizing sizing;
    private final Frontend frontend;
    private final Clock clock;
    private final ReentrantLock lock = new ReentrantLock();
    private final Map<String, Attached> attached = new ConcurrentHashMap<>();
    private volatile boolean ready;
    private final VolumeSnapshots snapshots;
    private final VolumeCreation creation;
    /** Restores replica counts in a cluster; null on a single node. */
    private ReplicaRepairer repairer;
    /** Snapshots and clones made while the source's coordinator holds its writes, here or elsewhere. */
    final HeldCopies heldCopies;

    /** A volume attached on this node: its coordinator and its frontend export. */
    private record Attached(Coordinator coordinator, Frontend.Export export) {}

    /** A single node keeping every replica in its own pool, without a cluster. */
    public LocalVolumeService(VolumeServiceConfig config, MetadataStore metadata, StoragePool pool,
                              Frontend frontend, Clock clock) {
        this(config, metadata, new LocalFleet(config.nodeId(), config.labels(), pool, config.overprovisionRatio()),
                frontend, clock);
    }

    /**
     * A member of a cluster: replicas placed on the cluster's storage nodes and reached over the
     * replication protocol. {@code localPool} and {@code localServer} (the replica server serving
     * it, reached in-process for this node's own replicas) are null on a storage-less node;
     * {@code group} runs the replica connections and belongs to the caller; {@code token} (may be
     * null) is presented to every replica server this node connects to.
     */
    public static LocalVolumeService inCluster(VolumeServiceConfig config, MetadataStore metadata,
                                               dev.stowage.engine.cluster.Membership membership,
                                               StoragePool localPool,
                                               dev.stowage.engine.replication.net.ReplicaServer localServer,
                                               io.netty.channel.EventLoopGroup group,
                                               java.time.Duration requestTimeout, java.time.Duration replicaReplaceTimeout,
                                               long rebuildBytesPerSecond, Frontend frontend, Clock clock,
                                               ClusterToken token) {
        ClusterFleet fleet = new ClusterFleet(config.nodeId(), membership, localPool, localServer, group,
                requestTimeout, config.overprovisionRatio(), token);
        LocalVolumeService service = new LocalVolumeService(config, metadata, fleet, frontend, clock);
        service.repairer = new ReplicaRepairer(fleet,
                new ReplicaRepairer.Config(java.time.Duration.ofSeconds(1), replicaReplaceTimeout, rebuildBytesPerSecond),
                service::attachedCoordinators, service::record, service::updateRecord);
        StrayReplicaCollector strays = new StrayReplicaCollector(metadata, fleet, config.nodeId(),
                StrayReplicaCollector.GRACE, clock);
        service.repairer.also(java.time.Duration.ofMinutes(1), strays::collectQuietly);
        return service;
    }

    private Map<String, Coordinator> attachedCoordinators() {
        Map<String, Coordinator> m = new java.util.HashMap<>();
        attached.forEach((id, a) -> m.put(id, a.coordinator()));
        return m;
    }

    private Optional<VolumeRecord> record(String volumeId) {
        return metadata.get(MetadataKeys.volume(volumeId)).map(v -> MetadataProtos.parseVolume(v.key(), v.value()));
    }

    LocalVolumeService(VolumeServiceConfig config, MetadataStore metadata, ReplicaFleet fleet,
                       Frontend frontend, Clock clock) {
        this.config = config;
        this.metadata = metadata;
        this.fleet = fleet;
        this.sizing = new VolumeSizing(config, metadata, fleet);
        this.frontend = frontend;
        this.clock = clock;
        this.heldCopies = new HeldCopies(config.nodeId(), fleet, lock,
                id -> Optional.ofNullable(attached.get(id)).map(Attached::coordinator), this::requireVolumeRecord);
        this.snapshots = new VolumeSnapshots(this, config.nodeId(), metadata, fleet, clock, lock);
        this.creation = new VolumeCreation(this, config.nodeId(), metadata, fleet, sizing, snapshots, clock, lock);
    }

    /** How this node calls other nodes' coordinators (set once at start-up, before serving). */
    public void usePeers(PeerCoordinators peers) {
        heldCopies.usePeers(peers);
    }

    @Override
    public void copyReplicasHeld(String coordinatorNodeId, String sourceVolumeId, List<String> nodeIds,
                                 ReplicaCopy copy) {
        heldCopies.serve(coordinatorNodeId, sourceVolumeId, nodeIds, copy);
    }

    /**
     * Reconciles metadata with the pool after a restart or crash, then re-attaches the volumes
     * recorded as attached on this node. Call once before serving.
     */
    public void start() throws IOException {
        lock.lock();
        try {
            StartupReconciliation.run(metadata, fleet, config.nodeId());
            reattach();
            ready = true;
            if (repairer != null) {
                repairer.start();
            }
            LOG.info("volume service ready on node {}: {} volumes, {} attached", config.nodeId(),
                    metadata.list(MetadataKeys.VOLUMES).size(), attached.size());
        } finally {
            lock.unlock();
        }
    }

    private void reattach() throws IOException {
        java.util.Set<String> leftovers = new java.util.TreeSet<>(frontend.leftovers());
        for (Versioned v : metadata.list(MetadataKeys.VOLUMES)) {
            VolumeRecord r = MetadataProtos.parseVolume(v.key(), v.value());
            if (r.hasAttachment() && r.getAttachment().getNodeId().equals(config.nodeId())
                    && !r.getAttachment().getDevicePath().isEmpty()) {
                LOG.info("volume {} was attached here as {} before the restart: attaching it again",
                        r.getId(), r.getAttachment().getDevicePath());
                leftovers.remove(r.getId());
                try {
                    attachLocked(r.getId(), true);
                } catch (IOException | RuntimeException e) {
                    // One volume that cannot come back must not keep the node from serving the others;
                    // NodeStage will try again and report the error to its caller. What the earlier
                    // process left of its export goes now, as for any volume not attached again.
                    try {
                        frontend.cleanupStale(r.getId());
                    } catch (IOException | RuntimeException cleanup) {
                        e.addSuppressed(cleanup);
                    }
                    LOG.error("volume {}: attaching it again after the restart failed: {}", r.getId(), e.toString());
                    updateRecord(r.getId(), x -> x.hasAttachment()
                            ? x.toBuilder().setAttachment(x.getAttachment().toBuilder().clearDevicePath()).build() : x);
                }
            }
        }
        // Exports an earlier process left of volumes no longer attached here (they failed over while
        // this node was away, or were detached or deleted): dead FUSE mounts and the loop devices no
        // mount refers to go now; devices a pod's mount still names stay until it is unstaged.
        for (String id : leftovers) {
            try {
                frontend.cleanupStale(id);
            } catch (IOException | RuntimeException e) {
                LOG.warn("volume {}: removing what an earlier process left of its export failed: {}", id, e.toString());
            }
        }
    }

    @Override
    public boolean ready() {
        return ready;
    }

    @Override
    public NodeInfo localNode() {
        return new NodeInfo(config.nodeId(), config.labels(), config.maxVolumes());
    }

    @Override
    public Map<String, String> supportedParameters() {
        return VolumeParameters.SUPPORTED;
    }

    // ---- volumes ----

    @Override
    public Volume createVolume(VolumeSpec spec) {
        return creation.create(spec);
    }

    @Override
    public void deleteVolume(String volumeId) {
        requireId("volume_id", volumeId);
        lock.lock();
        try {
            Optional<Versioned> v = metadata.get(MetadataKeys.volume(volumeId));
            if (v.isEmpty()) {
                return;
            }
            VolumeRecord r = MetadataProtos.parseVolume(v.get().key(), v.get().value());
            if (r.hasAttachment() || attached.containsKey(volumeId)) {
                throw new StowageException(ErrorCode.FAILED_PRECONDITION, "volume " + volumeId
                        + " is published on node " + r.getAttachment().getNodeId() + "; unpublish it first");
            }
            // Record first: a crash after it leaves only data, which start() collects.
            metadata.delete(MetadataKeys.volume(volumeId), v.get().modRevision());
            metadata.get(MetadataKeys.volumeName(r.getName())).ifPresent(this::deleteQuietly);
            fleet.delete(volumeId, VolumeRecords.replicaNodes(r));
            LOG.info("deleted volume {} name={}", volumeId, r.getName());
        } catch (IOException e) {
            throw asStowage(e, "delete volume " + volumeId);
        } finally {
            lock.unlock();
        }
    }

    @Override
    public Optional<Volume> getVolume(String volumeId) {
        requireId("volume_id", volumeId);
        return metadata.get(MetadataKeys.volume(volumeId))
                .map(v -> toVolume(MetadataProtos.parseVolume(v.key(), v.value())));
    }

    @Override
    public Page<Volume> listVolumes(int maxEntries, String startingToken) {
        List<Versioned> all = metadata.list(MetadataKeys.VOLUMES);
        return Pages.page(all, MetadataKeys.VOLUMES, VOLUME_ID, maxEntries, startingToken,
                v -> toVolume(MetadataProtos.parseVolume(v.key(), v.value())));
    }

    @Override
    public long expandVolume(String volumeId, long requiredBytes, long limitBytes) {
        requireId("volume_id", volumeId);
        if (requiredBytes <= 0) {
            throw StowageException.invalid("capacity_range.required_bytes", "must be positive");
        }
        lock.lock();
        try {
            Versioned v = requireVolume(volumeId);
            VolumeRecord r = MetadataProtos.parseVolume(v.key(), v.value());
            if (requiredBytes <= r.getSizeBytes()) {
                return r.getSizeBytes();
            }
            long size = sizing.choose(requiredBytes, limitBytes);
            sizing.requireProvisionable(size, r.getSizeBytes());
            fleet.resize(volumeId, size, VolumeRecords.replicaNodes(r));
            Attached a = attached.get(volumeId);
            if (a != null) {
                a.coordinator().resize(size);
                a.export().refreshSize();
            }
            metadata.put(v.key(), r.toBuilder().setSizeBytes(size).build().toByteArray(), v.modRevision());
            LOG.info("expanded volume {} from {} to {} bytes{}", volumeId, r.getSizeBytes(), size,
                    a != null ? " online" : "");
            return size;
        } catch (IOException e) {
            throw asStowage(e, "expand volume " + volumeId);
        } finally {
            lock.unlock();
        }
    }

    @Override
    public Volume modifyVolume(String volumeId, Map<String, String> mutableParameters) {
        requireId("volume_id", volumeId);
        lock.lock();
        try {
            Versioned v = requireVolume(volumeId);
            VolumeRecord r = MetadataProtos.parseVolume(v.key(), v.value());
            VolumeParameters modified = VolumeParameters.stored(r.getParametersMap()).modify(mutableParameters);
            VolumeRecord updated = r.toBuilder().clearParameters().putAllParameters(modified.asMap()).build();
            if (!updated.equals(r)) {
                metadata.put(v.key(), updated.toByteArray(), v.modRevision());
                Attached a = attached.get(volumeId);
                if (a != null) {
                    a.coordinator().setLimits(modified.limits());
                }
                LOG.info("modified volume {}: limits {} IOPS, {} B/s (0: none){}", volumeId,
                        modified.limits().maxIops(), modified.limits().maxBytesPerSecond(), a != null ? ", online" : "");
            }
            return toVolume(updated);
        } finally {
            lock.unlock();
        }
    }

    // ---- snapshots ----

    @Override
    public Snapshot createSnapshot(String name, String sourceVolumeId) {
        return snapshots.create(name, sourceVolumeId);
    }

    @Override
    public void deleteSnapshot(String snapshotId) {
        snapshots.delete(snapshotId);
    }

    @Override
    public Optional<Snapshot> getSnapshot(String snapshotId) {
        return snapshots.get(snapshotId);
    }

    @Override
    public Page<Snapshot> listSnapshots(String sourceVolumeId, String snapshotId, int maxEntries,
                                        String startingToken) {
        return snapshots.list(sourceVolumeId, snapshotId, maxEntries, startingToken);
    }

    // ---- publication and attachment ----

    @Override
    public Volume publish(String volumeId, String nodeId, boolean readOnly, boolean force) {
        requireId("volume_id", volumeId);
        requireName("node_id", nodeId);
        lock.lock();
        try {
            Versioned v = requireVolume(volumeId);
            if (!nodeExists(nodeId)) {
                throw StowageException.notFound("node", nodeId);
            }
            VolumeRecord r = withoutDeadHolder(MetadataProtos.parseVolume(v.key(), v.value()), nodeId);
            if (r.hasAttachment() && force && !r.getAttachment().getNodeId().equals(nodeId)) {
                LOG.warn("volume {}: publication on live node {} taken over by node {} (forced); its coordinator"
                        + " is fenced at the next attach", volumeId, r.getAttachment().getNodeId(), nodeId);
                r = r.toBuilder().clearAttachment().build();
            }
            if (r.hasAttachment()) {
                AttachmentRecord a = r.getAttachment();
                if (!a.getNodeId().equals(nodeId)) {
                    throw new StowageException(ErrorCode.FAILED_PRECONDITION, "volume " + volumeId
                            + " is published on node " + a.getNodeId() + "; unpublish it there first"
                            + " (or force the take-over if that node is cut off)");
                }
                if (a.getReadOnly() != readOnly) {
                    throw new StowageException(ErrorCode.ALREADY_EXISTS, "readonly", "volume " + volumeId
                            + " is already published on node " + nodeId + " with readonly=" + a.getReadOnly(), null);
                }
                if (a.getStagedOnly()) { // staged here first: now published, so unstaging keeps it
                    r = r.toBuilder().setAttachment(a.toBuilder().setStagedOnly(false)).build();
                    metadata.put(v.key(), r.toByteArray(), v.modRevision());
                }
                return toVolume(r);
            }
            long publishedThere = metadata.list(MetadataKeys.VOLUMES).stream()
                    .map(p -> MetadataProtos.parseVolume(p.key(), p.value()))
                    .filter(p -> p.hasAttachment() && p.getAttachment().getNodeId().equals(nodeId))
                    .count();
            if (publishedThere >= config.maxVolumes()) {
                throw new StowageException(ErrorCode.RESOURCE_EXHAUSTED, "node_id", "node " + nodeId + " already has "
                        + publishedThere + " volumes published, its maximum", null);
            }
            VolumeRecord updated = r.toBuilder()
                    .setAttachment(AttachmentRecord.newBuilder().setNodeId(nodeId).setReadOnly(readOnly))
                    .build();
            metadata.put(v.key(), updated.toByteArray(), v.modRevision());
            LOG.info("published volume {} on node {} readOnly={}", volumeId, nodeId, readOnly);
            return toVolume(updated);
        } finally {
            lock.unlock();
        }
    }

    @Override
    public void unpublish(String volumeId, String nodeId) {
        requireId("volume_id", volumeId);
        lock.lock();
        try {
            Optional<Versioned> v = metadata.get(MetadataKeys.volume(volumeId));
            if (v.isEmpty()) {
                throw StowageException.notFound("volume", volumeId);
            }
            VolumeRecord r = MetadataProtos.parseVolume(v.get().key(), v.get().value());
            if (!r.hasAttachment() || (nodeId != null && !nodeId.isEmpty()
                    && !r.getAttachment().getNodeId().equals(nodeId))) {
                return;
            }
            if (attached.containsKey(volumeId)) {
                throw new StowageException(ErrorCode.FAILED_PRECONDITION, "volume " + volumeId
                        + " is still attached (staged) on node " + r.getAttachment().getNodeId()
                        + "; unstage it first");
            }
            metadata.put(v.get().key(), r.toBuilder().clearAttachment().build().toByteArray(), v.get().modRevision());
            LOG.info("unpublished volume {} from node {}", volumeId, r.getAttachment().getNodeId());
        } finally {
            lock.unlock();
        }
    }

    @Override
    public Path attachDevice(String volumeId) {
        requireId("volume_id", volumeId);
        lock.lock();
        try {
            return attachLocked(volumeId);
        } catch (IOException e) {
            throw asStowage(e, "attach volume " + volumeId);
        } finally {
            lock.unlock();
        }
    }

    private Path attachLocked(String volumeId) throws IOException {
        return attachLocked(volumeId, false);
    }

    /**
     * Attaches {@code volumeId} here under a new epoch. With {@code resume} (after a restart), an
     * export the earlier process left alive is taken over, so that pods using its device go on.
     */
    private Path attachLocked(String volumeId, boolean resume) throws IOException {
        Attached existing = attached.get(volumeId);
        if (existing != null) {
            return existing.export().devicePath();
        }
        if (attached.size() >= config.maxVolumes()) {
            throw new StowageException(ErrorCode.RESOURCE_EXHAUSTED, "node " + config.nodeId() + " already has "
                    + attached.size() + " volumes attached, its maximum");
        }
        Versioned v = requireVolume(volumeId);
        VolumeRecord r = withoutDeadHolder(MetadataProtos.parseVolume(v.key(), v.value()), config.nodeId());
        if (r.hasAttachment() && !r.getAttachment().getNodeId().equals(config.nodeId())) {
            throw new StowageException(ErrorCode.FAILED_PRECONDITION, "volume " + volumeId
                    + " is published on node " + r.getAttachment().getNodeId() + ", not on " + config.nodeId());
        }
        // Take the volume: a new epoch, by compare-and-set, fences any earlier coordinator.
        long epoch = r.getEpoch() + 1;
        AttachmentRecord.Builder attachment = r.hasAttachment() ? r.getAttachment().toBuilder()
                : AttachmentRecord.newBuilder().setNodeId(config.nodeId()).setStagedOnly(true);
        VolumeRecord taken = r.toBuilder().setEpoch(epoch).setAttachment(attachment.clearDevicePath()).build();
        metadata.put(v.key(), taken.toByteArray(), v.modRevision());

        IoLimits limits = VolumeParameters.stored(r.getParametersMap()).limits();
        List<ReplicaFleet.ReplicaView> views = MetadataProtos.toVolume(r, Volume.Condition.healthy()).replicas().stream()
                .map(rep -> new ReplicaFleet.ReplicaView(rep.nodeId(), rep.state())).toList();
        Coordinator coordinator = fleet.open(volumeId, r.getSizeBytes(), epoch, views, limits,
                new RecordedReplicaHealth(metadata, volumeId, epoch));
        Frontend.Export export;
        try {
            Frontend.ExportOptions options =
                    new Frontend.ExportOptions(taken.getAttachment().getReadOnly(), config.exportDirectIo());
            Optional<Frontend.Export> kept = resume ? resumeExport(volumeId, coordinator, options)
                    : Optional.empty();
            if (kept.isPresent()) {
                export = kept.get();
            } else {
                frontend.cleanupStale(volumeId);
                export = frontend.export(volumeId, coordinator, options);
            }
        } catch (IOException | RuntimeException e) {
            try {
                coordinator.close();
                if (!r.hasAttachment()) {
                    // The attachment was only made for this attach: do not leave it as a publication.
                    // Replica states may have changed since (replicas found unreachable): apply to the latest.
                    updateRecord(volumeId, x -> x.getEpoch() == epoch ? x.toBuilder().clearAttachment().build() : x);
                }
            } catch (IOException | RuntimeException cleanup) {
                e.addSuppressed(cleanup);
            }
            throw e;
        }
        attached.put(volumeId, new Attached(coordinator, export));
        String device = export.devicePath().toString();
        // Opening may have recorded replicas as STALE since the epoch was taken: apply to the latest record,
        // unless another node took the volume meanwhile (its epoch then differs and this attach is fenced).
        updateRecord(volumeId, x -> x.getEpoch() == epoch && x.hasAttachment()
                ? x.toBuilder().setAttachment(x.getAttachment().toBuilder().setDevicePath(device)).build() : x);
        LOG.info("attached volume {} on node {} as {} (epoch {})", volumeId, config.nodeId(), export.devicePath(), epoch);
        return export.devicePath();
    }

    @Override
    public void detachDevice(String volumeId) {
        requireId("volume_id", volumeId);
        lock.lock();
        try {
            Attached a = attached.remove(volumeId);
            if (a != null) {
                closeAttached(volumeId, a);
            } else {
                // Not attached here (any more): what a dead process of this node left of an export of
                // the volume goes now that the orchestrator let go of it (e.g. a node that comes back
                // after its volume failed over elsewhere, when its kubelet unstages the lost pod's volume).
                frontend.cleanupStale(volumeId);
            }
            // An attachment that the stage itself took (no ControllerPublish) is given up with it, so
            // that the next stage may be on another node; a published one stays until unpublished.
            updateRecord(volumeId, r -> !r.hasAttachment() || !r.getAttachment().getNodeId().equals(config.nodeId()) ? r
                    : r.getAttachment().getStagedOnly() ? r.toBuilder().clearAttachment().build()
                    : r.toBuilder().setAttachment(r.getAttachment().toBuilder().clearDevicePath()).build());
        } catch (IOException e) {
            throw asStowage(e, "detach volume " + volumeId);
        } finally {
            lock.unlock();
        }
    }

    /** The export an earlier process left alive, taken over; empty if there is none or it cannot be. */
    private Optional<Frontend.Export> resumeExport(String volumeId, Coordinator coordinator,
            Frontend.ExportOptions options) {
        try {
            return frontend.resume(volumeId, coordinator, options);
        } catch (IOException | RuntimeException e) {
            LOG.warn("volume {}: taking over the export an earlier process left failed, exporting anew: {}",
                    volumeId, e.toString());
            return Optional.empty();
        }
    }

    private void closeAttached(String volumeId, Attached a) throws IOException {
        closeAttached(volumeId, a, false);
    }

    /** Ends the export (or, {@code leaving}, leaves it to the next process, see Export#leave) and the coordinator. */
    private void closeAttached(String volumeId, Attached a, boolean leaving) throws IOException {
        IOException failure = null;
        try {
            if (leaving) {
                a.export().leave();
            } else {
                a.export().close();
            }
        } catch (IOException e) {
            failure = e;
        }
        try {
            a.coordinator().close();
        } catch (IOException e) {
            if (failure == null) {
                failure = e;
            } else {
                failure.addSuppressed(e);
            }
        }
        if (failure != null) {
            throw failure;
        }
        LOG.info("detached volume {} from node {}", volumeId, config.nodeId());
    }

    @Override
    public Capacity capacity(Map<String, String> topologySegments) {
        long provisionable = sizing.provisionableBytes(topologySegments);
        return new Capacity(provisionable, Math.min(provisionable, config.maxVolumeBytes()), VolumeSizing.ALIGNMENT);
    }

    @Override
    public boolean nodeExists(String nodeId) {
        return fleet.nodeExists(nodeId);
    }

    /** The coordinator of an attached volume, for tests and metrics. */
    public Optional<Coordinator> coordinator(String volumeId) {
        return Optional.ofNullable(attached.get(volumeId)).map(Attached::coordinator);
    }

    /** Detaches every volume (keeping their records, so that a restart attaches them again). */
    @Override
    public void close() {
        if (repairer != null) {
            repairer.close();
        }
        lock.lock();
        try {
            ready = false;
            for (Map.Entry<String, Attached> e : attached.entrySet()) {
                try {
                    closeAttached(e.getKey(), e.getValue(), true);
                } catch (IOException ex) {
                    LOG.warn("volume {}: detaching on shutdown failed: {}", e.getKey(), ex.getMessage());
                }
            }
            attached.clear();
            fleet.close();
        } finally {
            lock.unlock();
        }
    }

    // ---- helpers ----

    /**
     * The record without its attachment when another node holds it and that node is no longer alive:
     * the new attach takes a newer epoch, which fences the dead node's coordinator.
     */
    private VolumeRecord withoutDeadHolder(VolumeRecord r, String taker) {
        if (r.hasAttachment() && !r.getAttachment().getNodeId().equals(taker)
                && !fleet.nodeAlive(r.getAttachment().getNodeId())) {
            LOG.warn("volume {}: node {} takes it over from node {}, which is no longer alive", r.getId(), taker,
                    r.getAttachment().getNodeId());
            return r.toBuilder().clearAttachment().build();
        }
        return r;
    }

    Volume toVolume(VolumeRecord r) {
        return MetadataProtos.toVolume(r, VolumeConditions.of(r, config.nodeId(), fleet));
    }

    private Versioned requireVolume(String volumeId) {
        return metadata.get(MetadataKeys.volume(volumeId)).orElseThrow(() -> StowageException.notFound("volume", volumeId));
    }

    VolumeRecord requireVolumeRecord(String volumeId) {
        Versioned v = requireVolume(volumeId);
        return MetadataProtos.parseVolume(v.key(), v.value());
    }

    private void updateRecord(String volumeId, UnaryOperator<VolumeRecord> change) {
        VolumeRecords.update(metadata, volumeId, change);
    }

    private void deleteQuietly(Versioned v) {
        VolumeRecords.deleteQuietly(metadata, v);
    }

    static String requireName(String field, String name) {
        if (name == null || name.isEmpty()) {
            throw StowageException.invalid(field, "is required");
        }
        if (name.length() > MAX_NAME_LENGTH) {
            throw StowageException.invalid(field, "is longer than " + MAX_NAME_LENGTH + " characters");
        }
        return name;
    }

    static void requireId(String field, String id) {
        if (id == null || id.isEmpty()) {
            throw StowageException.invalid(field, "is required");
        }
    }

    static StowageException asStowage(Exception e, String what) {
        if (e instanceof StowageException se) {
            return se;
        }
        if (e instanceof RevisionMismatchException rm) {
            return new StowageException(ErrorCode.ABORTED, null, what + ": metadata changed concurrently ("
                    + rm.getMessage() + "); retry", rm);
        }
        return new StowageException(ErrorCode.INTERNAL, null, what + ": " + e.getMessage(), e);
    }

    @Override
    public List<dev.stowage.engine.api.ClusterNode> clusterNodes() {
        return fleet.nodes();
    }
}
