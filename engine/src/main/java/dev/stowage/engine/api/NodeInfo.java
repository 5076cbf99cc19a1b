package dev.stowage.engine.api;

import java.util.Map;

/**
 * The node a service runs on: its id, its topology labels (zone, rack, when configured) and how
 * many volumes it can attach at once.
 */
public record NodeInfo(String nodeId, Map<String, String> labels, int maxVolumes) {}
