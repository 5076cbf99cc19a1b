package dev.stowage.engine.replication.net;

import dev.stowage.engine.storage.DurableFiles;
import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * The highest write generation of each 1 MiB region of one replica volume, kept durably next to
 * its data so that a returning replica can be resynced region by region (DESIGN invariant 4).
 *
 * <p>File {@code <replicationDir>/<volumeId>.gen}: one little-endian u64 per region, region
 * {@code r} at byte {@code 8r}; a sparse file memory-mapped lazily in 1 MiB chunks (131072
 * regions, 128 GiB of volume, each), so regions never written cost nothing and read as 0.
 *
 * <p>Durability: {@link #record} changes memory only (a map of the regions recorded since they
 * were last persisted). A flush takes {@link #unpersisted()} before it makes the data durable, and
 * the batch reaches the file in one of two ways ({@code ReplicaVolume#flush}):
 * <ul>
 *   <li>{@link #writeBack}, when the file shares the data's file system: written to the file and
 *       handed to the device after the data was, and made durable by the data's own device cache
 *       flush. One device flush per replica flush instead of two. Until that flush returns, a power
 *       loss may keep the generation page and lose the data it names; the regions concerned are
 *       recent (still marked unsettled by the store), and a recovery in a later boot puts them in
 *       doubt for every coordinator ({@link #EVERY_EPOCH}), so a resync copies them.</li>
 *   <li>{@link #persist}: written and forced after the data is durable, so the file never runs
 *       ahead of the data. A settle round uses it too.</li>
 * </ul>
 * Either way, once the flush returns the file holds the batch durably: a file lagging an
 * acknowledged flush would make a resync from this replica skip regions it should copy. (An
 * earlier version recorded straight into the mapping; the kernel may write a dirty mapped page
 * back at any time, so the file could run ahead of the data unseen by any crash mark.) A crash
 * loses the unpersisted records: the replica then claims older generations than it holds, and its
 * crash marks name those regions.
 *
 * <p>In doubt: the value {@link #IN_DOUBT} says that a region's content is not described by any
 * generation: a write reached it while a resync had not yet brought the region up to date. It
 * compares above every real generation, so later writes never lower it; only a copy of the whole
 * region ({@link #assign}) does. A resync copies every region whose generation differs from the
 * source's, so an in-doubt region is always copied.
 *
 * <p>Crash marks ({@link #markInDoubt}): a region that this node's crash recovery took as written
 * may hold a write that was in flight when the node died, whose record died with it. Whether that
 * matters depends on who asks. The coordinator of the epoch the replica had at the crash saw that
 * write fail here, so it never counts on it, and every write it completed carries a generation the
 * file compares correctly against: to it the region reads at its recorded generation. A coordinator
 * of a later epoch cannot know whether the write reached other replicas: to it the region reads
 * {@link #IN_DOUBT}. So each mark keeps the epoch it was made at ({@code <volumeId>.doubt}, pairs of
 * little-endian u64 region and epoch, replaced atomically); a copy of the region, or a write covering
 * all of it, removes the mark (lazily: a removal lost in a crash only copies a region once more).
 *
 * <p>Threading: thread-safe; records are serialised by the table's monitor (a few regions each);
 * a persist forces the file outside the monitor, so writes go on meanwhile. Mappings are released
 * when the table is garbage collected: {@link #close()} only closes the file, so a racing reader
 * never touches unmapped memory.
 */
public final class RegionGenerations implements Closeable {
    public static final int REGION_SHIFT = 20;
    public static final long REGION_BYTES = 1L << REGION_SHIFT;
    /** The generation of a region whose content no generation describes (see the class comment). */
    public static final long IN_DOUBT = -1L;
    /** A crash mark's epoch that puts its region in doubt for every coordinator, of any epoch (epochs are >= 0). */
    public static final long EVERY_EPOCH = -1L;
    private static final int CHUNK_SHIFT = 20;
    private static final long CHUNK_BYTES = 1L << CHUNK_SHIFT;
    private static final int REGIONS_PER_CHUNK_SHIFT = CHUNK_SHIFT - 3;
    private static final long REGION_MASK = (1L << REGIONS_PER_CHUNK_SHIFT) - 1;
    private static final int PAGE_BYTES = 4096;

    private final Path path;
    private final FileChannel channel;
    private MappedByteBuffer[] chunks = new MappedByteBuffer[0];
    private long fileLength;
    private boolean closed;
    /** Region to generation, for records not yet persisted; each value above the file's. */
    private final Map<Long, Long> unpersisted = new HashMap<>();
    /** Crash marks: region to the epoch the replica had when its node crashed (see the class comment). */
    private final java.util.TreeMap<Long, Long> doubt = new java.util.TreeMap<>();
    private final Path doubtPath;
    /** Whether {@link #doubt} lost entries since its file was last written. */
    private boolean doubtCleared;

    private RegionGenerations(Path path, FileChannel channel, Path doubtPath) throws IOException {
        this.path = path;
        this.channel = channel;
        this.fileLength = channel.size();
        this.doubtPath = doubtPath;
        if (Files.exists(doubtPath)) {
            java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(Files.readAllBytes(doubtPath))
                    .order(ByteOrder.LITTLE_ENDIAN);
            while (b.remaining() >= 16) {
                doubt.put(b.getLong(), b.getLong());
            }
        }
    }

    /** The file of the crash marks of {@code volumeId}. */
    static Path doubtPath(Path replicationDir, String volumeId) {
        return replicationDir.resolve(volumeId + ".doubt");
    }

    /** Opens (creating if absent) the table of {@code volumeId} in {@code replicationDir}. */
    public static RegionGenerations open(Path replicationDir, String volumeId) throws IOException {
        Files.createDirectories(replicationDir);
        Path p = replicationDir.resolve(volumeId + ".gen");
        boolean existed = Files.exists(p);
        FileChannel ch = FileChannel.open(p, StandardOpenOption.CREATE, StandardOpenOption.READ,
                StandardOpenOption.WRITE);
        if (!existed) {
            DurableFiles.fsyncDirectory(replicationDir);
        }
        try {
            return new RegionGenerations(p, ch, doubtPath(replicationDir, volumeId));
        } catch (IOException | RuntimeException e) {
            ch.close();
            throw e;
        }
    }

    public Path path() {
        return path;
    }

    /** The region holding byte {@code offset}. */
    public static long regionOf(long offset) {
        return offset >>> REGION_SHIFT;
    }

    /** Raises the generation of every region that {@code [offset, offset+length)} touches to at least {@code generation}. */
    public synchronized void record(long offset, long length, long generation) throws IOException {
        if (offset < 0 || length < 0) {
            throw new IllegalArgumentException("offset and length must be >= 0: " + offset + ", " + length);
        }
        ensureOpen();
        if (length == 0) {
            return;
        }
        long first = regionOf(offset);
        long last = regionOf(offset + length - 1);
        for (long r = first; r <= last; r++) {
            if (Long.compareUnsigned(current(r), generation) < 0) {
                unpersisted.put(r, generation);
            }
        }
        if (!doubt.isEmpty()) {
            // A region written whole holds exactly that write now.
            long whole = (offset + REGION_BYTES - 1) >>> REGION_SHIFT;
            long end = (offset + length) >>> REGION_SHIFT;
            for (long r = whole; r < end; r++) {
                doubtCleared |= doubt.remove(r) != null;
            }
        }
    }

    /**
     * Sets the generation of every region that {@code [offset, offset+length)} touches to exactly
     * {@code generation}, lower or higher than before: the regions now hold a copy of another
     * replica's regions at that generation. The copy must cover each region whole (the last one
     * may end at the end of the volume).
     */
    public synchronized void assign(long offset, long length, long generation) throws IOException {
        if (offset < 0 || length <= 0) {
            throw new IllegalArgumentException("offset must be >= 0 and length > 0: " + offset + ", " + length);
        }
        ensureOpen();
        for (long r = regionOf(offset); r <= regionOf(offset + length - 1); r++) {
            if (current(r) != generation) {
                unpersisted.put(r, generation);
            }
            doubtCleared |= doubt.remove(r) != null;
        }
    }

    /**
     * Marks {@code regions} in doubt for coordinators of epochs after {@code epoch} (see the class
     * comment; {@link #EVERY_EPOCH} for all), durably before returning. A region marked already
     * keeps the earlier of the two epochs: a second crash never makes a region less doubtful.
     */
    public synchronized void markInDoubt(long[] regions, long epoch) throws IOException {
        ensureOpen();
        for (long r : regions) {
            doubt.merge(r, epoch, Math::min);
        }
        writeDoubt();
    }

    private void writeDoubt() throws IOException {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(doubt.size() * 16).order(ByteOrder.LITTLE_ENDIAN);
        doubt.forEach((r, e) -> b.putLong(r).putLong(e));
        DurableFiles.replace(doubtPath, b.flip());
        doubtCleared = false;
    }

    /** Whether region {@code r} reads as {@link #IN_DOUBT} to a coordinator of {@code epoch}. */
    private boolean doubtedBy(long r, long epoch) {
        Long markedAt = doubt.get(r);
        return markedAt != null && markedAt < epoch;
    }

    /**
     * The regions whose generation is above {@code generation} (unsigned), or crash-marked before
     * {@code epoch}, ascending.
     */
    public synchronized long[] regionsAbove(long generation, long epoch) throws IOException {
        ensureOpen();
        java.util.TreeSet<Long> out = new java.util.TreeSet<>();
        long regionsOnFile = fileLength >>> 3;
        for (long c = 0; (c << REGIONS_PER_CHUNK_SHIFT) < regionsOnFile; c++) {
            MappedByteBuffer m = chunk(c << REGIONS_PER_CHUNK_SHIFT, false);
            if (m == null) {
                continue;
            }
            for (int i = 0; i < (1 << REGIONS_PER_CHUNK_SHIFT); i++) {
                long g = m.getLong(i << 3);
                if (g != 0 && Long.compareUnsigned(g, generation) > 0) {
                    out.add((c << REGIONS_PER_CHUNK_SHIFT) + i);
                }
            }
        }
        for (Map.Entry<Long, Long> e : unpersisted.entrySet()) {
            if (Long.compareUnsigned(e.getValue(), generation) > 0) {
                out.add(e.getKey());
            } else {
                out.remove(e.getKey()); // assigned lower than the file says
            }
        }
        doubt.forEach((r, markedAt) -> {
            if (markedAt < epoch) {
                out.add(r);
            }
        });
        return out.stream().mapToLong(Long::longValue).toArray();
    }

    /** The generation of {@code count} regions from {@code firstRegion}; 0 for regions never written. */
    public long[] read(long firstRegion, int count) throws IOException {
        return read(firstRegion, count, 0);
    }

    /**
     * As {@link #read(long, int)}, as a coordinator of {@code epoch} sees them: crash-marked regions
     * read {@link #IN_DOUBT} to coordinators of later epochs than the mark's.
     */
    public synchronized long[] read(long firstRegion, int count, long epoch) throws IOException {
        if (firstRegion < 0 || count < 0) {
            throw new IllegalArgumentException("firstRegion and count must be >= 0: " + firstRegion + ", " + count);
        }
        ensureOpen();
        long[] out = new long[count];
        for (int i = 0; i < count; i++) {
            long r = firstRegion + i;
            out[i] = doubtedBy(r, epoch) ? IN_DOUBT : current(r);
        }
        return out;
    }

    private long current(long region) throws IOException {
        Long recorded = unpersisted.get(region);
        return recorded != null ? recorded : persisted(region);
    }

    private long persisted(long region) throws IOException {
        MappedByteBuffer m = chunk(region, false);
        return m == null ? 0 : m.getLong((int) ((region & REGION_MASK) << 3));
    }

    /**
     * The records not yet persisted, as of now: take this before making the data durable, and
     * pass it to {@link #persist} once it is.
     */
    public synchronized Map<Long, Long> unpersisted() {
        return new HashMap<>(unpersisted);
    }

    /** Writes {@code batch} (from {@link #unpersisted()}) to the file and makes it durable. */
    public void persist(Map<Long, Long> batch) throws IOException {
        // Only the chunks this batch names: each force is an msync, and so a device cache flush.
        java.util.Set<MappedByteBuffer> chunksNamed = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        chunksNamed.addAll(write(batch).values());
        for (MappedByteBuffer m : chunksNamed) {
            m.force();
        }
        persisted(batch);
    }

    /**
     * Writes {@code batch} (from {@link #unpersisted()}) to the file and hands its pages to the
     * device, without flushing the device's cache: the caller's next device flush on this file
     * system makes it durable, and only then may it call {@link #persisted}. Returns false, having
     * written the batch to the file only, where the pages cannot be handed over alone (then call
     * {@link #persist}).
     */
    public boolean writeBack(Map<Long, Long> batch) throws IOException {
        Map<Long, MappedByteBuffer> pages = write(batch);
        for (long page : pages.keySet()) {
            if (!DurableFiles.writeBackWithoutFlush(channel, page, PAGE_BYTES)) {
                return false;
            }
        }
        return true;
    }

    /** Forgets {@code batch}'s records once it is durable; records raised (or assigned) again meanwhile stay. */
    public synchronized void persisted(Map<Long, Long> batch) {
        batch.forEach(unpersisted::remove);
    }

    /**
     * Writes {@code batch} into the mapping (and the crash marks' file, if copies removed marks):
     * returns the file pages it names, by offset, with their chunks.
     */
    private Map<Long, MappedByteBuffer> write(Map<Long, Long> batch) throws IOException {
        synchronized (this) {
            if (doubtCleared && !closed) {
                writeDoubt(); // marks removed by copies and whole-region writes, now flushed
            }
        }
        java.util.TreeMap<Long, MappedByteBuffer> pages = new java.util.TreeMap<>();
        if (batch.isEmpty()) {
            return pages;
        }
        synchronized (this) {
            ensureOpen();
            for (Map.Entry<Long, Long> e : batch.entrySet()) {
                long r = e.getKey();
                MappedByteBuffer m = chunk(r, true);
                int at = (int) ((r & REGION_MASK) << 3);
                long v = e.getValue();
                // Raise the file; lower it only to the region's value now (an assign): an older
                // batch's higher value must not overwrite a newer assign.
                Long now = unpersisted.get(r);
                if (Long.compareUnsigned(m.getLong(at), v) < 0 || (now != null && now == v)) {
                    m.putLong(at, v);
                }
                // also when a concurrent flush wrote it first: that flush may not have forced it yet
                pages.put(((r >>> REGIONS_PER_CHUNK_SHIFT) << CHUNK_SHIFT) + (at & ~(PAGE_BYTES - 1)), m);
            }
        }
        return pages;
    }

    private MappedByteBuffer chunk(long region, boolean create) throws IOException {
        ensureOpen();
        long c = region >>> REGIONS_PER_CHUNK_SHIFT;
        if (c > Integer.MAX_VALUE / 2) {
            throw new IllegalArgumentException("region " + region + " is out of range");
        }
        int ci = (int) c;
        if (ci < chunks.length && chunks[ci] != null) {
            return chunks[ci];
        }
        long start = c << CHUNK_SHIFT;
        if (!create && start >= fileLength) {
            return null;
        }
        MappedByteBuffer m = channel.map(FileChannel.MapMode.READ_WRITE, start, CHUNK_BYTES);
        m.order(ByteOrder.LITTLE_ENDIAN);
        if (ci >= chunks.length) {
            chunks = Arrays.copyOf(chunks, ci + 1);
        }
        chunks[ci] = m;
        fileLength = Math.max(fileLength, start + CHUNK_BYTES);
        return m;
    }

    private void ensureOpen() throws IOException {
        if (closed) {
            throw new IOException("region generations " + path + " are closed");
        }
    }

    /**
     * Closes; later calls fail with {@link IOException}. Unpersisted records are dropped: their data
     * was not flushed, and a table that lags its data only makes a later resync copy more.
     */
    @Override
    public synchronized void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        unpersisted.clear();
        chunks = new MappedByteBuffer[0];
        channel.close();
    }
}
