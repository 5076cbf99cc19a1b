package dev.stowage.engine.storage;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;

/**
 * One volume's data on one node: thin (only written blocks take space), checksummed per 4 KiB
 * block with crc32c, and layered so that snapshots are copy-on-write.
 *
 * <p>Reads of never-written ranges return zeros without touching the disk. A block whose stored
 * checksum does not match its data fails the read with {@link ChecksumMismatchException}; wrong
 * data is never returned.
 *
 * <p>Threading: thread-safe. Writes to distinct blocks proceed in parallel; a write that covers
 * part of a block (read-modify-write) is serialised against other writers of that block.
 *
 * <p>Durability: a write is durable once a later {@link #flush()} returns.
 */
public interface ReplicaStore extends Closeable {

    /** Size of the checksummed block, in bytes. */
    int BLOCK_SIZE = 4096;

    String volumeId();

    long sizeBytes();

    void read(long offset, ByteBuffer dst) throws IOException;

    void write(long offset, ByteBuffer src) throws IOException;

    /**
     * As {@link #write}, for a bulk copy (a resync or rebuild) that nobody reads soon: a store may
     * write it past the page cache. {@code src} must then start at a 4 KiB-aligned address when
     * {@code offset} and its length are multiples of 4 KiB.
     */
    default void writeBulk(long offset, ByteBuffer src) throws IOException {
        write(offset, src);
    }

    /** A direct buffer of {@code capacity} bytes starting on a block boundary, as {@link #writeBulk} wants. */
    static ByteBuffer blockAlignedBuffer(int capacity) {
        return ByteBuffer.allocateDirect(capacity + BLOCK_SIZE).alignedSlice(BLOCK_SIZE);
    }

    /** Whether {@code b} is direct and its position lies on a block boundary. */
    static boolean isBlockAligned(ByteBuffer b) {
        return b.isDirect() && b.alignmentOffset(b.position(), BLOCK_SIZE) == 0;
    }

    /** Makes every completed write durable (data and checksums). */
    void flush() throws IOException;

    /**
     * Hands every completed write's data to the device and waits for it, without flushing the
     * device's cache: a failed writeback shows here, before anything that describes the data is
     * written. The default makes the writes durable, which is more than asked.
     */
    default void writeBack() throws IOException {
        flush();
    }

    /**
     * Whether {@link #flush} also makes durable what was written to {@code file} and handed to the
     * device before the flush began: true when {@code file} lies on the store's own file system,
     * whose device cache the flush empties. False where unknown.
     */
    default boolean flushCovers(Path file) {
        return false;
    }

    /** Grows the volume; shrinking is refused with {@link IllegalArgumentException}. */
    void resize(long newSizeBytes) throws IOException;

    /** Bytes this replica occupies on disk in its own (writable) layer. */
    long allocatedBytes() throws IOException;

    /**
     * The 1 MiB regions (offset {@code >> 20}) that crash recoveries took as written since
     * {@link #forgetRegionsRecoveredAfterCrash} was last called, ascending: writes in flight at a
     * crash may have landed in them, so they may hold data that other replicas of the volume lack.
     * Empty for a store that never crashed.
     */
    default long[] regionsRecoveredAfterCrash() throws IOException {
        return new long[0];
    }

    /**
     * Those of {@link #regionsRecoveredAfterCrash} whose crash also lost the page cache (a power
     * loss, a kernel crash): writes handed to the kernel before the crash, even those a later
     * write's record names, may be missing from them. Ascending; empty for a store that never crashed so.
     */
    default long[] regionsRecoveredAfterPowerLoss() throws IOException {
        return new long[0];
    }

    /** Forgets the regions {@link #regionsRecoveredAfterCrash} returned, once the caller recorded them durably. */
    default void forgetRegionsRecoveredAfterCrash() throws IOException {
    }

    /**
     * What a layer above the store keeps about recent writes and must make durable before the
     * store stops counting their regions as recently written (a settle round clears their
     * unsettled marks, after which a crash recovery would no longer name them).
     */
    interface SettleListener {
        /** At the start of a settle round: a view of what is to be made durable (writes completed so far). */
        Object beforeSettle();

        /** After the round made the data durable, before it clears any mark: makes {@code view} durable. */
        void settled(Object view) throws IOException;
    }

    /** Installs {@code listener} (one at a time; {@code null} removes it). A store without settle rounds ignores it. */
    default void settleListener(SettleListener listener) {
    }
}
