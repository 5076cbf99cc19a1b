package dev.stowage.engine.storage;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.atomic.LongAdder;

/**
 * One copy-on-write layer: a sparse data file (block {@code b} at offset {@code b * 4096}) and its
 * {@link ChecksumTable}. A layer is writable while it is a volume's head, and frozen (never written
 * again) once a snapshot or clone has taken it. Its parent is fixed at creation.
 *
 * <p>Threading: positional I/O on a shared {@link FileChannel}, safe from any thread. Callers
 * serialise writers of one block. Files: {@code <id>.data} and {@code <id>.crc} in the layers directory.
 */
final class Layer implements Closeable {
    static final String DATA_SUFFIX = ".data";
    static final String CRC_SUFFIX = ".crc";

    final String id;
    final Layer parent;
    final ChecksumTable table;
    private final Path dataPath;
    private final FileChannel data;
    /** Data-file read calls, so tests can prove that unwritten ranges cost no I/O. */
    private final LongAdder dataReads = new LongAdder();

    private Layer(String id, Layer parent, Path dataPath, FileChannel data, ChecksumTable table) {
        this.id = id;
        this.parent = parent;
        this.dataPath = dataPath;
        this.data = data;
        this.table = table;
    }

    /** Creates the layer's two files, failing if either exists. */
    static Layer create(Path dir, String id, Layer parent) throws IOException {
        return open(dir, id, parent, StandardOpenOption.CREATE_NEW);
    }

    /** Opens the files of an existing layer, failing if either is missing. */
    static Layer open(Path dir, String id, Layer parent) throws IOException {
        return open(dir, id, parent, StandardOpenOption.READ);
    }

    private static Layer open(Path dir, String id, Layer parent, StandardOpenOption mode) throws IOException {
        Path dataPath = dir.resolve(id + DATA_SUFFIX);
        Path crcPath = dir.resolve(id + CRC_SUFFIX);
        FileChannel d = FileChannel.open(dataPath, StandardOpenOption.READ, StandardOpenOption.WRITE, mode);
        try {
            FileChannel c = FileChannel.open(crcPath, StandardOpenOption.READ, StandardOpenOption.WRITE, mode);
            try {
                return new Layer(id, parent, dataPath, d, new ChecksumTable(crcPath, c));
            } catch (IOException | RuntimeException e) {
                c.close();
                throw e;
            }
        } catch (IOException | RuntimeException e) {
            d.close();
            if (mode == StandardOpenOption.CREATE_NEW) {
                Files.deleteIfExists(dataPath);
                Files.deleteIfExists(crcPath);
            }
            throw e;
        }
    }

    Path dataPath() {
        return dataPath;
    }

    Path crcPath() {
        return table.path();
    }

    long dataReads() {
        return dataReads.sum();
    }

    /**
     * Reads {@code dst.remaining()} bytes at {@code position}; what lies past the end of the file
     * (a write that never landed) reads as zeros. Advances {@code dst} to its limit.
     */
    void readData(ByteBuffer dst, long position) throws IOException {
        dataReads.increment();
        long pos = position;
        while (dst.hasRemaining()) {
            int n = data.read(dst, pos);
            if (n < 0) {
                while (dst.hasRemaining()) {
                    dst.put((byte) 0);
                }
                return;
            }
            pos += n;
        }
    }

    /** Writes all of {@code src} at {@code position}, advancing it to its limit. */
    void writeData(ByteBuffer src, long position) throws IOException {
        long pos = position;
        while (src.hasRemaining()) {
            pos += data.write(src, pos);
        }
    }

    /**
     * Makes checksums and data durable. Table first: a durable entry holds {new, previous} crcs, so
     * whichever of the two contents the data file then holds after a crash is recognised.
     */
    void force() throws IOException {
        table.force();
        data.force(false);
    }

    /** Bytes on disk of this layer's two files. */
    long allocatedBytes() throws IOException {
        return DiskUsage.allocatedBytes(dataPath) + DiskUsage.allocatedBytes(table.path());
    }

    @Override
    public void close() throws IOException {
        try {
            data.close();
        } finally {
            table.close();
        }
    }

    /** Closes and removes both files. */
    void closeAndDelete() throws IOException {
        close();
        Files.deleteIfExists(dataPath);
        Files.deleteIfExists(table.path());
    }

    @Override
    public String toString() {
        return "layer " + id + (parent == null ? "" : " (parent " + parent.id + ")");
    }
}
