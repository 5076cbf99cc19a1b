package dev.stowage.engine.volume;

import static dev.stowage.engine.volume.LocalVolumeService.asStowage;
import static dev.stowage.engine.volume.LocalVolumeService.requireName;

import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.ReplicaCopy;
import dev.stowage.engine.api.StowageException;
import dev.stowage.engine.api.Volume;
import dev.stowage.engine.api.VolumeSpec;
import dev.stowage.engine.cluster.MetadataStore;
import dev.stowage.engine.cluster.MetadataStore.Versioned;
import dev.stowage.proto.metadata.SnapshotRecord;
import dev.stowage.proto.metadata.VolumeRecord;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.util.List;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The creation half of {@link LocalVolumeService}'s volume operations: CreateVolume, empty, from a
 * snapshot or as a clone. The name is claimed in the metadata first, the replica data made on the
 * placed nodes, then the record written; a failure undoes every step, and a claim an earlier attempt
 * left without a record is finished under the same id. A second call with the same name and
 * compatible arguments returns the volume made by the first.
 *
 * <p>Threading: runs under the volume service's lock, shared with its other operations.
 */
final class VolumeCreation {
    private static final Logger LOG = LoggerFactory.getLogger(VolumeCreation.class);

    private final LocalVolumeService volumes;
    private final String nodeId;
    private final MetadataStore metadata;
    private final ReplicaFleet fleet;
    private final VolumeSizing sizing;
    private final VolumeSnapshots snapshots;
    private final Clock clock;
    private final ReentrantLock lock;

    VolumeCreation(LocalVolumeService volumes, String nodeId, MetadataStore metadata, ReplicaFleet fleet,
                   VolumeSizing sizing, VolumeSnapshots snapshots, Clock clock, ReentrantLock lock) {
        this.volumes = volumes;
        this.nodeId = nodeId;
        this.metadata = metadata;
        this.fleet = fleet;
        this.sizing = sizing;
        this.snapshots = snapshots;
        this.clock = clock;
        this.lock = lock;
    }

    Volume create(VolumeSpec spec) {
        String name = requireName("name", spec.name());
        long size = sizing.choose(spec.requiredBytes(), spec.limitBytes());
        VolumeParameters params = VolumeParameters.parse(spec.parameters(), spec.mutableParameters());
        lock.lock();
        try {
            Optional<Versioned> claim = metadata.get(MetadataKeys.volumeName(name));
            if (claim.isPresent()) {
                String id = new String(claim.get().value(), StandardCharsets.UTF_8);
                Optional<Versioned> existing = metadata.get(MetadataKeys.volume(id));
                if (existing.isPresent()) {
                    VolumeRecord r = MetadataProtos.parseVolume(existing.get().key(), existing.get().value());
                    checkCompatible(r, spec, params);
                    return volumes.toVolume(r);
                }
                // A claim without a record: an earlier attempt died midway. Finish it under the same id,
                // dropping replica data it may have left (no record, so nothing else references it).
                try {
                    fleet.deleteLocal(id);
                } catch (IOException e) {
                    throw asStowage(e, "create volume " + name);
                }
                size = sizing.forSource(size, spec);
                sizing.requireProvisionable(size, 0);
                return createLocked(id, name, size, params, spec.contentSource(), claim.get().modRevision());
            }
            size = sizing.forSource(size, spec);
            sizing.requireProvisionable(size, 0);
            String id = "vol-" + UUID.randomUUID();
            long claimRevision = metadata.put(MetadataKeys.volumeName(name), id.getBytes(StandardCharsets.UTF_8),
                    MetadataStore.ABSENT);
            return createLocked(id, name, size, params, spec.contentSource(), claimRevision);
        } finally {
            lock.unlock();
        }
    }

    private Volume createLocked(String id, String name, long size, VolumeParameters params,
                                VolumeSpec.ContentSource source, long claimRevision) {
        List<String> nodes = List.of();
        try {
            nodes = makeReplicaData(id, size, params, source);
            VolumeRecord.Builder builder = VolumeRecord.newBuilder()
                    .setId(id).setName(name).setSizeBytes(size).setReplicaCount(params.replicaCount())
                    .setFsType(params.fsType()).putAllParameters(params.asMap())
                    .setEpoch(0);
            nodes.forEach(n -> builder.addReplicas(MetadataProtos.healthyReplica(n)));
            VolumeRecord record = builder
                    .setContentSource(MetadataProtos.encodeSource(source))
                    .setCreatedAtMillis(clock.millis())
                    .build();
            metadata.put(MetadataKeys.volume(id), record.toByteArray(), MetadataStore.ABSENT);
            LOG.info("created volume {} name={} size={} repl={} on nodes {} source={}", id, name, size,
                    params.replicaCount(), nodes, record.getContentSource().isEmpty() ? "none" : record.getContentSource());
            return volumes.toVolume(record);
        } catch (RuntimeException | IOException e) {
            if (!nodes.isEmpty()) {
                try {
                    fleet.delete(id, nodes);
                } catch (IOException cleanup) {
                    e.addSuppressed(cleanup);
                }
            }
            try {
                metadata.delete(MetadataKeys.volumeName(name), claimRevision);
            } catch (RuntimeException cleanup) {
                e.addSuppressed(cleanup);
            }
            throw asStowage(e, "create volume " + name);
        }
    }

    /** Places and creates the replica data; returns the replica nodes. */
    private List<String> makeReplicaData(String id, long size, VolumeParameters params,
                                         VolumeSpec.ContentSource source) throws IOException {
        List<String> sourceNodes = List.of();
        if (source instanceof VolumeSpec.ContentSource.FromSnapshot s) {
            SnapshotRecord snap = snapshots.require(s.snapshotId());
            sourceNodes = snap.getNodeIdsCount() > 0 ? snap.getNodeIdsList() : List.of(nodeId);
            long sourceSize = snap.getSizeBytes();
            if (size < sourceSize) {
                throw new StowageException(ErrorCode.OUT_OF_RANGE, "capacity_range",
                        "capacity_range: " + size + " bytes is smaller than snapshot " + s.snapshotId()
                                + " (" + sourceSize + " bytes)", null);
            }
        } else if (source instanceof VolumeSpec.ContentSource.FromVolume v) {
            VolumeRecord src = volumes.requireVolumeRecord(v.volumeId());
            if (size < src.getSizeBytes()) {
                throw new StowageException(ErrorCode.OUT_OF_RANGE, "capacity_range",
                        "capacity_range: " + size + " bytes is smaller than source volume " + v.volumeId()
                                + " (" + src.getSizeBytes() + " bytes)", null);
            }
            sourceNodes = VolumeRecords.healthyReplicaNodes(src); // a clone of a stale replica would hold stale data
        }
        List<String> nodes = fleet.place(params.replicaCount(), size, sourceNodes, params.zones());
        if (source instanceof VolumeSpec.ContentSource.FromVolume v) {
            // A clone snapshots each source replica first: they must agree, as for a snapshot.
            volumes.heldCopies.copy(v.volumeId(), nodes, new ReplicaCopy.Clone(id, size));
        } else {
            fleet.create(id, size, source, nodes);
        }
        return nodes;
    }

    private void checkCompatible(VolumeRecord r, VolumeSpec spec, VolumeParameters params) {
        long size = r.getSizeBytes();
        boolean sizeOk = size >= spec.requiredBytes() && (spec.limitBytes() == 0 || size <= spec.limitBytes());
        boolean sourceOk = r.getContentSource().equals(MetadataProtos.encodeSource(spec.contentSource()));
        VolumeParameters existing = VolumeParameters.stored(r.getParametersMap());
        // Only what is fixed at creation counts: I/O limits may have been modified since.
        boolean paramsOk = existing.replicaCount() == params.replicaCount() && existing.fsType().equals(params.fsType());
        if (!sizeOk || !sourceOk || !paramsOk) {
            throw new StowageException(ErrorCode.ALREADY_EXISTS, "name", "volume " + r.getName()
                    + " exists as " + r.getId() + " with " + (sizeOk ? (sourceOk ? "other parameters"
                    : "another content source") : "size " + size + " bytes"), null);
        }
    }
}
