package dev.stowage.engine.volume;

import dev.stowage.engine.cluster.MetadataStore;
import dev.stowage.engine.cluster.MetadataStore.Versioned;
import dev.stowage.proto.metadata.SnapshotRecord;
import dev.stowage.proto.metadata.VolumeRecord;
import java.io.IOException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Deletes, while the node runs, data that its pool holds but no record assigns to it:
 * <ul>
 *   <li>replica data that no volume record assigns to this node: a replica that was replaced on
 *       another node while this one was away (a node now comes back without restarting, see
 *       {@link dev.stowage.engine.cluster.Membership}), or the data of a creation whose creator died
 *       before writing the record;</li>
 *   <li>snapshot layers that no snapshot record names this node a holder of: a snapshot whose
 *       creator died before writing its record on a node that did not restart, or one that a held
 *       copy finished on the attached node after its caller had given up and undone it
 *       (docs/replication.md).</li>
 * </ul>
 * {@link StartupReconciliation} runs it once at start with no grace.
 *
 * <p>A creation makes the data first and writes the record after, so data without a record may
 * also be a creation in progress. Data is therefore deleted only once it has been seen unassigned
 * in passes spanning at least {@code grace} (ten minutes in a node), far longer than any creation
 * takes; a pass that finds it assigned forgets it. A snapshot record without holder nodes (written
 * before records named them) counts as naming every node.
 *
 * <p>Threading: one caller at a time (the node's repair thread).
 */
final class StrayReplicaCollector {
    private static final Logger LOG = LoggerFactory.getLogger(StrayReplicaCollector.class);
    static final Duration GRACE = Duration.ofMinutes(10);

    private final MetadataStore metadata;
    private final ReplicaFleet fleet;
    private final String nodeId;
    private final Duration grace;
    private final Clock clock;
    /** Local replica data, and local snapshot layers, that no record assigns to this node. */
    private final Strays replicas;
    private final Strays snapshots;

    StrayReplicaCollector(MetadataStore metadata, ReplicaFleet fleet, String nodeId, Duration grace, Clock clock) {
        this.metadata = metadata;
        this.fleet = fleet;
        this.nodeId = nodeId;
        this.grace = grace;
        this.clock = clock;
        this.replicas = new Strays("replica data of volume", "no volume record assigns it", fleet::deleteLocal);
        this.snapshots = new Strays("layers of snapshot", "no snapshot record names it held",
                fleet::deleteLocalSnapshot);
    }

    /** One pass; returns the volume and snapshot ids whose local data it deleted. */
    Set<String> collect() throws IOException {
        Instant now = clock.instant();
        Set<String> assigned = new HashSet<>();
        for (Versioned v : metadata.list(MetadataKeys.VOLUMES)) {
            VolumeRecord r = MetadataProtos.parseVolume(v.key(), v.value());
            if (r.getReplicasList().stream().anyMatch(rep -> rep.getNodeId().equals(nodeId))) {
                assigned.add(r.getId());
            }
        }
        Set<String> deleted = new HashSet<>();
        replicas.sweep(fleet.localVolumeIds(), assigned, now, deleted);
        // Snapshots after volumes: a volume record lists its replicas before a snapshot of it exists.
        Set<String> held = new HashSet<>();
        for (Versioned v : metadata.list(MetadataKeys.SNAPSHOTS)) {
            SnapshotRecord r = MetadataProtos.parseSnapshot(v.key(), v.value());
            if (r.getNodeIdsCount() == 0 || r.getNodeIdsList().contains(nodeId)) {
                held.add(r.getId());
            }
        }
        snapshots.sweep(fleet.localSnapshotIds(), held, now, deleted);
        return deleted;
    }

    private interface Deleter {
        void delete(String id) throws IOException;
    }

    /** One kind of local data: what of it was seen unrecorded, since when, and how it is deleted. */
    private final class Strays {
        private final String what;
        private final String why;
        private final Deleter deleter;
        private final Map<String, Instant> unrecordedSince = new HashMap<>();

        Strays(String what, String why, Deleter deleter) {
            this.what = what;
            this.why = why;
            this.deleter = deleter;
        }

        /** Deletes the ids of {@code local} not in {@code recorded} for the grace; adds them to {@code deleted}. */
        void sweep(Set<String> local, Set<String> recorded, Instant now, Set<String> deleted) throws IOException {
            unrecordedSince.keySet().removeIf(id -> !local.contains(id) || recorded.contains(id));
            for (String id : local) {
                if (recorded.contains(id)) {
                    continue;
                }
                Instant first = unrecordedSince.computeIfAbsent(id, unused -> now);
                if (Duration.between(first, now).compareTo(grace) >= 0) { // with no grace, at once
                    LOG.info("deleting {} {}: {} on node {}{}", what, id, why, nodeId, grace.isZero() ? ""
                            : " (none has for " + Duration.between(first, now).toSeconds() + " s)");
                    deleter.delete(id);
                    unrecordedSince.remove(id);
                    deleted.add(id);
                }
            }
        }
    }

    /** {@link #collect} for a scheduler: failures are logged and the next pass tries again. */
    void collectQuietly() {
        try {
            collect();
        } catch (IOException | RuntimeException e) {
            LOG.warn("looking for replica data and snapshot layers no record assigns to node {} failed, will retry: {}", nodeId,
                    e.toString());
        }
    }
}
