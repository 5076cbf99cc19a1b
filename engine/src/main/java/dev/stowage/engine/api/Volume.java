package dev.stowage.engine.api;

import java.util.List;
import java.util.Map;
import java.util.Optional;

/** A volume as the engine reports it. */
public record Volume(String id, String name, long sizeBytes, int replicaCount, String fsType,
                     Map<String, String> parameters, VolumeSpec.ContentSource contentSource,
                     List<Replica> replicas, long epoch, Optional<Attachment> attachment,
                     Condition condition) {

    /** A replica: its node, its state and, while REBUILDING, how far the copy has come (0-100). */
    public record Replica(String nodeId, ReplicaState state, int progressPercent) {
        public Replica(String nodeId, ReplicaState state) {
            this(nodeId, state, state == ReplicaState.HEALTHY ? 100 : 0);
        }
    }

    public enum ReplicaState { HEALTHY, STALE, REBUILDING }

    /** Where the volume is published and, once a node attached it, its block device there. */
    public record Attachment(String nodeId, boolean readOnly, Optional<String> devicePath) {}

    /** Health as CSI's VolumeCondition reports it. */
    public record Condition(boolean abnormal, String message) {
        public static Condition healthy() {
            return new Condition(false, "healthy");
        }
    }
}
