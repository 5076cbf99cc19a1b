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
 * @param pollMicros    how long one server thread of a volume polls for the next request after it
 *                      answered one while no other was busy, before it sleeps; 0 never polls
 *                      (see {@link FuseWorker})
 */
public record FuseFrontendConfig(Path runDirectory, int threadsPerVolume, int maxWriteBytes, int maxBackground,
        Path fdKeeperSocket, int pollMicros) {
    public static final int DEFAULT_THREADS = 4;
    public static final int DEFAULT_MAX_WRITE = 1 << 20;
    public static final int DEFAULT_MAX_BACKGROUND = 128;
    /**
     * Measured on 2 vCPUs (docs/benchmarks.md, "Eleventh session"): an in-memory volume's 4 KiB
     * writes at queue depth 1 took 11-13 µs (p50) with 50 µs of polling against 21-23 µs without;
     * at queue depth 32, where the thread does not poll, nothing changed.
     */
    public static final int DEFAULT_POLL_MICROS = 50;

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
        if (pollMicros < 0 || pollMicros > 10_000) {
            throw new IllegalArgumentException("pollMicros must be 0..10000, was " + pollMicros);
        }
        runDirectory = runDirectory.toAbsolutePath().normalize();
    }

    public FuseFrontendConfig(Path runDirectory, int threadsPerVolume, int maxWriteBytes, int maxBackground) {
        this(runDirectory, threadsPerVolume, maxWriteBytes, maxBackground, null, DEFAULT_POLL_MICROS);
    }

    /** Defaults: 4 threads per volume, 1 MiB requests, 128 background requests, no fd keeper, 50 µs polling. */
    public static FuseFrontendConfig defaults(Path runDirectory) {
        return new FuseFrontendConfig(runDirectory, DEFAULT_THREADS, DEFAULT_MAX_WRITE, DEFAULT_MAX_BACKGROUND);
    }

    public FuseFrontendConfig withThreadsPerVolume(int threads) {
        return new FuseFrontendConfig(runDirectory, threads, maxWriteBytes, maxBackground, fdKeeperSocket, pollMicros);
    }

    public FuseFrontendConfig withFdKeeper(Path socket) {
        return new FuseFrontendConfig(runDirectory, threadsPerVolume, maxWriteBytes, maxBackground, socket, pollMicros);
    }

    public FuseFrontendConfig withPollMicros(int micros) {
        return new FuseFrontendConfig(runDirectory, threadsPerVolume, maxWriteBytes, maxBackground, fdKeeperSocket, micros);
    }
}
