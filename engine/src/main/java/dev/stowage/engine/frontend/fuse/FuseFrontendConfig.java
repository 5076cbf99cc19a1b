package dev.stowage.engine.frontend.fuse;

import java.nio.file.Path;
import java.util.Objects;

/**
 * Settings of the {@link FuseFrontend}, validated on construction.
 *
 * @param runDirectory  directory holding one mount point file per exported volume, e.g.
 *                      {@code <dataDir>/run/fuse}; created if missing; owned by this process
 * @param threadsPerVolume FUSE server threads per volume, each with its own cloned /dev/fuse fd
 * @param maxWriteBytes largest READ/WRITE request the kernel may send (multiple of 4 KiB, 4 KiB-1 MiB)
 * @param maxBackground requests the kernel keeps in flight to the server for asynchronous direct
 *                      I/O (FUSE's default of 12 would cap a QD32 workload at 12)
 * @param fdKeeperSocket the {@link FuseFdKeeper}'s socket, which keeps the FUSE connections alive
 *                      across a restart of this process; null for none
 */
public record FuseFrontendConfig(Path runDirectory, int threadsPerVolume, int maxWriteBytes, int maxBackground,
        Path fdKeeperSocket) {
    public static final int DEFAULT_THREADS = 4;
    public static final int DEFAULT_MAX_WRITE = 1 << 20;
    public static final int DEFAULT_MAX_BACKGROUND = 128;

    public FuseFrontendConfig {
        Objects.requireNonNull(runDirectory, "runDirectory");
        if (threadsPerVolume < 1 || threadsPerVolume > 64) {
            throw new IllegalArgumentException("threadsPerVolume must be 1..64, was " + threadsPerVolume);
        }
        if (maxWriteBytes < 4096 || maxWriteBytes > (1 << 20) || maxWriteBytes % 4096 != 0) {
            throw new IllegalArgumentException(
                    "maxWriteBytes must be a multiple of 4096 in 4096..1048576, was " + maxWriteBytes);
        }
        if (maxBackground < 1 || maxBackground > 65535) {
            throw new IllegalArgumentException("maxBackground must be 1..65535, was " + maxBackground);
        }
        runDirectory = runDirectory.toAbsolutePath().normalize();
    }

    public FuseFrontendConfig(Path runDirectory, int threadsPerVolume, int maxWriteBytes, int maxBackground) {
        this(runDirectory, threadsPerVolume, maxWriteBytes, maxBackground, null);
    }

    /** Defaults: 4 threads per volume, 1 MiB requests, 128 background requests, no fd keeper. */
    public static FuseFrontendConfig defaults(Path runDirectory) {
        return new FuseFrontendConfig(runDirectory, DEFAULT_THREADS, DEFAULT_MAX_WRITE, DEFAULT_MAX_BACKGROUND);
    }

    public FuseFrontendConfig withThreadsPerVolume(int threads) {
        return new FuseFrontendConfig(runDirectory, threads, maxWriteBytes, maxBackground, fdKeeperSocket);
    }

    public FuseFrontendConfig withFdKeeper(Path socket) {
        return new FuseFrontendConfig(runDirectory, threadsPerVolume, maxWriteBytes, maxBackground, socket);
    }
}
