package dev.stowage.engine.volume;

import static dev.stowage.engine.volume.LocalVolumeService.asStowage;
import static dev.stowage.engine.volume.LocalVolumeService.requireId;
import static dev.stowage.engine.volume.LocalVolumeService.requireName;

import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.Page;
import dev.stowage.engine.api.ReplicaCopy;
import dev.stowage.engine.api.Snapshot;
import dev.stowage.engine.api.StowageException;
import dev.stowage.engine.cluster.MetadataStore;
import dev.stowage.engine.cluster.MetadataStore.Versioned;
import dev.stowage.proto.metadata.SnapshotRecord;
import dev.stowage.proto.metadata.VolumeRecord;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.locks.ReentrantLock;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The snapshot half of {@link LocalVolumeService}: creating, deleting, finding and listing snapshots.
 * A snapshot is a copy-on-write layer frozen on every node that holds a healthy replica of the source
 * (the record names those nodes), taken while the source's coordinator holds its writes, on this node
 * or on the node the source is attached to (docs/replication.md, invariant 9). Creation claims the name first and undoes every step on a
 * failure, so nothing half-made is left.
 *
 * <p>Threading: changes run under the volume service's lock, shared with its volume operations.
 */
final class VolumeSnapshots {
    private static final Logger LOG = LoggerFactory.getLogger(VolumeSnapshots.class);
    private static final Pattern SNAPSHOT_ID = Pattern.compile("snap-[0-9a-f-]{36}");

    private final LocalVolumeService volumes;
    private final String nodeId;
    private final MetadataStore metadata;
    private final ReplicaFleet fleet;
    private final Clock clock;
    private final ReentrantLock lock;

    VolumeSnapshots(LocalVolumeService volumes, String nodeId, MetadataStore metadata, ReplicaFleet fleet,
                    Clock clock, ReentrantLock lock) {
        this.volumes = volumes;
        this.nodeId = nodeId;
        this.metadata = metadata;
        this.fleet = fleet;
        this.clock = clock;
        this.lock = lock;
    }

    Snapshot create(String name, String sourceVolumeId) {
        requireName("name", name);
        requireId("source_volume_id", sourceVolumeId);
        lock.lock();
        try {
            Optional<Versioned> claim = metadata.get(MetadataKeys.snapshotName(name));
            if (claim.isPresent()) {
                String id = new String(claim.get().value(), StandardCharsets.UTF_8);
                Optional<Versioned> existing = metadata.get(MetadataKeys.snapshot(id));
                if (existing.isPresent()) {
                    SnapshotRecord s = MetadataProtos.parseSnapshot(existing.get().key(), existing.get().value());
                    if (!s.getSourceVolumeId().equals(sourceVolumeId)) {
                        throw new StowageException(ErrorCode.ALREADY_EXISTS, "name", "snapshot " + name
                                + " exists as " + id + " of volume " + s.getSourceVolumeId(), null);
                    }
                    return MetadataProtos.toSnapshot(s);
                }
                VolumeRecords.deleteQuietly(metadata, claim.get());
                fleet.deleteLocalSnapshot(id);
            }
            VolumeRecord source = volumes.requireVolumeRecord(sourceVolumeId);
            String id = "snap-" + UUID.randomUUID();
            long claimRevision = metadata.put(MetadataKeys.snapshotName(name), id.getBytes(StandardCharsets.UTF_8),
                    MetadataStore.ABSENT);
            boolean taken = false;
            // Only healthy replicas hold every acknowledged write: a snapshot of a stale or rebuilding
            // one would give a volume restored from it replicas that disagree.
            List<String> holders = VolumeRecords.healthyReplicaNodes(source);
            try {
                if (holders.isEmpty()) {
                    throw new StowageException(ErrorCode.UNAVAILABLE, "volume " + sourceVolumeId
                            + " has no healthy replica to snapshot; retry once it has recovered");
                }
                volumes.heldCopies.copy(sourceVolumeId, holders, new ReplicaCopy.Snapshot(id));
                taken = true;
                SnapshotRecord record = SnapshotRecord.newBuilder().setId(id).setName(name)
                        .setSourceVolumeId(sourceVolumeId).setSizeBytes(source.getSizeBytes())
                        .setCreatedAtMillis(clock.millis()).setReady(true)
                        .addAllNodeIds(holders).build();
                metadata.put(MetadataKeys.snapshot(id), record.toByteArray(), MetadataStore.ABSENT);
                LOG.info("created snapshot {} name={} of volume {}", id, name, sourceVolumeId);
                return MetadataProtos.toSnapshot(record);
            } catch (RuntimeException | IOException e) {
                if (taken) {
                    try {
                        fleet.deleteSnapshot(id, holders);
                    } catch (IOException cleanup) {
                        e.addSuppressed(cleanup);
                    }
                }
                metadata.delete(MetadataKeys.snapshotName(name), claimRevision);
                throw e;
            }
        } catch (IOException e) {
            throw asStowage(e, "snapshot volume " + sourceVolumeId);
        } finally {
            lock.unlock();
        }
    }

    void delete(String snapshotId) {
        requireId("snapshot_id", snapshotId);
        lock.lock();
        try {
            Optional<Versioned> v = metadata.get(MetadataKeys.snapshot(snapshotId));
            if (v.isEmpty()) {
                return;
            }
            SnapshotRecord s = MetadataProtos.parseSnapshot(v.get().key(), v.get().value());
            metadata.delete(v.get().key(), v.get().modRevision());
            metadata.get(MetadataKeys.snapshotName(s.getName())).ifPresent(c -> VolumeRecords.deleteQuietly(metadata, c));
            fleet.deleteSnapshot(snapshotId, s.getNodeIdsCount() > 0 ? s.getNodeIdsList() : List.of(nodeId));
            LOG.info("deleted snapshot {} name={}", snapshotId, s.getName());
        } catch (IOException e) {
            throw asStowage(e, "delete snapshot " + snapshotId);
        } finally {
            lock.unlock();
        }
    }

    Optional<Snapshot> get(String snapshotId) {
        requireId("snapshot_id", snapshotId);
        return metadata.get(MetadataKeys.snapshot(snapshotId))
                .map(v -> MetadataProtos.toSnapshot(MetadataProtos.parseSnapshot(v.key(), v.value())));
    }

    Page<Snapshot> list(String sourceVolumeId, String snapshotId, int maxEntries, String startingToken) {
        List<Versioned> all = metadata.list(MetadataKeys.SNAPSHOTS);
        List<Versioned> matching = new ArrayList<>();
        for (Versioned v : all) {
            SnapshotRecord s = MetadataProtos.parseSnapshot(v.key(), v.value());
            if ((sourceVolumeId == null || sourceVolumeId.isEmpty() || s.getSourceVolumeId().equals(sourceVolumeId))
                    && (snapshotId == null || snapshotId.isEmpty() || s.getId().equals(snapshotId))) {
                matching.add(v);
            }
        }
        return Pages.page(matching, MetadataKeys.SNAPSHOTS, SNAPSHOT_ID, maxEntries, startingToken,
                v -> MetadataProtos.toSnapshot(MetadataProtos.parseSnapshot(v.key(), v.value())));
    }

    /** The record of {@code snapshotId}; NOT_FOUND naming it if there is none. */
    SnapshotRecord require(String snapshotId) {
        Versioned v = metadata.get(MetadataKeys.snapshot(snapshotId))
                .orElseThrow(() -> StowageException.notFound("snapshot", snapshotId));
        return MetadataProtos.parseSnapshot(v.key(), v.value());
    }
}
