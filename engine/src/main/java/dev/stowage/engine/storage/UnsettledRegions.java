package dev.stowage.engine.storage;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The regions of one layer whose data and checksums may disagree on disk: a bitmap, one bit per
 * 1 MiB region, kept durably in {@code <layer>.unsettled} next to the layer's file.
 *
 * <p>Why: a write updates the block's checksum entry (a page of the table mapping) and its data
 * (a page of the data area) in the page cache, and until a flush the kernel may write either page
 * back first. If power fails after the data page and before the table page, the block holds new
 * data under its old checksum, and a read would fail as corrupt although nothing was damaged. So
 * before a write touches a region, the region's bit is made durable ({@link #markBeforeWrite});
 * after a crash, {@link Layer#settleAfterCrash} takes the data of marked regions as the truth and
 * rewrites their checksums. A mismatch outside marked regions still fails the read: bit rot is
 * detected everywhere except in the regions written during the last few seconds before a crash
 * (the trade dm-integrity makes in its bitmap mode).
 *
 * <p>Cost: marking costs an fdatasync of this small file, but only for the first write to a
 * region since it was last settled, and concurrent markers share one fdatasync. A region is
 * settled (its bit cleared, without a sync: a bit left set only costs recovery time) once a
 * flush has covered its writes and it has then gone a whole settle round unwritten; see
 * {@link LayeredReplicaStore#settle()}.
 *
 * <p>Threading: {@link #markBeforeWrite} and {@link #touch} from any writer; {@link #takeIdle} and
 * {@link #clearIdle} from the settler with the store's writers excluded (the store's structure
 * lock), which is what makes clearing race-free: a writer either wrote before the settler took
 * its snapshot (and is in {@code touched}), or comes after the clear and marks again.
 */
final class UnsettledRegions implements Closeable {
    static final String FILE_SUFFIX = ".unsettled";
    static final int REGION_SHIFT = 20;
    /** Blocks of 4 KiB per region. */
    static final int REGION_BLOCKS = 1 << (REGION_SHIFT - 12);
    /** One file page of bits: 32,768 regions (32 GiB of volume) per page and per in-memory chunk. */
    private static final int PAGE_BYTES = 4096;
    private static final int WORDS_PER_PAGE = PAGE_BYTES / 8;
    private static final int REGIONS_PER_PAGE = PAGE_BYTES * 8;

    private final Path path;
    private final FileChannel file;
    /** Bits known durable on disk; read by writers without a lock. */
    private volatile AtomicLongArray[] durable = new AtomicLongArray[0];
    /** Regions written since the settler's last snapshot. */
    private volatile AtomicLongArray[] touched = new AtomicLongArray[0];
    private final Object growLock = new Object();
    /** One fdatasync at a time; markers queued behind it find their bits written by it. */
    private final ReentrantLock syncLock = new ReentrantLock();
    // Guarded by syncLock: what the file holds (or is about to), page by page.
    private long[][] onFile = new long[0][];
    /** Marks asked for but not yet synced, guarded by {@code pending}. */
    private final TreeSet<Long> pending = new TreeSet<>();
    private final ByteBuffer page = ByteBuffer.allocateDirect(PAGE_BYTES).order(ByteOrder.LITTLE_ENDIAN);
    /** Written under {@code syncLock} only. */
    private volatile long syncs;

    private UnsettledRegions(Path path, FileChannel file) {
        this.path = path;
        this.file = file;
    }

    /** Opens (creating if absent) the bitmap of layer {@code layerId} in {@code dir} and loads its bits. */
    static UnsettledRegions open(Path dir, String layerId) throws IOException {
        Path path = dir.resolve(layerId + FILE_SUFFIX);
        FileChannel f = FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.READ,
                StandardOpenOption.WRITE);
        try {
            UnsettledRegions u = new UnsettledRegions(path, f);
            u.load();
            return u;
        } catch (IOException | RuntimeException e) {
            f.close();
            throw e;
        }
    }

    private void load() throws IOException {
        long size = file.size();
        int pages = (int) ((size + PAGE_BYTES - 1) / PAGE_BYTES);
        onFile = new long[pages][];
        for (int p = 0; p < pages; p++) {
            page.clear();
            while (page.hasRemaining() && file.read(page, (long) p * PAGE_BYTES + page.position()) > 0) {
                // keep reading
            }
            while (page.hasRemaining()) {
                page.put((byte) 0);
            }
            long[] words = new long[WORDS_PER_PAGE];
            boolean any = false;
            for (int w = 0; w < WORDS_PER_PAGE; w++) {
                words[w] = page.getLong(w * 8);
                any |= words[w] != 0;
            }
            if (any) {
                onFile[p] = words;
                AtomicLongArray d = chunk((long) p * REGIONS_PER_PAGE, true);
                for (int w = 0; w < WORDS_PER_PAGE; w++) {
                    d.set(w, words[w]);
                }
            }
        }
    }

    Path path() {
        return path;
    }

    /** fdatasyncs made to record marks, for tests and counters. */
    long syncs() {
        return syncs;
    }

    // ---------------------------------------------------------------- the write path

    /**
     * Records that the blocks {@code [firstBlock, firstBlock + blocks)} are about to be written,
     * and returns once the regions they lie in are durably marked. Cheap when they already are.
     */
    void markBeforeWrite(long firstBlock, int blocks) throws IOException {
        long first = firstBlock >>> (REGION_SHIFT - 12);
        long last = (firstBlock + blocks - 1) >>> (REGION_SHIFT - 12);
        boolean allDurable = true;
        for (long r = first; r <= last; r++) {
            touch(r);
            allDurable &= get(durable, r);
        }
        if (!allDurable) {
            mark(first, last);
        }
    }

    private void touch(long region) {
        AtomicLongArray c = chunk(region, false);
        int w = word(region);
        long bit = 1L << region;
        if ((c.get(w) & bit) == 0) {
            c.getAndAccumulate(w, bit, (a, b) -> a | b);
        }
    }

    /**
     * Group commit: the first marker to get the sync lock writes every region queued so far and
     * syncs once; markers queued behind it then find their regions durable and return at once.
     */
    private void mark(long first, long last) throws IOException {
        synchronized (pending) {
            for (long r = first; r <= last; r++) {
                pending.add(r);
            }
        }
        syncLock.lock();
        try {
            if (allDurable(first, last)) {
                return; // a sync by another marker covered our regions
            }
            TreeSet<Long> batch;
            synchronized (pending) {
                batch = new TreeSet<>(pending);
                pending.clear();
            }
            for (long r = first; r <= last; r++) {
                batch.add(r); // ours, even if a failed sync took them off the queue
            }
            TreeSet<Integer> pages = new TreeSet<>();
            for (long r : batch) {
                int p = page(r);
                fileWords(p)[word(r)] |= 1L << r;
                pages.add(p);
            }
            for (int p : pages) {
                writePage(p);
            }
            file.force(false);
            syncs++;
            for (long r : batch) {
                chunk(r, true).getAndAccumulate(word(r), 1L << r, (a, b) -> a | b);
            }
        } finally {
            syncLock.unlock();
        }
    }

    private boolean allDurable(long first, long last) {
        for (long r = first; r <= last; r++) {
            if (!get(durable, r)) {
                return false;
            }
        }
        return true;
    }

    // ---------------------------------------------------------------- the settler

    /**
     * With writers excluded: the marked regions not written since the previous call, which are
     * clean once a flush after this call has completed, or null when there are none; and a fresh
     * start of the touched set.
     */
    long[][] takeIdle() {
        AtomicLongArray[] d = durable;
        AtomicLongArray[] t = touched;
        long[][] idle = new long[d.length][];
        boolean any = false;
        for (int p = 0; p < d.length; p++) {
            if (d[p] == null) {
                continue;
            }
            long[] words = null;
            for (int w = 0; w < WORDS_PER_PAGE; w++) {
                long bits = d[p].get(w) & ~(p < t.length && t[p] != null ? t[p].get(w) : 0);
                if (bits != 0) {
                    if (words == null) {
                        words = new long[WORDS_PER_PAGE];
                    }
                    words[w] = bits;
                }
            }
            idle[p] = words;
            any |= words != null;
        }
        for (AtomicLongArray c : t) {
            if (c != null) {
                for (int w = 0; w < WORDS_PER_PAGE; w++) {
                    c.set(w, 0);
                }
            }
        }
        return any ? idle : null;
    }

    /**
     * With writers excluded, after a flush that followed {@link #takeIdle}: clears the bits of
     * {@code idle} regions that no writer touched meanwhile and writes the pages (no sync: a bit
     * that stays set on disk only costs recovery time). Returns the number of regions cleared.
     */
    int clearIdle(long[][] idle) throws IOException {
        syncLock.lock();
        try {
            AtomicLongArray[] t = touched;
            int cleared = 0;
            for (int p = 0; p < idle.length; p++) {
                if (idle[p] == null) {
                    continue;
                }
                long[] words = fileWords(p);
                AtomicLongArray d = chunk((long) p * REGIONS_PER_PAGE, true);
                for (int w = 0; w < WORDS_PER_PAGE; w++) {
                    long bits = idle[p][w] & ~(p < t.length && t[p] != null ? t[p].get(w) : 0);
                    if (bits != 0) {
                        d.getAndAccumulate(w, ~bits, (a, b) -> a & b);
                        words[w] &= ~bits;
                        cleared += Long.bitCount(bits);
                    }
                }
                writePage(p);
            }
            return cleared;
        } finally {
            syncLock.unlock();
        }
    }

    /** With writers excluded and everything flushed (a snapshot froze the layer, or the pool closes): clears all. */
    void clearAll() throws IOException {
        syncLock.lock();
        try {
            for (AtomicLongArray c : durable) {
                if (c != null) {
                    for (int w = 0; w < WORDS_PER_PAGE; w++) {
                        c.set(w, 0);
                    }
                }
            }
            boolean wrote = false;
            for (int p = 0; p < onFile.length; p++) {
                if (onFile[p] != null) {
                    Arrays.fill(onFile[p], 0);
                    writePage(p); // zeros in place: the file keeps its blocks, later marks stay overwrites
                    wrote = true;
                }
            }
            if (wrote) {
                file.force(false);
            }
        } finally {
            syncLock.unlock();
        }
    }

    /** The marked regions, in order: what recovery must settle after a crash. */
    List<Long> marked() {
        List<Long> regions = new ArrayList<>();
        AtomicLongArray[] d = durable;
        for (int p = 0; p < d.length; p++) {
            if (d[p] == null) {
                continue;
            }
            for (int w = 0; w < WORDS_PER_PAGE; w++) {
                long bits = d[p].get(w);
                while (bits != 0) {
                    int b = Long.numberOfTrailingZeros(bits);
                    regions.add((long) p * REGIONS_PER_PAGE + w * 64L + b);
                    bits &= bits - 1;
                }
            }
        }
        return regions;
    }

    boolean isMarked(long region) {
        return get(durable, region);
    }

    // ---------------------------------------------------------------- helpers

    private long[] fileWords(int p) {
        if (p >= onFile.length) {
            onFile = Arrays.copyOf(onFile, p + 1);
        }
        if (onFile[p] == null) {
            onFile[p] = new long[WORDS_PER_PAGE];
        }
        return onFile[p];
    }

    private void writePage(int p) throws IOException {
        long[] words = fileWords(p);
        page.clear();
        for (int w = 0; w < WORDS_PER_PAGE; w++) {
            page.putLong(w * 8, words[w]);
        }
        long pos = (long) p * PAGE_BYTES;
        while (page.hasRemaining()) {
            pos += file.write(page, pos);
        }
    }

    private static int page(long region) {
        return (int) (region / REGIONS_PER_PAGE);
    }

    private static int word(long region) {
        return (int) ((region >>> 6) % WORDS_PER_PAGE);
    }

    private static boolean get(AtomicLongArray[] chunks, long region) {
        int p = page(region);
        return p < chunks.length && chunks[p] != null && (chunks[p].get(word(region)) & (1L << region)) != 0;
    }

    /** The chunk of {@code durable} (or of {@code touched}) holding {@code region}, made if absent. */
    private AtomicLongArray chunk(long region, boolean ofDurable) {
        int p = page(region);
        AtomicLongArray[] chunks = ofDurable ? durable : touched;
        if (p < chunks.length && chunks[p] != null) {
            return chunks[p];
        }
        synchronized (growLock) {
            chunks = ofDurable ? durable : touched;
            if (p < chunks.length && chunks[p] != null) {
                return chunks[p];
            }
            AtomicLongArray[] grown = p < chunks.length ? chunks.clone() : Arrays.copyOf(chunks, p + 1);
            grown[p] = new AtomicLongArray(WORDS_PER_PAGE);
            if (ofDurable) {
                durable = grown;
            } else {
                touched = grown;
            }
            return grown[p];
        }
    }

    @Override
    public void close() throws IOException {
        file.close();
    }

    /** Closes and removes the file. */
    void closeAndDelete() throws IOException {
        close();
        java.nio.file.Files.deleteIfExists(path);
    }
}
