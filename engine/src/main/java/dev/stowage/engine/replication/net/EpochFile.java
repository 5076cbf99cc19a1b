package dev.stowage.engine.replication.net;

import dev.stowage.engine.storage.DurableFiles;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.zip.CRC32C;

/**
 * The highest epoch a replica volume has seen (DESIGN invariant 2), in
 * {@code <replicationDir>/<volumeId>.epoch}: 8 bytes big-endian epoch then the crc32c of those 8
 * bytes. Absent means epoch 0.
 *
 * <p>Durability: {@link #raise} returns only when the new epoch is durable (temporary file
 * written and fsync'd, renamed over the old one, directory fsync'd), so a replica can answer a
 * request carrying the new epoch right after. A crash leaves either the old or the new epoch.
 *
 * <p>Threading: thread-safe (raises are serialised by the object's monitor; {@link #current()} is
 * a volatile read). Errors: an unreadable or corrupt file fails {@link #open} with {@link IOException}.
 */
public final class EpochFile {
    private static final int BYTES = 12;

    private final Path path;
    private volatile long current;

    private EpochFile(Path path, long current) {
        this.path = path;
        this.current = current;
    }

    /** Loads the epoch of {@code volumeId} in {@code replicationDir} (0 if none was persisted). */
    public static EpochFile open(Path replicationDir, String volumeId) throws IOException {
        Files.createDirectories(replicationDir);
        Path p = replicationDir.resolve(volumeId + ".epoch");
        Files.deleteIfExists(DurableFiles.temporaryOf(p));
        byte[] b;
        try {
            b = Files.readAllBytes(p);
        } catch (NoSuchFileException e) {
            return new EpochFile(p, 0);
        }
        if (b.length != BYTES) {
            throw new IOException("epoch file " + p + " has " + b.length + " bytes, expected " + BYTES);
        }
        ByteBuffer bb = ByteBuffer.wrap(b);
        long epoch = bb.getLong(0);
        int crc = bb.getInt(8);
        if (crc != crcOf(epoch)) {
            throw new IOException("epoch file " + p + " is corrupt (crc32c mismatch)");
        }
        return new EpochFile(p, epoch);
    }

    public long current() {
        return current;
    }

    public Path path() {
        return path;
    }

    /**
     * Raises the persisted epoch to {@code epoch} if it is higher, durably, and returns the epoch
     * now in force (the higher of the two).
     */
    public synchronized long raise(long epoch) throws IOException {
        if (epoch <= current) {
            return current;
        }
        ByteBuffer bb = ByteBuffer.allocate(BYTES);
        DurableFiles.replace(path, bb.putLong(epoch).putInt(crcOf(epoch)).flip());
        current = epoch;
        return epoch;
    }

    private static int crcOf(long epoch) {
        CRC32C c = new CRC32C();
        c.update(ByteBuffer.allocate(8).putLong(0, epoch));
        return (int) c.getValue();
    }
}
