package dev.stowage.engine.storage;

import java.io.Closeable;
import java.io.IOException;
import java.lang.reflect.Method;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.zip.CRC32C;

/**
 * The per-block crc32c table of one layer: one 8-byte entry per 4 KiB block at the start of the
 * layer's file (see {@link Layer}), memory-mapped lazily in 64 MiB chunks. An all-zero entry means
 * "this layer holds no data for the block" (so the unwritten part of the table, a hole, costs
 * nothing).
 *
 * <p>Entry layout (little endian long): low 32 bits the crc32c of the block's current content;
 * high 32 bits a word whose bit 0 ({@link #PRESENT}) marks the entry as written, bit 1
 * ({@link #HAS_PREVIOUS}) says the layer held content before the last write, and bits 2..31
 * keep the upper 30 bits of that previous content's crc32c. The previous crc lets a reader tell
 * a write torn by a crash (table updated, data not yet) from corruption; 30 bits are plenty for
 * that and leave room for the flags, which make a crc of 0 representable.
 *
 * <p>Threading: {@link #get} and {@link #put} are safe from any thread (aligned 8-byte accesses
 * on a shared mapping); callers serialise updates of one entry. Durability: an fdatasync of the
 * layer's file writes back the mapping's dirty pages too. The channel belongs to the layer.
 */
final class ChecksumTable implements Closeable {
    static final long ABSENT = 0L;
    static final int PRESENT = 1;
    static final int HAS_PREVIOUS = 2;
    private static final int PREVIOUS_MASK = ~3;

    private static final int CHUNK_SHIFT = 26;                    // 64 MiB mappings
    private static final long CHUNK_BYTES = 1L << CHUNK_SHIFT;
    private static final int ENTRY_SHIFT = 3;                      // 8 bytes per entry
    private static final int ENTRIES_SHIFT = CHUNK_SHIFT - ENTRY_SHIFT;
    private static final long ENTRY_MASK = (1L << ENTRIES_SHIFT) - 1;

    private final Path path;
    private final FileChannel channel;
    private final Object mapLock = new Object();
    private volatile MappedByteBuffer[] chunks = new MappedByteBuffer[0];
    /**
     * A lower bound of the file's length: its length at open, raised by every mapping. A chunk
     * that starts past it was never mapped, so it holds no entry (data writes may have extended
     * the file since, but they never write the table region).
     */
    private volatile long fileLength;
    private volatile boolean closed;

    ChecksumTable(Path path, FileChannel channel) throws IOException {
        this.path = path;
        this.channel = channel;
        this.fileLength = channel.size();
    }

    Path path() {
        return path;
    }

    // ---- entry encoding ----

    static long encode(int crc, long previousEntry) {
        int high = PRESENT;
        if ((int) (previousEntry >>> 32 & PRESENT) != 0) {
            high |= HAS_PREVIOUS | (current(previousEntry) & PREVIOUS_MASK);
        }
        return ((long) high << 32) | (crc & 0xffffffffL);
    }

    static long encodeClean(int crc) {
        return ((long) PRESENT << 32) | (crc & 0xffffffffL);
    }

    static boolean present(long entry) {
        return (entry >>> 32 & PRESENT) != 0;
    }

    static int current(long entry) {
        return (int) entry;
    }

    static boolean hasPrevious(long entry) {
        return (entry >>> 32 & HAS_PREVIOUS) != 0;
    }

    /** Whether {@code crc} is (as far as the kept 30 bits tell) the crc of the previous content. */
    static boolean previousMatches(long entry, int crc) {
        int high = (int) (entry >>> 32);
        return (high & HAS_PREVIOUS) != 0 && (high & PREVIOUS_MASK) == (crc & PREVIOUS_MASK);
    }

    /** crc32c of the 4 KiB block at {@code from} in {@code buf}, computed in place; buf's state is kept. */
    static int blockCrc(ByteBuffer buf, int from, CRC32C crc) {
        int position = buf.position();
        int limit = buf.limit();
        buf.limit(from + ReplicaStore.BLOCK_SIZE).position(from);
        crc.reset();
        crc.update(buf);
        buf.limit(limit).position(position);
        return (int) crc.getValue();
    }

    /** Whether the 4 KiB block at {@code from} in {@code buf} is all zeros (a write whose data never landed). */
    static boolean isZeroBlock(ByteBuffer buf, int from) {
        for (int i = from; i < from + ReplicaStore.BLOCK_SIZE; i += 8) {
            if (buf.getLong(i) != 0L) {
                return false;
            }
        }
        return true;
    }

    // ---- access ----

    /** The entry of {@code block}, {@link #ABSENT} if none was written. Never extends the file. */
    long get(long block) throws IOException {
        int c = (int) (block >>> ENTRIES_SHIFT);
        MappedByteBuffer[] cs = chunks;
        MappedByteBuffer m = c < cs.length ? cs[c] : null;
        if (m == null) {
            if ((long) c << CHUNK_SHIFT >= fileLength) {
                return ABSENT;
            }
            m = map(c);
        }
        return m.getLong((int) ((block & ENTRY_MASK) << ENTRY_SHIFT));
    }

    void put(long block, long entry) throws IOException {
        int c = (int) (block >>> ENTRIES_SHIFT);
        MappedByteBuffer[] cs = chunks;
        MappedByteBuffer m = c < cs.length ? cs[c] : null;
        if (m == null) {
            m = map(c);
        }
        m.putLong((int) ((block & ENTRY_MASK) << ENTRY_SHIFT), entry);
    }

    private MappedByteBuffer map(int c) throws IOException {
        synchronized (mapLock) {
            if (closed) {
                throw new IOException("checksum table " + path + " is closed");
            }
            MappedByteBuffer[] cs = chunks;
            if (c < cs.length && cs[c] != null) {
                return cs[c];
            }
            long start = (long) c << CHUNK_SHIFT;
            MappedByteBuffer m = channel.map(FileChannel.MapMode.READ_WRITE, start, CHUNK_BYTES);
            m.order(ByteOrder.LITTLE_ENDIAN);
            MappedByteBuffer[] grown = c < cs.length ? cs.clone() : Arrays.copyOf(cs, c + 1);
            grown[c] = m;
            fileLength = Math.max(fileLength, start + CHUNK_BYTES);
            chunks = grown;
            return m;
        }
    }

    /**
     * Unmaps; the channel stays open (the layer closes it). The caller guarantees that no thread
     * uses this table any more: an access to an unmapped chunk would crash the JVM, which is why
     * only the pool (after quiescing every reader) closes tables.
     */
    @Override
    public void close() throws IOException {
        MappedByteBuffer[] cs;
        synchronized (mapLock) {
            if (closed) {
                return;
            }
            closed = true;
            cs = chunks;
            chunks = new MappedByteBuffer[0];
        }
        for (MappedByteBuffer m : cs) {
            if (m != null) {
                Unmapper.unmap(m);
            }
        }
    }

    /** Releases mappings at once instead of at garbage collection, where the JDK allows it. */
    private static final class Unmapper {
        private static final Method INVOKE_CLEANER = SunUnsafe.method("invokeCleaner", ByteBuffer.class);

        static void unmap(MappedByteBuffer m) {
            if (INVOKE_CLEANER == null) {
                return; // released when the buffer is garbage collected
            }
            try {
                INVOKE_CLEANER.invoke(SunUnsafe.INSTANCE, m);
            } catch (ReflectiveOperationException | RuntimeException e) {
                // fall back to release at garbage collection
            }
        }
    }
}
