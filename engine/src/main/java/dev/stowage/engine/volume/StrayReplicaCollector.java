package dev.stowage.engine.volume;

import dev.stowage.engine.cluster.MetadataStore;
import dev.stowage.engine.cluster.MetadataStore.Versioned;
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
 * Deletes, while the node runs, replica data that its pool holds but no volume record assigns to
 * it: a replica that was replaced on another node while this one was away (a node now comes back
 * without restarting, see {@link dev.stowage.engine.cluster.Membership}), or the data of a creation
 * whose creator died before writing the record. {@link StartupReconciliation} runs it once at
 * start with no grace.
 *
 * <p>A creation makes the data first and writes the record after, so data without a record may
 * also be a creation in progress. Data is therefore deleted only once it has been seen unassigned
 * in passes spanning at least {@code grace} (ten minutes in a node), far longer than any creation
 * takes; a pass that finds it assigned forgets it.
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
    /** Local replicas seen unassigned, with when they were first seen so. */
    private final Map<String, Instant> unassignedSince = new HashMap<>();

    StrayReplicaCollector(MetadataStore metadata, ReplicaFleet fleet, String nodeId, Duration grace, Clock clock) {
        this.metadata = metadata;
        this.fleet = fleet;
        this.nodeId = nodeId;
        this.grace = grace;
        this.clock = clock;
    }

    /** One pass; returns the volume ids whose local data it deleted. */
    Set<String> collect() throws IOException {
        Instant now = clock.instant();
        Set<String> local = fleet.localVolumeIds();
        Set<String> assigned = new HashSet<>();
        for (Versioned v : metadata.list(MetadataKeys.VOLUMES)) {
            VolumeRecord r = MetadataProtos.parseVolume(v.key(), v.value());
            if (r.getReplicasList().stream().anyMatch(rep -> rep.getNodeId().equals(nodeId))) {
                assigned.add(r.getId());
            }
        }
        unassignedSince.keySet().removeIf(id -> !local.contains(id) || assigned.contains(id));
        Set<String> deleted = new HashSet<>();
        for (String id : local) {
            if (assigned.contains(id)) {
                continue;
            }
            Instant since = unassignedSince.computeIfAbsent(id, unused -> now);
            if (Duration.between(since, now).compareTo(grace) >= 0) { // with no grace, at once
                LOG.info("deleting replica data of volume {}: no volume record assigns it to node {}{}", id, nodeId,
                        grace.isZero() ? "" : " (none has for " + Duration.between(since, now).toSeconds() + " s)");
                fleet.deleteLocal(id);
                unassignedSince.remove(id);
                deleted.add(id);
            }
        }
        return deleted;
    }

    /** {@link #collect} for a scheduler: failures are logged and the next pass tries again. */
    void collectQuietly() {
        try {
            collect();
        } catch (IOException | RuntimeException e) {
            LOG.warn("looking for replica data no volume record assigns to node {} failed, will retry: {}", nodeId,
                    e.toString());
        }
    }
}
