package dev.stowage.engine.volume;

import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.StowageException;
import dev.stowage.engine.cluster.MetadataStore;
import dev.stowage.engine.replication.ReplicatedCoordinator;
import dev.stowage.proto.metadata.ReplicaRecord;
import dev.stowage.proto.metadata.ReplicaState;
import dev.stowage.proto.metadata.VolumeRecord;
import java.io.IOException;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Replica state changes of one attached volume, recorded by compare-and-set on its record in the
 * metadata store: what a coordinator calls before it acknowledges anything that depends on them.
 * Every change is refused once the record carries a newer epoch than the coordinator's (another node
 * took the volume), so a fenced coordinator cannot touch its successor's record.
 *
 * <p>Threading: thread-safe; each call blocks until the change is durable in the metadata store.
 */
final class RecordedReplicaHealth implements ReplicatedCoordinator.ReplicaHealth {
    private static final Logger LOG = LoggerFactory.getLogger(RecordedReplicaHealth.class);
    private final MetadataStore metadata;
    private final String volumeId;
    private final long epoch;

    /** Changes made for the coordinator of {@code epoch}; refused once the volume has a newer one. */
    RecordedReplicaHealth(MetadataStore metadata, String volumeId, long epoch) {
        this.metadata = metadata;
        this.volumeId = volumeId;
        this.epoch = epoch;
    }

    @Override
    public void markStale(String nodeId, Throwable cause) throws IOException {
        set(nodeId, ReplicaState.STALE);
        LOG.warn("volume {}: replica on node {} is STALE: {}", volumeId, nodeId, cause.getMessage());
    }

    @Override
    public void markRebuilding(String nodeId) throws IOException {
        set(nodeId, ReplicaState.REBUILDING);
        LOG.info("volume {}: replica on node {} is REBUILDING", volumeId, nodeId);
    }

    @Override
    public void markHealthy(String nodeId) throws IOException {
        set(nodeId, ReplicaState.HEALTHY);
        LOG.info("volume {}: replica on node {} is HEALTHY", volumeId, nodeId);
    }

    @Override
    public void rebuildProgress(String nodeId, int percent) throws IOException {
        change("recording rebuild progress of " + nodeId, b -> {
            for (int i = 0; i < b.getReplicasCount(); i++) {
                if (b.getReplicas(i).getNodeId().equals(nodeId)) {
                    b.setReplicas(i, b.getReplicas(i).toBuilder().setProgressPercent(percent));
                }
            }
        });
    }

    private void set(String nodeId, ReplicaState state) throws IOException {
        change("recording replica " + nodeId + " as " + state, b -> {
            boolean found = false;
            for (int i = 0; i < b.getReplicasCount(); i++) {
                if (b.getReplicas(i).getNodeId().equals(nodeId)) {
                    b.setReplicas(i, b.getReplicas(i).toBuilder().setState(state).setProgressPercent(0));
                    found = true;
                }
            }
            if (!found) {
                b.addReplicas(ReplicaRecord.newBuilder().setNodeId(nodeId).setState(state));
            }
        });
    }

    /** Applies {@code edit} to the record if it still belongs to this coordinator's epoch. */
    private void change(String what, Consumer<VolumeRecord.Builder> edit) throws IOException {
        try {
            VolumeRecords.update(metadata, volumeId, r -> {
                if (r.getEpoch() != epoch) {
                    // A coordinator fenced by a newer attach must not touch the record its successor owns.
                    throw new StowageException(ErrorCode.FAILED_PRECONDITION, "volume " + volumeId
                            + " belongs to epoch " + r.getEpoch() + " now, not " + epoch);
                }
                VolumeRecord.Builder b = r.toBuilder();
                edit.accept(b);
                return b.build();
            });
        } catch (RuntimeException e) {
            // The change is not on record: the caller must not acknowledge what depends on it.
            throw new IOException("volume " + volumeId + ": " + what + " failed: " + e.getMessage(), e);
        }
    }
}
