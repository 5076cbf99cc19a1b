package dev.stowage.engine.volume;

import dev.stowage.engine.api.Volume;
import dev.stowage.proto.metadata.ReplicaState;
import dev.stowage.proto.metadata.VolumeRecord;
import java.io.IOException;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** A volume's health as CSI's VolumeCondition reports it, derived from its record and this node's pool. */
final class VolumeConditions {
    private static final Logger LOG = LoggerFactory.getLogger(VolumeConditions.class);

    private VolumeConditions() {}

    /** Abnormal when a replica is not healthy, or when this node should hold data it does not have. */
    static Volume.Condition of(VolumeRecord r, String nodeId, ReplicaFleet fleet) {
        List<String> unhealthy = r.getReplicasList().stream()
                .filter(rep -> rep.getState() != ReplicaState.HEALTHY)
                .map(rep -> rep.getNodeId() + " " + rep.getState()).toList();
        if (!unhealthy.isEmpty()) {
            return new Volume.Condition(true, (r.getReplicasCount() - unhealthy.size()) + " of "
                    + r.getReplicasCount() + " replicas healthy; " + String.join(", ", unhealthy));
        }
        boolean heldHere = r.getReplicasList().stream().anyMatch(rep -> rep.getNodeId().equals(nodeId));
        if (heldHere) {
            try {
                if (!fleet.localVolumeIds().contains(r.getId())) {
                    return new Volume.Condition(true, "replica data of volume " + r.getId()
                            + " is missing on node " + nodeId);
                }
            } catch (IOException e) {
                LOG.warn("cannot list the storage pool: {}", e.getMessage());
                return new Volume.Condition(true, "storage pool of node " + nodeId + " is unreadable");
            }
        }
        return Volume.Condition.healthy();
    }
}
