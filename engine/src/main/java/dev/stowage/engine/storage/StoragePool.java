package dev.stowage.engine.storage;

import java.io.IOException;
import java.util.Optional;
import java.util.Set;

/**
 * The storage of one node: its replica stores and snapshot layers, kept in one data directory.
 *
 * <p>Snapshots are copy-on-write: taking one freezes the volume's current layer and starts a new
 * empty one above it, so the cost does not depend on the volume's size. A snapshot or a volume
 * created from it reads exactly the data at snapshot time. Deleting a snapshot that a later
 * snapshot or a clone still reads through keeps its layer until nothing references it.
 *
 * <p>Every operation is crash-safe: after a crash the pool holds either the state before or the
 * state after an operation, never a half-made volume or snapshot.
 *
 * <p>Threading: thread-safe. {@link #open} returns the same store to every caller until it is
 * closed by {@link #close()} of the pool.
 */
public interface StoragePool extends AutoCloseable {

    /** Creates an empty thin volume. Fails with {@code FileAlreadyExistsException} if it exists. */
    ReplicaStore create(String volumeId, long sizeBytes) throws IOException;

    /** A new volume whose content is the snapshot's; {@code sizeBytes} may exceed the snapshot's. */
    ReplicaStore createFromSnapshot(String snapshotId, String volumeId, long sizeBytes) throws IOException;

    /** A new volume whose content is the source volume's at this moment (a clone). */
    ReplicaStore cloneVolume(String sourceVolumeId, String volumeId, long sizeBytes) throws IOException;

    /** The open store of an existing volume, or empty if there is none. */
    Optional<ReplicaStore> open(String volumeId) throws IOException;

    /** Deletes a volume and every layer only it referenced. Deleting a missing volume is a no-op. */
    void delete(String volumeId) throws IOException;

    /** Takes a copy-on-write snapshot of a volume. Fails if the snapshot id exists. */
    void snapshot(String volumeId, String snapshotId) throws IOException;

    /** Deletes a snapshot. Deleting a missing snapshot is a no-op. */
    void deleteSnapshot(String snapshotId) throws IOException;

    boolean snapshotExists(String snapshotId);

    /** Size of the volume at snapshot time, in bytes. */
    long snapshotSizeBytes(String snapshotId) throws IOException;

    Set<String> volumeIds() throws IOException;

    /** Ids of the snapshots this pool holds. */
    Set<String> snapshotIds() throws IOException;

    /** Bytes the pool may still allocate (free space of the file system under the data directory). */
    long freeBytes() throws IOException;

    /** Total bytes of the file system under the data directory. */
    long capacityBytes() throws IOException;

    /**
     * The largest volume this pool can hold: at most 64 TiB, less where the file system under the
     * data directory limits the size of a file (ext4 with 4 KiB blocks: 16 TiB, of which the
     * checksum table's room takes 128 GiB). Creating or growing a volume beyond it is refused.
     */
    long maxVolumeBytes();

    @Override
    void close() throws IOException;
}
