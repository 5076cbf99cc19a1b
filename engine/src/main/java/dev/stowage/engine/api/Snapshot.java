package dev.stowage.engine.api;

/** A point-in-time, copy-on-write snapshot of a volume. */
public record Snapshot(String id, String name, String sourceVolumeId, long sizeBytes, long createdAtMillis,
                       boolean readyToUse) {}
