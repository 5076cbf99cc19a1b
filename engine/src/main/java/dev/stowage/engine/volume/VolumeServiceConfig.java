package dev.stowage.engine.volume;

import java.util.Map;

/**
 * Settings of a node's volume service, validated on construction.
 *
 * @param nodeId this node's id, unique in the cluster
 * @param labels topology labels ("zone", "rack") of this node; may be empty
 * @param maxVolumes how many volumes this node attaches at most
 * @param defaultVolumeBytes size of a volume created without a required size
 * @param maxVolumeBytes largest volume the engine creates
 * @param overprovisionRatio how far thin volumes may together exceed the pool's capacity
 * @param exportDirectIo whether the kernel's block device reaches the frontend with direct I/O
 *        (loop device O_DIRECT on the FUSE file); off only to measure the difference
 */
public record VolumeServiceConfig(String nodeId, Map<String, String> labels, int maxVolumes,
                                  long defaultVolumeBytes, long maxVolumeBytes, double overprovisionRatio,
                                  boolean exportDirectIo) {
    public static final long GIB = 1L << 30;

    public VolumeServiceConfig {
        if (nodeId == null || !nodeId.matches("[A-Za-z0-9][A-Za-z0-9._-]{0,252}")) {
            throw new IllegalArgumentException("node id '" + nodeId + "' must be 1-253 letters, digits, '.', '_' or '-'");
        }
        labels = Map.copyOf(labels);
        if (maxVolumes < 1) {
            throw new IllegalArgumentException("max volumes " + maxVolumes + " must be at least 1");
        }
        if (defaultVolumeBytes < 4096 || maxVolumeBytes < defaultVolumeBytes) {
            throw new IllegalArgumentException("volume sizes: default " + defaultVolumeBytes + ", max " + maxVolumeBytes);
        }
        if (!(overprovisionRatio >= 1.0)) {
            throw new IllegalArgumentException("overprovision ratio " + overprovisionRatio + " must be >= 1");
        }
    }

    public static VolumeServiceConfig defaults(String nodeId) {
        return new VolumeServiceConfig(nodeId, Map.of(), 64, GIB, 64L * 1024 * GIB, 4.0, true);
    }
}
