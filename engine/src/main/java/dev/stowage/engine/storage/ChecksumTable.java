package dev.stowage.engine.storage;

import java.io.Closeable;
import java.io.IOException;
import java.lang.invoke.VarHandle;
import java.lang.reflect.Method;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicLongArray;
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
 * <p>Write-back: the mappings are private (copy-on-write), so a changed entry stays in memory
 * until {@link #writeBack} copies its 4 KiB table page to the file; the kernel never writes table
 * pages on its own, and an fdatasync of the layer's file writes only the pages written back since.
 * Why: a flush after a 4 KiB overwrite then writes one page (the data) instead of two far apart
 * (the data and its table page), which is most of the cost of a QD1 fdatasync. What makes it safe
 * is {@link UnsettledRegions}: an entry whose page was not written back belongs to a region still
 * marked unsettled, whose entries recovery rebuilds from the data after a crash. Only changes of
 * presence (a block's first write in this layer, a torn first write dropped) are written back at
 * every flush ({@link #writeBack}{@code (true)}): recovery cannot rebuild an entry that says
 * "absent" while the data is there. For the same reason a first write's entries are also copied
 * to the file's page cache before the write is acknowledged ({@link #share}): a node process that
 * dies leaves the page cache behind for the one that takes over its FUSE connection. Pages written
 * back and not changed since can be dropped from memory ({@link #release}), under the same
 * exclusion of writers that makes settling safe.
 *
 * <p>Threading: {@link #get} and {@link #put} are safe from any thread (aligned 8-byte accesses);
 * callers serialise updates of one entry. {@link #writeBack} may run alongside them (one
 * write-back at a time); an entry put meanwhile is written by this call or marks its page for the
 * next one. The channel belongs to the layer.
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
    private static final int PAGE_SHIFT = 12;
    /** Words of one page bitmap: a bit per 4 KiB table page of a chunk. */
    private static final int PAGE_WORDS = (int) (CHUNK_BYTES >>> PAGE_SHIFT >>> 6);

    private final Path path;
    private final FileChannel channel;
    private final Object mapLock = new Object();
    /**
     * One write-back at a time: a flush that finds a page's mark cleared by another write-back
     * must not return before that one has copied the page.
     */
    private final java.util.concurrent.locks.ReentrantLock writeBackLock = new java.util.concurrent.locks.ReentrantLock();
    private volatile Chunk[] chunks = new Chunk[0];
    private final java.util.concurrent.atomic.LongAdder changedPages = new java.util.concurrent.atomic.LongAdder();
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

    /** A block of zeros to compare with; read-only, and never moved (mismatch leaves positions alone). */
    private static final ByteBuffer ZERO_BLOCK = ByteBuffer.allocateDirect(ReplicaStore.BLOCK_SIZE).asReadOnlyBuffer();

    /**
     * Whether the 4 KiB block at {@code from} in {@code buf} is all zeros (a write whose data never
     * landed). Compared with {@link ByteBuffer#mismatch}, one vectorised comparison whatever the
     * buffer's kind: a loop of {@code getLong} calls became a virtual call per 8 bytes once heap,
     * direct, mapped and read-only buffers had all come through here, and took a third of a
     * replica node's CPU while it received a resync of zeros (docs/benchmarks.md).
     */
    static boolean isZeroBlock(ByteBuffer buf, int from) {
        return buf.slice(from, ReplicaStore.BLOCK_SIZE).mismatch(ZERO_BLOCK) < 0;
    }

    // ---- access ----

    /** The entry of {@code block}, {@link #ABSENT} if none was written. Never extends the file. */
    long get(long block) throws IOException {
        int c = (int) (block >>> ENTRIES_SHIFT);
        Chunk[] cs = chunks;
        Chunk k = c < cs.length ? cs[c] : null;
        if (k == null) {
            if ((long) c << CHUNK_SHIFT >= fileLength) {
                return ABSENT;
            }
            k = map(c);
        }
        return k.map.getLong((int) ((block & ENTRY_MASK) << ENTRY_SHIFT));
    }

    /**
     * Sets the entry of {@code block}. Returns whether that changed the block's presence (a first
     * write in this layer, or a torn one dropped): such a change reaches the file only through
     * {@link #share} or a write-back.
     */
    boolean put(long block, long entry) throws IOException {
        int c = (int) (block >>> ENTRIES_SHIFT);
        Chunk[] cs = chunks;
        Chunk k = c < cs.length ? cs[c] : null;
        if (k == null) {
            k = map(c);
        }
        int at = (int) ((block & ENTRY_MASK) << ENTRY_SHIFT);
        boolean presenceChanged = present(k.map.getLong(at)) != present(entry);
        k.map.putLong(at, entry);
        // The entry must be visible before the mark is read: a write-back that cleared the mark
        // already then copies the page with this entry in it.
        VarHandle.fullFence();
        int page = at >>> PAGE_SHIFT;
        if (mark(k.dirty, page)) {
            changedPages.increment();
        }
        if (!k.anyDirty) {
            k.anyDirty = true;
        }
        if (presenceChanged) {
            mark(k.urgent, page);
            if (!k.anyUrgent) {
                k.anyUrgent = true;
            }
        }
        return presenceChanged;
    }

    /**
     * Copies the entries of blocks {@code first} to {@code first + count - 1} to the file (its page
     * cache; durable only after the file's next fdatasync), so that a process that opens the layer
     * after this one died sees them. Why: with the fd keeper, a FUSE connection outlives the node
     * process that acknowledged writes on it, and the kernel's next flush is answered by the node
     * that takes over. Data and the unsettled marks live in the kernel and survive the process; a
     * first write's presence in this process's private table page would not, and the block would
     * read from the layers below although the application's fsync succeeded. Overwrites need no
     * copy: their regions are marked unsettled, and recovery rebuilds those entries from the data.
     * Runs under the write-back lock, so a write-back of an older copy of the page cannot land
     * after it.
     */
    void share(long first, int count) throws IOException {
        writeBackLock.lock();
        try {
            long end = first + count;
            for (long b = first; b < end; ) {
                int c = (int) (b >>> ENTRIES_SHIFT);
                Chunk k = chunks[c]; // mapped by the put that changed the entry
                long chunkEnd = Math.min(end, (long) (c + 1) << ENTRIES_SHIFT);
                int from = (int) ((b & ENTRY_MASK) << ENTRY_SHIFT);
                int to = (int) (((chunkEnd - 1) & ENTRY_MASK) << ENTRY_SHIFT) + (1 << ENTRY_SHIFT);
                ByteBuffer src = k.map.duplicate().position(from).limit(to);
                long pos = ((long) c << CHUNK_SHIFT) + from;
                while (src.hasRemaining()) {
                    pos += channel.write(src, pos);
                }
                b = chunkEnd;
            }
        } finally {
            writeBackLock.unlock();
        }
    }

    /** Sets {@code page}'s bit; returns whether it was clear. */
    private static boolean mark(AtomicLongArray bits, int page) {
        long bit = 1L << page;
        return (bits.get(page >>> 6) & bit) == 0 && (bits.getAndAccumulate(page >>> 6, bit, (a, b) -> a | b) & bit) == 0;
    }

    /**
     * Pages that started changing since the last {@link #release} (a page counts again each
     * time it is changed after a write-back): an upper bound of the private copies it would drop.
     */
    long changedPages() {
        return changedPages.sum();
    }

    /**
     * Copies changed table pages to the file (durable after the file's next fdatasync): those
     * holding a change of presence when {@code presenceOnly}, else every changed page. Returns
     * the number of pages written.
     */
    int writeBack(boolean presenceOnly) throws IOException {
        writeBackLock.lock();
        try {
            return writeBackLocked(presenceOnly);
        } finally {
            writeBackLock.unlock();
        }
    }

    private int writeBackLocked(boolean presenceOnly) throws IOException {
        int written = 0;
        Chunk[] cs = chunks;
        for (int c = 0; c < cs.length; c++) {
            Chunk k = cs[c];
            if (k == null || !(presenceOnly ? k.anyUrgent : k.anyDirty)) {
                continue; // a put marks its page before it raises the flag: cleared first, rescanned
            }
            if (presenceOnly) {
                k.anyUrgent = false;
            } else {
                k.anyDirty = false;
            }
            for (int w = 0; w < PAGE_WORDS; w++) {
                long pages = presenceOnly ? k.urgent.getAndSet(w, 0) : k.dirty.getAndSet(w, 0);
                if (pages == 0) {
                    continue;
                }
                if (!presenceOnly) {
                    k.urgent.getAndAccumulate(w, pages, (a, b) -> a & ~b);
                }
                while (pages != 0) {
                    int first = Long.numberOfTrailingZeros(pages);
                    int run = Long.numberOfTrailingZeros(~(pages >>> first)); // 64 when all are set
                    int from = (w << 6 | first) << PAGE_SHIFT;
                    ByteBuffer src = k.map.duplicate().position(from).limit(from + (run << PAGE_SHIFT));
                    long pos = ((long) c << CHUNK_SHIFT) + from;
                    try {
                        while (src.hasRemaining()) {
                            pos += channel.write(src, pos);
                        }
                    } catch (IOException | RuntimeException e) {
                        // Marked again (urgent too, to be safe), so a later flush cannot succeed without them.
                        k.dirty.getAndAccumulate(w, pages, (a, b) -> a | b);
                        k.urgent.getAndAccumulate(w, pages, (a, b) -> a | b);
                        k.anyDirty = true;
                        k.anyUrgent = true;
                        throw e;
                    }
                    long runBits = runBits(first, run);
                    k.written.getAndAccumulate(w, runBits, (a, b) -> a | b);
                    k.anyWritten = true;
                    pages &= ~runBits;
                    written += run;
                }
            }
        }
        return written;
    }

    /**
     * Drops from memory the table pages written back and not changed since (they read from the
     * file again). The caller excludes every {@link #put} while this runs: a put landing between
     * the check and the drop would be lost. Returns the number of pages dropped; 0 where the
     * platform gives no way to drop them (they then stay in memory).
     */
    int release() {
        changedPages.reset();
        int dropped = 0;
        for (Chunk k : chunks) {
            if (k == null || !k.anyWritten) {
                continue;
            }
            k.anyWritten = false;
            for (int w = 0; w < PAGE_WORDS; w++) {
                long pages = k.written.get(w) & ~k.dirty.get(w);
                if (pages != 0) {
                    k.written.getAndAccumulate(w, pages, (a, b) -> a & ~b);
                }
                if (k.written.get(w) != 0) {
                    k.anyWritten = true; // written back but changed again: a later round drops it
                }
                while (pages != 0) {
                    int first = Long.numberOfTrailingZeros(pages);
                    int run = Long.numberOfTrailingZeros(~(pages >>> first)); // 64 when all are set
                    if (PageCacheAdvice.dropPrivatePages(k.map, (w << 6 | first) << PAGE_SHIFT, run << PAGE_SHIFT)) {
                        dropped += run;
                    }
                    pages &= ~runBits(first, run);
                }
            }
        }
        return dropped;
    }

    /** The bits {@code first .. first + run - 1} of a word. */
    private static long runBits(int first, int run) {
        return run == 64 ? -1L : ((1L << run) - 1) << first;
    }

    private Chunk map(int c) throws IOException {
        synchronized (mapLock) {
            if (closed) {
                throw new IOException("checksum table " + path + " is closed");
            }
            Chunk[] cs = chunks;
            if (c < cs.length && cs[c] != null) {
                return cs[c];
            }
            long start = (long) c << CHUNK_SHIFT;
            MappedByteBuffer m = channel.map(FileChannel.MapMode.PRIVATE, start, CHUNK_BYTES);
            m.order(ByteOrder.LITTLE_ENDIAN);
            Chunk k = new Chunk(m);
            Chunk[] grown = c < cs.length ? cs.clone() : Arrays.copyOf(cs, c + 1);
            grown[c] = k;
            fileLength = Math.max(fileLength, start + CHUNK_BYTES);
            chunks = grown;
            return k;
        }
    }

    /** One mapped 64 MiB piece of the table and what its 4 KiB pages need. */
    private static final class Chunk {
        final MappedByteBuffer map;
        /** Pages changed since written back. */
        final AtomicLongArray dirty = new AtomicLongArray(PAGE_WORDS);
        /** Pages holding a change of presence since written back. */
        final AtomicLongArray urgent = new AtomicLongArray(PAGE_WORDS);
        /** Pages written back and not yet dropped from memory. */
        final AtomicLongArray written = new AtomicLongArray(PAGE_WORDS);
        /** Whether a bit may be set in {@link #dirty}, {@link #urgent}, {@link #written}: spares scanning idle chunks. */
        volatile boolean anyDirty;
        volatile boolean anyUrgent;
        volatile boolean anyWritten;

        Chunk(MappedByteBuffer map) {
            this.map = map;
        }
    }

    /**
     * Unmaps; the channel stays open (the layer closes it). The caller guarantees that no thread
     * uses this table any more: an access to an unmapped chunk would crash the JVM, which is why
     * only the pool (after quiescing every reader) closes tables.
     */
    @Override
    public void close() throws IOException {
        Chunk[] cs;
        synchronized (mapLock) {
            if (closed) {
                return;
            }
            cs = chunks;
        }
        try {
            writeBack(false); // not forced: what a crash loses here, recovery rebuilds
        } finally {
            synchronized (mapLock) {
                closed = true;
                chunks = new Chunk[0];
            }
            for (Chunk k : cs) {
                if (k != null) {
                    Unmapper.unmap(k.map);
                }
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
