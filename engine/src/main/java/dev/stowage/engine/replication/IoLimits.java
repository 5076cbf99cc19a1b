package dev.stowage.engine.replication;

/**
 * Per-volume I/O limits the coordinator enforces: operations per second and bytes per second,
 * 0 meaning unlimited. Changed online by ControllerModifyVolume.
 */
public record IoLimits(long maxIops, long maxBytesPerSecond) {
    public static final IoLimits UNLIMITED = new IoLimits(0, 0);

    public IoLimits {
        if (maxIops < 0 || maxBytesPerSecond < 0) {
            throw new IllegalArgumentException("I/O limits must not be negative: " + maxIops + " IOPS, "
                    + maxBytesPerSecond + " B/s");
        }
    }

    public boolean unlimited() {
        return maxIops == 0 && maxBytesPerSecond == 0;
    }
}
