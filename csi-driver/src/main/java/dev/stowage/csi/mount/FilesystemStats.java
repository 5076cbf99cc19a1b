package dev.stowage.csi.mount;

/**
 * Usage of a mounted filesystem as statfs reports it: bytes and inodes. Values the filesystem does
 * not report are 0.
 */
public record FilesystemStats(long totalBytes, long availableBytes, long usedBytes,
                              long totalInodes, long freeInodes, long usedInodes) {}
