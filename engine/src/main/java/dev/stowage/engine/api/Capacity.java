package dev.stowage.engine.api;

/** Space a new volume may use, and the largest volume that can be created now. */
public record Capacity(long availableBytes, long maximumVolumeBytes, long minimumVolumeBytes) {}
