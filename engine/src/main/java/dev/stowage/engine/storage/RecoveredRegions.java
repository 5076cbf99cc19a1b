package dev.stowage.engine.storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The regions of one layer that a crash recovery took as written ({@link Layer#settleAfterCrash}),
 * kept durably in {@code <layer>.recovered} until the layer's user has taken note of them.
 *
 * <p>Why: a region marked unsettled at a crash may hold a write that was in flight when its node
 * died. On a replica, such a write may have reached this copy of the volume and not the others
 * (nobody acknowledged it), and nothing else on disk says so: the write's region generation lived
 * in memory only. The replica server reads these regions when it opens the volume, records them
 * as in doubt in its own durable table, and only then forgets them here
 * ({@link ReplicaStore#forgetRegionsRecoveredAfterCrash}). Recovery clears the unsettled marks
 * right after this file is durable, so without it a second crash before the server opened the
 * volume would lose the fact.
 *
 * <p>A recovery in a later boot of the kernel than the crash ({@link BootRecord}) also lost the
 * page cache, and the regions it names are kept as such: a replica's generation of such a region
 * may claim data that never reached the disk.
 *
 * <p>File format: little-endian u64 region numbers, ascending, bit 63 set where the page cache was
 * lost; replaced atomically ({@link DurableFiles#replace}). Absent means none.
 *
 * <p>Threading: callers serialise (the pool at open, the replica server under its volume lock).
 */
final class RecoveredRegions {
    static final String FILE_SUFFIX = ".recovered";

    private RecoveredRegions() {
    }

    static Path path(Path dir, String layerId) {
        return dir.resolve(layerId + FILE_SUFFIX);
    }

    /** Set in a region's entry when its crash also lost the page cache. */
    private static final long PAGE_CACHE_LOST = 1L << 63;

    /**
     * Adds {@code regions} to the layer's file, durably, before the caller clears their marks;
     * {@code pageCacheLost}: the crash also lost the page cache (a region named both ways keeps that).
     */
    static void add(Path dir, String layerId, Iterable<Long> regions, boolean pageCacheLost) throws IOException {
        java.util.TreeMap<Long, Boolean> all = new java.util.TreeMap<>();
        for (long e : entries(dir, layerId)) {
            all.merge(e & ~PAGE_CACHE_LOST, (e & PAGE_CACHE_LOST) != 0, Boolean::logicalOr);
        }
        regions.forEach(r -> all.merge(r, pageCacheLost, Boolean::logicalOr));
        ByteBuffer b = ByteBuffer.allocate(all.size() * 8).order(ByteOrder.LITTLE_ENDIAN);
        all.forEach((r, lost) -> b.putLong(lost ? r | PAGE_CACHE_LOST : r));
        DurableFiles.replace(path(dir, layerId), b.flip());
    }

    /** The layer's recovered regions, ascending; empty if none. */
    static long[] read(Path dir, String layerId) throws IOException {
        return java.util.Arrays.stream(entries(dir, layerId)).map(e -> e & ~PAGE_CACHE_LOST).toArray();
    }

    /** Those of {@link #read}'s regions whose crash also lost the page cache, ascending. */
    static long[] readPageCacheLost(Path dir, String layerId) throws IOException {
        return java.util.Arrays.stream(entries(dir, layerId)).filter(e -> (e & PAGE_CACHE_LOST) != 0)
                .map(e -> e & ~PAGE_CACHE_LOST).toArray();
    }

    private static long[] entries(Path dir, String layerId) throws IOException {
        Path p = path(dir, layerId);
        if (!Files.exists(p)) {
            return new long[0];
        }
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(p)).order(ByteOrder.LITTLE_ENDIAN);
        long[] out = new long[b.remaining() / 8];
        for (int i = 0; i < out.length; i++) {
            out[i] = b.getLong();
        }
        return out;
    }

    /** Forgets the layer's recovered regions (durably: a removal that a crash undoes only repeats work). */
    static void clear(Path dir, String layerId) throws IOException {
        if (Files.deleteIfExists(path(dir, layerId))) {
            DurableFiles.fsyncDirectory(dir);
        }
    }
}
