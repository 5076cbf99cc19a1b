package dev.stowage.engine.storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.TreeSet;

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
 * <p>File format: little-endian u64 region numbers, ascending; replaced atomically
 * ({@link DurableFiles#replace}). Absent means none.
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

    /** Adds {@code regions} to the layer's file, durably, before the caller clears their marks. */
    static void add(Path dir, String layerId, Iterable<Long> regions) throws IOException {
        TreeSet<Long> all = new TreeSet<>();
        for (long r : read(dir, layerId)) {
            all.add(r);
        }
        regions.forEach(all::add);
        ByteBuffer b = ByteBuffer.allocate(all.size() * 8).order(ByteOrder.LITTLE_ENDIAN);
        all.forEach(b::putLong);
        DurableFiles.replace(path(dir, layerId), b.flip());
    }

    /** The layer's recovered regions, ascending; empty if none. */
    static long[] read(Path dir, String layerId) throws IOException {
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
