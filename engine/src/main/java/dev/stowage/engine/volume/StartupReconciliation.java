package dev.stowage.engine.volume;

import dev.stowage.engine.cluster.MetadataStore;
import dev.stowage.engine.cluster.MetadataStore.Versioned;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Duration;
import java.util.HashSet;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What a node repairs when its volume service starts, so that nothing half-made survives a crash:
 * name claims whose creation never wrote a record, replica data in this node's pool that no record
 * assigns to it (a creation that died midway, or a replica replaced while the node was away), and
 * snapshot claims without a record together with their layers.
 */
final class StartupReconciliation {
    private static final Logger LOG = LoggerFactory.getLogger(StartupReconciliation.class);

    private StartupReconciliation() {}

    static void run(MetadataStore metadata, ReplicaFleet fleet, String nodeId) throws IOException {
        Set<String> recorded = new HashSet<>();
        for (Versioned v : metadata.list(MetadataKeys.VOLUMES)) {
            recorded.add(MetadataProtos.parseVolume(v.key(), v.value()).getId());
        }
        for (Versioned claim : metadata.list(MetadataKeys.VOLUME_NAMES)) {
            String id = new String(claim.value(), StandardCharsets.UTF_8);
            if (!recorded.contains(id)) {
                LOG.info("dropping name claim {} of volume {} whose creation did not complete", claim.key(), id);
                VolumeRecords.deleteQuietly(metadata, claim);
            }
        }
        // Either a creation that died midway, or a replica replaced while this node was away.
        new StrayReplicaCollector(metadata, fleet, nodeId, Duration.ZERO, Clock.systemUTC()).collect();
        Set<String> snapshots = new HashSet<>();
        for (Versioned v : metadata.list(MetadataKeys.SNAPSHOTS)) {
            snapshots.add(v.key().substring(MetadataKeys.SNAPSHOTS.length()));
        }
        for (Versioned claim : metadata.list(MetadataKeys.SNAPSHOT_NAMES)) {
            String id = new String(claim.value(), StandardCharsets.UTF_8);
            if (!snapshots.contains(id)) {
                LOG.info("dropping name claim {} of snapshot {} whose creation did not complete", claim.key(), id);
                VolumeRecords.deleteQuietly(metadata, claim);
                fleet.deleteLocalSnapshot(id);
            }
        }
    }
}
