package dev.stowage.engine.storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.ReentrantLock;
import java.util.concurrent.locks.StampedLock;
import java.util.zip.CRC32C;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A replica store over a chain of copy-on-write {@link Layer}s: writes go to the volume's own
 * (head) layer, reads take each block from the topmost layer that holds it, and a block that no
 * layer holds reads as zeros without any data-file I/O (the lookup is an in-memory table read).
 *
 * <p>Checksums: every 4 KiB block is verified against its crc32c on every read. A write first
 * stores {new crc, previous crc} in the table, then writes the data; a reader that finds the
 * previous content (a write torn by a crash before its data landed) returns it and repairs the
 * entry, anything else that does not match fails with {@link ChecksumMismatchException}. The
 * opposite order (data on disk, entry not yet) is what a power loss can leave too, since the page
 * cache writes pages back in any order: before a write touches a region, the region is durably
 * marked unsettled, and recovery takes the data of marked regions as written
 * ({@link UnsettledRegions}, {@link Layer#settleAfterCrash}).
 *
 * <p>Threading: thread-safe without a global lock on the I/O path. Writers of a block are
 * serialised by striped locks (partial-block writes do read-modify-write under the block's
 * stripe); readers verify optimistically and retry under the stripe only when a block does not
 * match its current crc. Structural changes by the pool (snapshot, clone, delete) wait for
 * in-flight I/O and exclude new I/O while they switch the head layer.
 *
 * <p>Buffers: {@code read}/{@code write} use the bytes between position and limit, advance the
 * position, and keep no reference. Direct buffers avoid copies: whole aligned blocks are
 * checksummed in place and written with one positional write per run of up to 1 MiB.
 *
 * <p>Durability: a write is durable once a later {@link #flush()} returns. Instances are made by
 * {@link FileStoragePool}, which owns them: {@link #close()} is a no-op; the pool closes its stores
 * when the volume is deleted or the pool is closed, after which I/O fails with an {@link IOException}.
 */
public final class LayeredReplicaStore implements ReplicaStore {
    private static final Logger LOG = LoggerFactory.getLogger(LayeredReplicaStore.class);
    private static final int SHIFT = 12;
    private static final int STRIPES = 1024;
    private static final int MAX_RUN_BLOCKS = 256;
    /**
     * How many writes after each flush start their writeback at once ({@link Layer#startWriteback}).
     * A flush after a buffered write costs the page's write to the disk and then the device cache
     * flush, one after the other; started at write time, the page's write overlaps the reply and
     * whatever the caller does before it flushes. Measured with a C program on this machine's disk
     * (4 KiB random overwrites, 25 µs between write and fdatasync): 88 µs a write+fdatasync without,
     * 57-63 µs with. Only the first few writes after a flush, because a workload that flushes
     * rarely gains nothing and would pay a few microseconds per write and lose the page cache's
     * merging of rewrites; writes after a flush are what a database's commit looks like.
     */
    static final int EAGER_WRITEBACK_WRITES = Integer.getInteger("stowage.eagerWritebackWrites", 8);

    /** How the store asks its pool to persist a new size. */
    interface Resizer {
        void resize(LayeredReplicaStore store, long newSizeBytes) throws IOException;
    }

    private static final class Scratch {
        final ByteBuffer block = ByteBuffer.allocateDirect(BLOCK_SIZE);
        final CRC32C crc = new CRC32C();
        /** Per block of an aligned run: a zero block that is not stored. */
        final boolean[] skip = new boolean[MAX_RUN_BLOCKS];
    }

    /** The crc32c of a 4 KiB block of zeros. */
    private static final int ZERO_BLOCK_CRC =
            ChecksumTable.blockCrc(ByteBuffer.allocate(BLOCK_SIZE), 0, new CRC32C());

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    private final String volumeId;
    private final Resizer resizer;
    private final ReentrantLock[] stripes = new ReentrantLock[STRIPES];
    /** Read-locked by I/O, write-locked by the pool while it switches layers or closes. */
    private final StampedLock structure = new StampedLock();
    private volatile Layer head;
    private volatile SettleListener settleListener;
    private volatile long sizeBytes;
    private volatile String closedReason;
    /** Writes since the last flush began, counted up to {@link #EAGER_WRITEBACK_WRITES} only. */
    private final AtomicInteger writesSinceFlush = new AtomicInteger(EAGER_WRITEBACK_WRITES);
    private final LongAdder zeroBlocksSkipped = new LongAdder();

    LayeredReplicaStore(String volumeId, Layer head, long sizeBytes, Resizer resizer) {
        this.volumeId = volumeId;
        this.head = head;
        this.sizeBytes = sizeBytes;
        this.resizer = resizer;
        for (int i = 0; i < STRIPES; i++) {
            stripes[i] = new ReentrantLock();
        }
    }

    @Override
    public String volumeId() {
        return volumeId;
    }

    @Override
    public long sizeBytes() {
        return sizeBytes;
    }

    // ---------------------------------------------------------------- read

    @Override
    public void read(long offset, ByteBuffer dst) throws IOException {
        checkRange(offset, dst.remaining());
        long stamp = structure.readLock();
        try {
            ensureOpen();
            Layer h = head;
            Scratch s = SCRATCH.get();
            long pos = offset;
            while (dst.hasRemaining()) {
                long b = pos >>> SHIFT;
                int in = (int) (pos & (BLOCK_SIZE - 1));
                int n = Math.min(BLOCK_SIZE - in, dst.remaining());
                if (in == 0 && n == BLOCK_SIZE) {
                    int blocks = Math.min(dst.remaining() >>> SHIFT, MAX_RUN_BLOCKS);
                    readAlignedRun(h, b, blocks, dst, s);
                    pos += (long) blocks << SHIFT;
                } else {
                    ByteBuffer blk = s.block;
                    readBlock(h, b, blk, s);
                    blk.limit(in + n).position(in);
                    dst.put(blk);
                    pos += n;
                }
            }
        } finally {
            structure.unlockRead(stamp);
        }
    }

    /** Reads {@code blocks} whole blocks into {@code dst}, one positional read per run of one layer. */
    private void readAlignedRun(Layer h, long b, int blocks, ByteBuffer dst, Scratch s) throws IOException {
        int i = 0;
        while (i < blocks) {
            Layer owner = owner(h, b + i);
            int k = 1;
            while (i + k < blocks && owner(h, b + i + k) == owner) {
                k++;
            }
            int start = dst.position();
            int end = start + (k << SHIFT);
            if (owner == null) {
                zero(dst, start, end);
                dst.position(end);
            } else {
                int limit = dst.limit();
                dst.limit(end);
                owner.readData(dst, (b + i) << SHIFT);
                dst.limit(limit);
                for (int j = 0; j < k; j++) {
                    int p = start + (j << SHIFT);
                    long e = owner.table.get(b + i + j);
                    if (!ChecksumTable.present(e) || crc(dst, p, s) != ChecksumTable.current(e)) {
                        ByteBuffer blk = s.block;
                        readBlockLocked(h, b + i + j, blk, s);
                        blk.clear();
                        dst.put(p, blk, 0, BLOCK_SIZE);
                    }
                }
            }
            i += k;
        }
    }

    /** Fills {@code out} (cleared) with the verified content of block {@code b}. */
    private void readBlock(Layer h, long b, ByteBuffer out, Scratch s) throws IOException {
        Layer owner = owner(h, b);
        out.clear();
        if (owner == null) {
            zero(out, 0, BLOCK_SIZE);
            out.clear();
            return;
        }
        long e = owner.table.get(b);
        owner.readData(out, b << SHIFT);
        if (ChecksumTable.present(e) && crc(out, 0, s) == ChecksumTable.current(e)) {
            out.clear();
            return;
        }
        readBlockLocked(h, b, out, s);
    }

    private void readBlockLocked(Layer h, long b, ByteBuffer out, Scratch s) throws IOException {
        ReentrantLock lock = stripes[(int) (b & (STRIPES - 1))];
        lock.lock();
        try {
            resolveVerified(h, b, out, s);
        } finally {
            lock.unlock();
        }
    }

    /**
     * The careful read of one block, with its stripe held so no writer is midway: walks the chain,
     * recovers torn writes and reports corruption. Leaves {@code out} cleared (position 0, limit 4096).
     */
    private void resolveVerified(Layer h, long b, ByteBuffer out, Scratch s) throws IOException {
        for (Layer l = h; l != null; l = l.parent) {
            long e = l.table.get(b);
            if (!ChecksumTable.present(e)) {
                continue;
            }
            out.clear();
            l.readData(out, b << SHIFT);
            int crc = crc(out, 0, s);
            out.clear();
            if (crc == ChecksumTable.current(e)) {
                return;
            }
            if (ChecksumTable.previousMatches(e, crc)) {
                // The table was updated for a write whose data never landed: the old content stands.
                if (l == h) {
                    l.table.put(b, ChecksumTable.encodeClean(crc));
                }
                LOG.warn("volume {} block {}: recovered the content before a torn write in {}", volumeId, b, l.id);
                return;
            }
            if (!ChecksumTable.hasPrevious(e) && ChecksumTable.isZeroBlock(out, 0)) {
                // The first write of the block in this layer never landed: the layer does not hold it.
                if (l == h) {
                    l.table.put(b, ChecksumTable.ABSENT);
                }
                LOG.warn("volume {} block {}: dropped a torn first write in {}", volumeId, b, l.id);
                continue;
            }
            throw new ChecksumMismatchException(volumeId, b, ChecksumTable.current(e), crc);
        }
        out.clear();
        zero(out, 0, BLOCK_SIZE);
        out.clear();
    }

    /** The topmost layer holding block {@code b}, or null if none does. */
    private static Layer owner(Layer h, long b) throws IOException {
        for (Layer l = h; l != null; l = l.parent) {
            if (ChecksumTable.present(l.table.get(b))) {
                return l;
            }
        }
        return null;
    }

    // ---------------------------------------------------------------- write

    @Override
    public void write(long offset, ByteBuffer src) throws IOException {
        write(offset, src, false);
    }

    /**
     * Whole blocks go to the layer file with O_DIRECT: a resync streams a gigabyte in a few seconds,
     * and through the page cache that cost a copy per byte, the kernel's writeback of it, and eight
     * writers spinning on the file's inode lock (docs/benchmarks.md).
     */
    @Override
    public void writeBulk(long offset, ByteBuffer src) throws IOException {
        boolean aligned = (offset & (BLOCK_SIZE - 1)) == 0 && (src.remaining() & (BLOCK_SIZE - 1)) == 0;
        write(offset, src, aligned);
    }

    private void write(long offset, ByteBuffer src, boolean direct) throws IOException {
        checkRange(offset, src.remaining());
        long stamp = structure.readLock();
        try {
            ensureOpen();
            Layer h = head;
            if (src.hasRemaining()) {
                long first = offset >>> SHIFT;
                h.unsettled.markBeforeWrite(first, (int) (((offset + src.remaining() - 1) >>> SHIFT) - first + 1));
            }
            Scratch s = SCRATCH.get();
            long pos = offset;
            int length = src.remaining();
            while (src.hasRemaining()) {
                long b = pos >>> SHIFT;
                int in = (int) (pos & (BLOCK_SIZE - 1));
                int n = Math.min(BLOCK_SIZE - in, src.remaining());
                if (in == 0 && n == BLOCK_SIZE) {
                    int blocks = Math.min(src.remaining() >>> SHIFT, MAX_RUN_BLOCKS);
                    writeAlignedRun(h, b, blocks, src, s, direct);
                    pos += (long) blocks << SHIFT;
                } else {
                    writePartial(h, b, in, n, src, s);
                    pos += n;
                }
            }
            if (!direct && length > 0 && writesSinceFlush.get() < EAGER_WRITEBACK_WRITES) {
                writesSinceFlush.incrementAndGet();
                h.startWriteback(offset, length); // the kernel widens the range to whole pages
            }
        } finally {
            structure.unlockRead(stamp);
        }
    }

    /**
     * Whole blocks: checksums computed in place, table entries first, then one positional write per
     * run of blocks to store. A block of zeros that no layer holds is not stored: it reads as zeros
     * already, and a volume stays thin when zeros are written over its unwritten ranges (a
     * resync, rebuild or takeover rewrite copies whole regions, zeros included). Its checksum is
     * computed anyway, so the test costs a compare, and a scan only for blocks whose crc is the
     * zero block's.
     */
    private void writeAlignedRun(Layer h, long b, int blocks, ByteBuffer src, Scratch s, boolean direct)
            throws IOException {
        lockRange(b, blocks);
        try {
            int start = src.position();
            boolean[] skip = s.skip;
            int skipped = 0;
            int firstNew = -1; // the range of blocks this run writes for the first time in the layer
            int lastNew = -1;
            for (int j = 0; j < blocks; j++) {
                int crc = crc(src, start + (j << SHIFT), s);
                skip[j] = crc == ZERO_BLOCK_CRC && heldNowhere(h, b + j) && ChecksumTable.isZeroBlock(src, start + (j << SHIFT));
                if (skip[j]) {
                    skipped++;
                } else if (h.table.put(b + j, ChecksumTable.encode(crc, h.table.get(b + j)))) {
                    firstNew = firstNew < 0 ? j : firstNew;
                    lastNew = j;
                }
            }
            int limit = src.limit();
            try {
                if (skipped == 0) {
                    src.limit(start + (blocks << SHIFT));
                    storeRun(h, src, b, direct);
                } else {
                    zeroBlocksSkipped.add(skipped);
                    for (int j = 0; j < blocks; ) {
                        if (skip[j]) {
                            j++;
                            continue;
                        }
                        int end = j;
                        while (end < blocks && !skip[end]) {
                            end++;
                        }
                        src.limit(start + (end << SHIFT)).position(start + (j << SHIFT));
                        storeRun(h, src, b + j, direct);
                        j = end;
                    }
                }
            } finally {
                src.limit(limit).position(start + (blocks << SHIFT));
            }
            if (firstNew >= 0) {
                h.table.share(b + firstNew, lastNew - firstNew + 1);
            }
        } finally {
            unlockRange(b, blocks);
        }
    }

    /** Writes {@code src} at block {@code block} of the head layer, past the page cache when {@code direct}. */
    private static void storeRun(Layer h, ByteBuffer src, long block, boolean direct) throws IOException {
        if (direct) {
            h.writeDataDirect(src, block << SHIFT);
        } else {
            h.writeData(src, block << SHIFT);
        }
    }

    /** Whether no layer from {@code h} down holds block {@code b} (it reads as zeros without I/O). */
    private static boolean heldNowhere(Layer h, long b) throws IOException {
        for (Layer l = h; l != null; l = l.parent) {
            if (ChecksumTable.present(l.table.get(b))) {
                return false;
            }
        }
        return true;
    }

    /** Zero blocks that writes left unstored, because no layer held them (see {@link #writeAlignedRun}). */
    long zeroBlocksSkipped() {
        return zeroBlocksSkipped.sum();
    }

    /** Part of one block: read-modify-write under the block's stripe. */
    private void writePartial(Layer h, long b, int in, int n, ByteBuffer src, Scratch s) throws IOException {
        ReentrantLock lock = stripes[(int) (b & (STRIPES - 1))];
        lock.lock();
        try {
            ByteBuffer blk = s.block;
            resolveVerified(h, b, blk, s);
            long previous = h.table.get(b);
            int limit = src.limit();
            src.limit(src.position() + n);
            blk.position(in);
            blk.put(src);
            src.limit(limit);
            int crc = crc(blk, 0, s);
            boolean first = h.table.put(b, ChecksumTable.encode(crc, previous));
            blk.clear();
            h.writeData(blk, b << SHIFT);
            if (first) {
                h.table.share(b, 1);
            }
        } finally {
            lock.unlock();
        }
    }

    private void lockRange(long b, int k) {
        int s0 = (int) (b & (STRIPES - 1));
        if (s0 + k <= STRIPES) {
            for (int i = s0; i < s0 + k; i++) {
                stripes[i].lock();
            }
        } else { // wraps: take stripes in ascending order so that two ranges cannot deadlock
            for (int i = 0; i < s0 + k - STRIPES; i++) {
                stripes[i].lock();
            }
            for (int i = s0; i < STRIPES; i++) {
                stripes[i].lock();
            }
        }
    }

    private void unlockRange(long b, int k) {
        int s0 = (int) (b & (STRIPES - 1));
        for (int j = 0; j < k; j++) {
            stripes[(s0 + j) & (STRIPES - 1)].unlock();
        }
    }

    // ---------------------------------------------------------------- management

    @Override
    public void flush() throws IOException {
        long stamp = structure.readLock();
        try {
            ensureOpen();
            writesSinceFlush.set(0);
            head.forceData();
        } finally {
            structure.unlockRead(stamp);
        }
    }

    @Override
    public void writeBack() throws IOException {
        long stamp = structure.readLock();
        try {
            ensureOpen();
            head.writeBackData();
        } finally {
            structure.unlockRead(stamp);
        }
    }

    @Override
    public boolean flushCovers(java.nio.file.Path file) {
        return DurableFiles.sameFileSystem(head.path(), file);
    }

    @Override
    public void settleListener(SettleListener listener) {
        this.settleListener = listener;
    }

    @Override
    public long[] regionsRecoveredAfterCrash() throws IOException {
        return recoveredOverTheChain(false);
    }

    @Override
    public long[] regionsRecoveredAfterPowerLoss() throws IOException {
        return recoveredOverTheChain(true);
    }

    /**
     * The union over every layer of the chain (a layer frozen by a snapshot since the crash was this
     * volume's head then) of its recovered regions, or of those whose crash lost the page cache; ascending.
     */
    private long[] recoveredOverTheChain(boolean pageCacheLostOnly) throws IOException {
        java.util.TreeSet<Long> all = new java.util.TreeSet<>();
        for (Layer l = head; l != null; l = l.parent) {
            for (long r : pageCacheLostOnly ? l.recoveredRegionsWithPageCacheLost() : l.recoveredRegions()) {
                all.add(r);
            }
        }
        return all.stream().mapToLong(Long::longValue).toArray();
    }

    @Override
    public void forgetRegionsRecoveredAfterCrash() throws IOException {
        for (Layer l = head; l != null; l = l.parent) {
            l.forgetRecovered();
        }
    }

    /**
     * Table pages a head may change before a settle round writes them back even though no region
     * went idle: their private copies cost memory (see {@link ChecksumTable}), 4 KiB each, and a
     * volume written all over without pause would otherwise keep its whole table in memory.
     */
    static final long TABLE_PAGES_KEPT = 1024;

    /**
     * One settle round (see {@link UnsettledRegions}), run by the pool every few seconds: takes the
     * regions marked but not written since the previous round, flushes (the whole table included),
     * drops the table pages written back, and clears the regions' marks if no write touched them
     * meanwhile. Returns the number of regions settled. With no idle region, the round still writes
     * the table back once {@link #TABLE_PAGES_KEPT} pages have changed. Rounds of one store are
     * serialised: a second settler resetting the touched set would hide writes from the first.
     */
    synchronized int settle() throws IOException {
        Layer h;
        long[][] idle;
        SettleListener listener = settleListener;
        // Before the idle regions are taken: a write whose region is cleared below completed before it.
        Object view = listener == null ? null : listener.beforeSettle();
        long stamp = structure.writeLock();
        try {
            if (isClosed()) {
                return 0;
            }
            h = head;
            idle = h.unsettled.takeIdle();
        } finally {
            structure.unlockWrite(stamp);
        }
        if (idle == null && h.table.changedPages() < TABLE_PAGES_KEPT) {
            return 0;
        }
        h.force();
        if (listener != null) {
            listener.settled(view);
        }
        stamp = structure.writeLock();
        try {
            if (isClosed() || head != h) {
                return 0; // the layer was frozen (and settled) or the store closed meanwhile
            }
            h.table.release(); // no writer runs: a table page can be dropped with nothing put into it
            return idle == null ? 0 : h.unsettled.clearIdle(idle);
        } finally {
            structure.unlockWrite(stamp);
        }
    }

    @Override
    public void resize(long newSizeBytes) throws IOException {
        StorageIds.requireSize("newSizeBytes", newSizeBytes);
        long current = sizeBytes;
        if (newSizeBytes < current) {
            throw new IllegalArgumentException("newSizeBytes " + newSizeBytes + " is smaller than the size "
                    + current + " of volume " + volumeId + ": shrinking is not supported");
        }
        if (newSizeBytes == current) {
            return;
        }
        ensureOpen();
        resizer.resize(this, newSizeBytes);
    }

    @Override
    public long allocatedBytes() throws IOException {
        long stamp = structure.readLock();
        try {
            ensureOpen();
            return head.allocatedBytes();
        } finally {
            structure.unlockRead(stamp);
        }
    }

    /** Does nothing: the pool owns its stores (see the class comment). */
    @Override
    public void close() {
    }

    // ---------------------------------------------------------------- for the pool

    /** Excludes I/O (waiting for I/O in flight); the pool switches layers or closes in between. */
    long lockStructure() {
        return structure.writeLock();
    }

    void unlockStructure(long stamp) {
        structure.unlockWrite(stamp);
    }

    Layer head() {
        return head;
    }

    /** With the structure lock held. */
    void setHead(Layer layer) {
        head = layer;
    }

    void setSize(long newSizeBytes) {
        sizeBytes = newSizeBytes;
    }

    /** With the structure lock held: every later call fails with {@code reason}. */
    void markClosed(String reason) {
        closedReason = reason;
    }

    boolean isClosed() {
        return closedReason != null;
    }

    // ---------------------------------------------------------------- helpers

    private void ensureOpen() throws IOException {
        String reason = closedReason;
        if (reason != null) {
            throw new IOException("volume " + volumeId + ": " + reason);
        }
    }

    private void checkRange(long offset, int length) {
        if (offset < 0) {
            throw new IllegalArgumentException("offset must not be negative: " + offset);
        }
        long size = sizeBytes;
        if (offset > size || length > size - offset) {
            throw new IllegalArgumentException("offset " + offset + " + length " + length + " exceeds size " + size);
        }
    }

    private static int crc(ByteBuffer buf, int from, Scratch s) {
        return ChecksumTable.blockCrc(buf, from, s.crc);
    }

    private static void zero(ByteBuffer buf, int from, int to) {
        int i = from;
        for (; i + 8 <= to; i += 8) {
            buf.putLong(i, 0L);
        }
        for (; i < to; i++) {
            buf.put(i, (byte) 0);
        }
    }

    @Override
    public String toString() {
        return "volume " + volumeId + " (" + sizeBytes + " bytes, head " + head.id + ")";
    }
}
