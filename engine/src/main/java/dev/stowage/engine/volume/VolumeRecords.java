package dev.stowage.engine.volume;

import dev.stowage.engine.cluster.MetadataStore;
import dev.stowage.engine.cluster.MetadataStore.Versioned;
import dev.stowage.engine.cluster.RevisionMismatchException;
import dev.stowage.proto.metadata.ReplicaRecord;
import dev.stowage.proto.metadata.ReplicaState;
import dev.stowage.proto.metadata.VolumeRecord;
import java.util.List;
import java.util.Optional;
import java.util.function.UnaryOperator;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Compare-and-set changes to volume records and name claims, shared by everything that edits them. */
final class VolumeRecords {
    private static final Logger LOG = LoggerFactory.getLogger(VolumeRecords.class);

    private VolumeRecords() {}

    /**
     * Applies {@code change} to a volume's record by compare-and-set, re-reading and retrying when the
     * record changed meanwhile; a missing record is left missing. {@code change} may throw to refuse.
     */
    static void update(MetadataStore metadata, String volumeId, UnaryOperator<VolumeRecord> change) {
        for (int attempt = 0; ; attempt++) {
            Optional<Versioned> v = metadata.get(MetadataKeys.volume(volumeId));
            if (v.isEmpty()) {
                return;
            }
            VolumeRecord r = MetadataProtos.parseVolume(v.get().key(), v.get().value());
            VolumeRecord updated = change.apply(r);
            if (updated.equals(r)) {
                return;
            }
            try {
                metadata.put(v.get().key(), updated.toByteArray(), v.get().modRevision());
                return;
            } catch (RevisionMismatchException e) {
                if (attempt >= 5) {
                    throw e;
                }
            }
        }
    }

    /** The nodes of every replica of {@code r}, whatever their state. */
    static List<String> replicaNodes(VolumeRecord r) {
        return r.getReplicasList().stream().map(ReplicaRecord::getNodeId).toList();
    }

    /** The nodes of {@code r}'s HEALTHY replicas: the ones that hold every acknowledged write. */
    static List<String> healthyReplicaNodes(VolumeRecord r) {
        return r.getReplicasList().stream().filter(rep -> rep.getState() == ReplicaState.HEALTHY)
                .map(ReplicaRecord::getNodeId).toList();
    }

    /** Deletes {@code v} unless it changed since it was read; a changed key is left as it is. */
    static void deleteQuietly(MetadataStore metadata, Versioned v) {
        try {
            metadata.delete(v.key(), v.modRevision());
        } catch (RevisionMismatchException e) {
            LOG.debug("{} changed while being removed: left as it is", v.key());
        }
    }
}
