package dev.stowage.engine.api;

/**
 * A copy of a volume's replicas that every replica must make at the same point of the volume's
 * writes: a snapshot layer, or a clone. Made by the node that coordinates the volume while it holds
 * the volume's writes ({@link VolumeService#copyReplicasHeld}), so that no write lands in one
 * replica's copy and not in another's (docs/replication.md, invariant 9).
 */
public sealed interface ReplicaCopy {

    /** A copy-on-write snapshot layer named {@code snapshotId} on each replica node. */
    record Snapshot(String snapshotId) implements ReplicaCopy {}

    /** A new volume {@code volumeId} of {@code sizeBytes} on each replica node, cloned from the source there. */
    record Clone(String volumeId, long sizeBytes) implements ReplicaCopy {}
}
