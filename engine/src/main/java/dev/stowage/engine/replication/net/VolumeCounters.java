package dev.stowage.engine.replication.net;

/**
 * What a replica server did for one volume since it started: bytes and requests, for tests and
 * for resync accounting. A snapshot; immutable.
 */
public record VolumeCounters(long requests, long writes, long bytesWritten, long reads, long bytesRead,
                             long flushes) {
}
