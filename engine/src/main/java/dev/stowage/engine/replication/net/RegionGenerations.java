package dev.stowage.engine.replication.net;

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
 * <p>Durability, and why the file never runs ahead of the data: {@link #record} changes memory
 * only (a map of the regions recorded since they were last persisted). A flush takes
 * {@link #unpersisted()} before it makes the data durable and hands that batch to {@link #persist}
 * after, which writes it to the file and forces it. So a generation reaches the file only once the
 * data it names is on disk. (An earlier version recorded straight into the mapping; the kernel may
 * write a dirty mapped page back at any time, so after a power loss a replica could claim a
 * generation whose data was lost, and a resync would then skip that region.) A crash loses the
 * unpersisted records: the replica then claims older generations than it holds, and a resync copies
 * more than it needed to, never less.
 *
 * <p>Threading: thread-safe; records are serialised by the table's monitor (a few regions each);
 * a persist forces the file outside the monitor, so writes go on meanwhile. Mappings are released
 * when the table is garbage collected: {@link #close()} only closes the file, so a racing reader
 * never touches unmapped memory.
 */
public final class RegionGenerations implements Closeable {
    public static final int REGION_SHIFT = 20;
    public static final long REGION_BYTES = 1L << REGION_SHIFT;
    private static final int CHUNK_SHIFT = 20;
    private static final long CHUNK_BYTES = 1L << CHUNK_SHIFT;
    private static final int REGIONS_PER_CHUNK_SHIFT = CHUNK_SHIFT - 3;
    private static final long REGION_MASK = (1L << REGIONS_PER_CHUNK_SHIFT) - 1;

    private final Path path;
    private final FileChannel channel;
    private MappedByteBuffer[] chunks = new MappedByteBuffer[0];
    private long fileLength;
    private boolean closed;
    /** Region to generation, for records not yet persisted; each value above the file's. */
    private final Map<Long, Long> unpersisted = new HashMap<>();

    private RegionGenerations(Path path, FileChannel channel) throws IOException {
        this.path = path;
        this.channel = channel;
        this.fileLength = channel.size();
    }

    /** Opens (creating if absent) the table of {@code volumeId} in {@code replicationDir}. */
    public static RegionGenerations open(Path replicationDir, String volumeId) throws IOException {
        Files.createDirectories(replicationDir);
        Path p = replicationDir.resolve(volumeId + ".gen");
        boolean existed = Files.exists(p);
        FileChannel ch = FileChannel.open(p, StandardOpenOption.CREATE, StandardOpenOption.READ,
                StandardOpenOption.WRITE);
        if (!existed) {
            EpochFile.fsyncDirectory(replicationDir);
        }
        return new RegionGenerations(p, ch);
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
    }

    /** The generation of {@code count} regions from {@code firstRegion}; 0 for regions never written. */
    public synchronized long[] read(long firstRegion, int count) throws IOException {
        if (firstRegion < 0 || count < 0) {
            throw new IllegalArgumentException("firstRegion and count must be >= 0: " + firstRegion + ", " + count);
        }
        ensureOpen();
        long[] out = new long[count];
        for (int i = 0; i < count; i++) {
            out[i] = current(firstRegion + i);
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
        if (batch.isEmpty()) {
            return;
        }
        // Only the chunks this batch names: each force is an msync, and so a device cache flush.
        java.util.Set<MappedByteBuffer> touched = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        synchronized (this) {
            ensureOpen();
            for (Map.Entry<Long, Long> e : batch.entrySet()) {
                long r = e.getKey();
                MappedByteBuffer m = chunk(r, true);
                int at = (int) ((r & REGION_MASK) << 3);
                if (Long.compareUnsigned(m.getLong(at), e.getValue()) < 0) {
                    m.putLong(at, e.getValue());
                }
                touched.add(m); // also when a concurrent flush wrote it first: it may not have forced yet
            }
        }
        for (MappedByteBuffer m : touched) {
            m.force();
        }
        synchronized (this) {
            // entries raised again meanwhile stay until a later persist
            batch.forEach(unpersisted::remove);
        }
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
