package dev.stowage.engine.cluster;

import dev.stowage.engine.cluster.MetadataStore.Versioned;
import dev.stowage.engine.storage.DurableFiles;

import java.io.BufferedOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.zip.CRC32C;
import java.util.zip.CheckedOutputStream;

/**
 * The embedded store's snapshot: every key at one revision, written atomically.
 *
 * <p>Format (big-endian): magic {@code STWSNAP1}, int format version, long revision, int entry
 * count, the entries as encoded by {@link LogRecord#writeEntry}, then the crc32c of all preceding
 * bytes. Written to a temporary file, forced, renamed over the old snapshot, and the directory
 * forced, so that a crash leaves either the old or the new snapshot whole.
 *
 * <p>Threading: stateless; callers serialize writes.
 */
final class SnapshotFile {
    static final String NAME = "snapshot";
    private static final String TEMP_NAME = "snapshot.tmp";
    private static final long MAGIC = 0x5354_5753_4e41_5031L; // "STWSNAP1"
    private static final int FORMAT_VERSION = 1;

    /** The contents of a snapshot. */
    record Contents(long revision, List<Versioned> entries) {}

    private SnapshotFile() {}

    /** Reads the snapshot in {@code dir}, or returns null when there is none. */
    static Contents read(Path dir) throws IOException {
        Path path = dir.resolve(NAME);
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(path);
        } catch (NoSuchFileException e) {
            return null;
        }
        if (bytes.length < 28) {
            throw new IOException("metadata snapshot " + path + " is truncated (" + bytes.length + " bytes)");
        }
        CRC32C crc = new CRC32C();
        crc.update(bytes, 0, bytes.length - 4);
        ByteBuffer in = ByteBuffer.wrap(bytes);
        if ((int) crc.getValue() != in.getInt(bytes.length - 4)) {
            throw new IOException("metadata snapshot " + path + " fails its checksum; refusing to open");
        }
        in.limit(bytes.length - 4);
        if (in.getLong() != MAGIC) {
            throw new IOException("metadata snapshot " + path + " is not a Stowage snapshot (bad magic)");
        }
        int version = in.getInt();
        if (version != FORMAT_VERSION) {
            throw new IOException("metadata snapshot " + path + " has unsupported format version " + version);
        }
        long revision = in.getLong();
        int count = in.getInt();
        if (revision < 0 || count < 0) {
            throw new IOException("metadata snapshot " + path + ": invalid revision " + revision
                    + " or count " + count);
        }
        List<Versioned> entries = new ArrayList<>(Math.min(count, 1 << 16));
        try {
            for (int i = 0; i < count; i++) {
                Versioned entry = LogRecord.readEntry(in);
                if (entry.modRevision() > revision) {
                    throw new IllegalArgumentException("key " + entry.key() + " has revision "
                            + entry.modRevision() + " beyond the snapshot's " + revision);
                }
                entries.add(entry);
            }
        } catch (RuntimeException e) {
            throw new IOException("metadata snapshot " + path + " is malformed: " + e.getMessage(), e);
        }
        if (in.hasRemaining()) {
            throw new IOException("metadata snapshot " + path + " has " + in.remaining() + " trailing bytes");
        }
        return new Contents(revision, entries);
    }

    /** Atomically replaces the snapshot in {@code dir}; durable when this returns. */
    static void write(Path dir, long revision, Collection<Versioned> entries) throws IOException {
        Path temp = dir.resolve(TEMP_NAME);
        try (FileChannel channel = FileChannel.open(temp, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            OutputStream raw = Channels.newOutputStream(channel);
            CRC32C crc = new CRC32C();
            CheckedOutputStream checked = new CheckedOutputStream(new BufferedOutputStream(raw, 1 << 16), crc);
            DataOutputStream out = new DataOutputStream(checked);
            out.writeLong(MAGIC);
            out.writeInt(FORMAT_VERSION);
            out.writeLong(revision);
            out.writeInt(entries.size());
            for (Versioned entry : entries) {
                LogRecord.writeEntry(out, entry);
            }
            out.flush();
            DataOutputStream trailer = new DataOutputStream(new BufferedOutputStream(raw, 4));
            trailer.writeInt((int) crc.getValue());
            trailer.flush();
            channel.force(true);
        }
        Files.move(temp, dir.resolve(NAME), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        DurableFiles.fsyncDirectory(dir);
    }

    /** Deletes a temporary file left by a crash during {@link #write}. */
    static void deleteLeftovers(Path dir) throws IOException {
        Files.deleteIfExists(dir.resolve(TEMP_NAME));
    }
}
