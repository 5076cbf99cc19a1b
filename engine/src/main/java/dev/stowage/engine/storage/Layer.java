package dev.stowage.engine.storage;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.concurrent.atomic.LongAdder;
import java.util.zip.CRC32C;

/**
 * One copy-on-write layer: one sparse file {@code <id>.layer} in the layers directory holding the
 * layer's {@link ChecksumTable} at offset 0 and its block data from {@link #DATA_OFFSET} on (block
 * {@code b} at {@code DATA_OFFSET + b * 4096}). A layer is writable while it is a volume's head, and
 * frozen (never written again) once a snapshot or clone has taken it. Its parent is fixed at creation.
 *
 * <p>Why one file: on Linux every fdatasync of a file ends in its own device cache flush. With the
 * table in a file of its own, a flush that had to write both cost two device flushes (measured:
 * 4,873 against 6,911 fdatasync'd 4 KiB writes per second through ext4, loop and FUSE); with one
 * file, one fdatasync covers the table pages written back and the data.
 *
 * <p>Two strengths of making writes durable: {@link #forceData} for a volume's flush writes the
 * data and only those table entries that recovery could not rebuild (see {@link ChecksumTable});
 * {@link #force} writes every changed table page as well, and must come before anything clears
 * the layer's {@link UnsettledRegions} marks.
 *
 * <p>Threading: positional I/O on a shared {@link FileChannel}, safe from any thread. Callers
 * serialise writers of one block.
 */
final class Layer implements Closeable {
    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(Layer.class);
    static final String FILE_SUFFIX = ".layer";
    /**
     * Where block data starts in a layer file: after room for the checksum table of the largest
     * volume ({@link StorageIds#MAX_SIZE_BYTES} / 4096 blocks, 8 bytes each). The unused part of
     * that room is a hole and costs nothing.
     */
    static final long DATA_OFFSET = StorageIds.MAX_SIZE_BYTES / 4096 * 8;
    /**
     * Largest single write to the layer file. The kernel sizes a page-cache folio by the write
     * that creates it, and ext4 walks every 4 KiB buffer of a folio on each write into it: after
     * 1 MiB writes had filled the cache with 1 MiB folios, a 4 KiB write cost 256 steps and random
     * 4 KiB writes ran at half speed (45,330 against 89,870 IOPS after dropping the cache).
     * Writing in small pieces keeps folios small; the extra system calls are cheap next to that.
     * Readahead would build large folios too: {@link PageCacheAdvice#random} turns it off.
     */
    static final int WRITE_PIECE = Integer.getInteger("stowage.layerWritePiece", 16 << 10);

    final String id;
    final Layer parent;
    final ChecksumTable table;
    /** Regions whose data and checksums may disagree on disk until settled (crash consistency). */
    final UnsettledRegions unsettled;
    private final Path path;
    private final FileChannel file;
    /** {@code file}'s descriptor number for {@link PageCacheAdvice}, or -1. */
    private final int fd;
    /** The same file opened with O_DIRECT, for bulk writes; opened on the first one. */
    private volatile FileChannel directFile;
    /** Set when the file system refused O_DIRECT: bulk writes then go through the page cache. */
    private volatile boolean directUnsupported;
    /** Data-file read calls, so tests can prove that unwritten ranges cost no I/O. */
    private final LongAdder dataReads = new LongAdder();
    /** Writebacks started by {@link #startWriteback} that the kernel took, for tests. */
    private final LongAdder writebacksStarted = new LongAdder();

    private Layer(String id, Layer parent, Path path, FileChannel file, UnsettledRegions unsettled)
            throws IOException {
        this.id = id;
        this.parent = parent;
        this.path = path;
        this.file = file;
        this.fd = PageCacheAdvice.descriptor(file);
        this.table = new ChecksumTable(path, file);
        this.unsettled = unsettled;
    }

    /** Creates the layer's file, failing if it exists. */
    static Layer create(Path dir, String id, Layer parent) throws IOException {
        return open(dir, id, parent, StandardOpenOption.CREATE_NEW);
    }

    /** Opens the file of an existing layer, failing if it is missing. */
    static Layer open(Path dir, String id, Layer parent) throws IOException {
        return open(dir, id, parent, StandardOpenOption.READ);
    }

    private static Layer open(Path dir, String id, Layer parent, StandardOpenOption mode) throws IOException {
        Path path = dir.resolve(id + FILE_SUFFIX);
        FileChannel f = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE, mode);
        PageCacheAdvice.random(f);
        UnsettledRegions u = null;
        try {
            u = UnsettledRegions.open(dir, id);
            return new Layer(id, parent, path, f, u);
        } catch (IOException | RuntimeException e) {
            f.close();
            if (u != null) {
                u.close();
            }
            if (mode == StandardOpenOption.CREATE_NEW) {
                Files.deleteIfExists(path);
                Files.deleteIfExists(dir.resolve(id + UnsettledRegions.FILE_SUFFIX));
            }
            throw e;
        }
    }

    /** The layer's file. */
    Path path() {
        return path;
    }

    long dataReads() {
        return dataReads.sum();
    }

    long writebacksStarted() {
        return writebacksStarted.sum();
    }

    /**
     * Reads {@code dst.remaining()} bytes at {@code position}; what lies past the end of the file
     * (a write that never landed) reads as zeros. Advances {@code dst} to its limit.
     */
    void readData(ByteBuffer dst, long position) throws IOException {
        dataReads.increment();
        long pos = DATA_OFFSET + position;
        while (dst.hasRemaining()) {
            int n = file.read(dst, pos);
            if (n < 0) {
                while (dst.hasRemaining()) {
                    dst.put((byte) 0);
                }
                return;
            }
            pos += n;
        }
    }

    /**
     * Writes all of {@code src} at {@code position}, advancing it to its limit, in pieces of at most
     * {@link #WRITE_PIECE} bytes that never cross a multiple of it (see {@link #WRITE_PIECE}).
     */
    void writeData(ByteBuffer src, long position) throws IOException {
        long pos = DATA_OFFSET + position;
        int limit = src.limit();
        try {
            while (src.position() < limit) {
                long pieceEnd = (pos & -WRITE_PIECE) + WRITE_PIECE;
                src.limit((int) Math.min(limit, src.position() + (pieceEnd - pos)));
                while (src.hasRemaining()) {
                    pos += file.write(src, pos);
                }
            }
        } finally {
            src.limit(limit);
        }
    }

    /**
     * Writes all of {@code src} at {@code position} past the page cache (O_DIRECT): a bulk copy that
     * nobody reads soon. {@code position}, {@code src}'s address and its length must be multiples of
     * 4 KiB. Cached pages of the range are written back and dropped by the kernel first, so buffered
     * readers see the new data. Durable, as any write, after {@link #force()}.
     */
    void writeDataDirect(ByteBuffer src, long position) throws IOException {
        FileChannel d = directFile;
        if (d == null) {
            synchronized (this) {
                d = directFile;
                if (d == null && !directUnsupported) {
                    try {
                        d = FileChannel.open(path, StandardOpenOption.WRITE, com.sun.nio.file.ExtendedOpenOption.DIRECT);
                        directFile = d;
                    } catch (IOException | UnsupportedOperationException e) {
                        directUnsupported = true; // e.g. a file system without O_DIRECT: buffered, as any write
                        LOG.info(
                                "{}: no O_DIRECT on {} ({}); bulk writes go through the page cache", this, path, e.toString());
                    }
                }
            }
        }
        if (d == null) {
            writeData(src, position);
            return;
        }
        long pos = DATA_OFFSET + position;
        while (src.hasRemaining()) {
            pos += d.write(src, pos);
        }
    }

    /**
     * Starts writing back the data written at {@code position} (of {@code length} bytes) without
     * waiting: a flush that follows soon then finds it on its way to the disk instead of starting
     * it. Costs a few microseconds of the caller's time, so only for writes a flush is expected
     * to follow (see {@link LayeredReplicaStore#EAGER_WRITEBACK_WRITES}).
     */
    void startWriteback(long position, long length) {
        if (PageCacheAdvice.startWriteback(fd, DATA_OFFSET + position, length)) {
            writebacksStarted.increment();
        }
    }

    /**
     * Makes data and every checksum entry durable with one fdatasync: writes the changed table
     * pages back, then the file's dirty pages are written and the device cache flushed once.
     */
    void force() throws IOException {
        table.writeBack(false);
        file.force(false);
    }

    /**
     * Makes every write's data durable, and the table entries that say which blocks this layer
     * holds; other changed entries stay in memory, their regions marked unsettled (recovery
     * rebuilds them from the data), until {@link #force}. One fdatasync, which for a 4 KiB
     * overwrite writes one page instead of two.
     */
    void forceData() throws IOException {
        table.writeBack(true);
        file.force(false);
    }

    /**
     * What {@link #forceData} writes, handed to the device and waited for, without the device
     * cache flush (where sync_file_range cannot be called, forces instead).
     */
    void writeBackData() throws IOException {
        table.writeBack(true);
        if (!PageCacheAdvice.writeBackAndWait(fd, 0, 0)) {
            file.force(false);
        }
    }

    /**
     * Recovery after a crash, before any I/O: in every region still marked unsettled
     * ({@code regions}, from {@link UnsettledRegions#marked}) the data on
     * disk is taken as the blocks' content and their checksum entries are rewritten to match
     * (see {@link UnsettledRegions} for why such a mismatch is no corruption). A first write whose
     * data never landed (zeros under an entry with no previous content) is dropped instead, so the
     * block reads from the layers below. Then flushes and clears the marks. Returns the number of
     * entries rewritten.
     */
    int settleAfterCrash(List<Long> regions) throws IOException {
        int blockSize = ReplicaStore.BLOCK_SIZE;
        ByteBuffer region = ByteBuffer.allocateDirect(UnsettledRegions.REGION_BLOCKS * blockSize);
        CRC32C crc = new CRC32C();
        int rewritten = 0;
        for (long r : regions) {
            long first = r * UnsettledRegions.REGION_BLOCKS;
            boolean held = false;
            for (int j = 0; j < UnsettledRegions.REGION_BLOCKS && !held; j++) {
                held = ChecksumTable.present(table.get(first + j));
            }
            if (!held) {
                continue;
            }
            region.clear();
            readData(region, first * blockSize);
            for (int j = 0; j < UnsettledRegions.REGION_BLOCKS; j++) {
                long entry = table.get(first + j);
                if (!ChecksumTable.present(entry)) {
                    continue;
                }
                int actual = ChecksumTable.blockCrc(region, j * blockSize, crc);
                if (actual == ChecksumTable.current(entry)) {
                    continue;
                }
                table.put(first + j, !ChecksumTable.hasPrevious(entry) && ChecksumTable.isZeroBlock(region, j * blockSize)
                        ? ChecksumTable.ABSENT : ChecksumTable.encodeClean(actual));
                rewritten++;
            }
        }
        force();
        unsettled.clearAll();
        return rewritten;
    }

    /** Bytes on disk of this layer's file. */
    long allocatedBytes() throws IOException {
        return DiskUsage.allocatedBytes(path);
    }

    @Override
    public void close() throws IOException {
        try {
            table.close();
        } finally {
            try {
                file.close();
                FileChannel d = directFile;
                if (d != null) {
                    d.close();
                }
            } finally {
                unsettled.close();
            }
        }
    }

    /** Closes and removes the files. */
    void closeAndDelete() throws IOException {
        close();
        Files.deleteIfExists(path);
        Files.deleteIfExists(unsettled.path());
        Files.deleteIfExists(RecoveredRegions.path(path.getParent(), id));
    }

    /**
     * Keeps {@code regions} as taken as written by a crash recovery, durably ({@link RecoveredRegions});
     * {@code pageCacheLost}: the crash also lost the page cache ({@link BootRecord}).
     */
    void recordRecovered(List<Long> regions, boolean pageCacheLost) throws IOException {
        RecoveredRegions.add(path.getParent(), id, regions, pageCacheLost);
    }

    /** The regions crash recoveries took as written since {@link #forgetRecovered}, ascending. */
    long[] recoveredRegions() throws IOException {
        return RecoveredRegions.read(path.getParent(), id);
    }

    /** Those of {@link #recoveredRegions} whose crash also lost the page cache, ascending. */
    long[] recoveredRegionsWithPageCacheLost() throws IOException {
        return RecoveredRegions.readPageCacheLost(path.getParent(), id);
    }

    void forgetRecovered() throws IOException {
        RecoveredRegions.clear(path.getParent(), id);
    }

    @Override
    public String toString() {
        return "layer " + id + (parent == null ? "" : " (parent " + parent.id + ")");
    }
}
