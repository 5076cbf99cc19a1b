package dev.stowage.engine.replication.net;

import dev.stowage.engine.storage.ReplicaStore;
import java.io.IOException;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The replica server's state of one volume: its store, region generations, epoch file, fence and
 * counters. Shared by every connection that opened the volume.
 *
 * <p>Fencing: a request runs between {@link #enter} and {@link #exit} holding the fence's read
 * lock; raising the epoch takes the write lock, so once a raise to epoch E is answered no request
 * with an epoch below E is still running or can start.
 *
 * <p>Deletion: {@link #markDeleted} takes the write lock too, so it waits for the requests
 * admitted before it; afterwards {@link #enter} and {@link #raise} fail with
 * {@link DeletedException} and nothing touches the volume's files again.
 *
 * <p>Regions in doubt (docs/replication.md, "Takeover"): writes and flushes carry the coordinator's
 * completion watermark, every write up to which completed on every healthy replica; the volume
 * keeps the highest it heard (in memory: a restarted server instead marks the regions its store's
 * crash recovery took as written, see {@link ReplicaServer#volume}). A region whose generation lies
 * above it may hold a write that other replicas lack; {@link #inDoubt} lists them for a
 * coordinator taking the volume over.
 *
 * <p>Threading: thread-safe.
 */
final class ReplicaVolume implements ReplicaStore.SettleListener {
    /**
     * The watermark before any was heard: above every real generation (an epoch has 23 bits), below
     * {@link RegionGenerations#IN_DOUBT}, so that only in-doubt regions lie above it.
     */
    static final long NO_WATERMARK = Long.MIN_VALUE;
    private static final Logger LOG = LoggerFactory.getLogger(ReplicaVolume.class);
    final String volumeId;
    final ReplicaStore store;
    final RegionGenerations generations;
    final EpochFile epoch;
    private final ReentrantReadWriteLock fence = new ReentrantReadWriteLock();
    private volatile boolean deleted;
    private final java.util.concurrent.atomic.AtomicLong watermark = new java.util.concurrent.atomic.AtomicLong(NO_WATERMARK);
    /**
     * Read-held by a write from its store write to its generation record; write-held for a moment by
     * {@link #beforeSettle}, so that no write is between the two when a settle round looks. A
     * StampedLock: no reentrancy to track, so a read hold costs one compare-and-set.
     */
    private final java.util.concurrent.locks.StampedLock recording = new java.util.concurrent.locks.StampedLock();
    /** Whether the store's flush also makes the generation file's pages durable (see {@link #flush}). */
    private final boolean generationsRideDataFlush;

    final LongAdder requests = new LongAdder();
    final LongAdder writes = new LongAdder();
    final LongAdder bytesWritten = new LongAdder();
    final LongAdder reads = new LongAdder();
    final LongAdder bytesRead = new LongAdder();
    final LongAdder flushes = new LongAdder();
    /** {@link #bytesWritten} as of the start of the latest completed flush. */
    private final java.util.concurrent.atomic.AtomicLong bytesAtFlush = new java.util.concurrent.atomic.AtomicLong();

    ReplicaVolume(String volumeId, ReplicaStore store, RegionGenerations generations, EpochFile epoch) {
        this.volumeId = volumeId;
        this.store = store;
        this.generations = generations;
        this.epoch = epoch;
        this.generationsRideDataFlush = store.flushCovers(generations.path());
        store.settleListener(this);
    }

    /**
     * The generations recorded so far. A settle round clears the unsettled marks of regions idle
     * since the previous round, after which a crash recovery no longer names them: their records
     * must be durable by then, or a crash would leave such a region claiming an older generation
     * than its data, and a write a dead coordinator left on it alone could go unnoticed.
     */
    @Override
    public Object beforeSettle() {
        long stamp = recording.writeLock();
        try {
            return generations.unpersisted();
        } finally {
            recording.unlockWrite(stamp);
        }
    }

    @Override
    @SuppressWarnings("unchecked")
    public void settled(Object view) throws IOException {
        generations.persist((java.util.Map<Long, Long>) view);
    }


    /**
     * Admits a request carrying {@code requestEpoch}: raises the persisted epoch first (durably)
     * if the request's is newer. Returns true with the fence's read lock held (call {@link #exit});
     * false if the epoch is stale (nothing held; {@code epoch.current()} says the replica's epoch).
     *
     * @throws DeletedException if the volume was deleted (nothing held)
     */
    boolean enter(long requestEpoch) throws IOException {
        while (true) {
            fence.readLock().lock();
            if (deleted) {
                fence.readLock().unlock();
                throw new DeletedException(volumeId);
            }
            long current = epoch.current();
            if (requestEpoch == current) {
                return true;
            }
            fence.readLock().unlock();
            if (requestEpoch < current) {
                return false;
            }
            raise(requestEpoch);
        }
    }

    void exit() {
        fence.readLock().unlock();
    }

    /**
     * Raises the epoch once every admitted request has finished; returns the epoch in force.
     *
     * @throws DeletedException if the volume was deleted
     */
    long raise(long newEpoch) throws IOException {
        fence.writeLock().lock();
        try {
            if (deleted) {
                throw new DeletedException(volumeId);
            }
            long before = epoch.current();
            long now = epoch.raise(newEpoch);
            if (now != before) {
                LOG.info("volume {}: epoch raised from {} to {} (durable)", volumeId, before, now);
            }
            return now;
        } finally {
            fence.writeLock().unlock();
        }
    }

    /**
     * Marks the volume deleted once every admitted request has finished, then closes its region
     * generations. Idempotent.
     */
    void markDeleted() throws IOException {
        fence.writeLock().lock();
        try {
            if (deleted) {
                return;
            }
            deleted = true;
        } finally {
            fence.writeLock().unlock();
        }
        close();
    }

    /** Closes the region generations (the volume went, or see {@link #shutdown}). */
    void close() throws IOException {
        store.settleListener(null); // no more settle rounds through the closed generations
        generations.close();
    }

    /**
     * Closes at a clean shutdown of the server. The regions in doubt only in memory (above the
     * watermark heard, which a restart forgets) are first kept as crash marks of the current
     * epoch: a coordinator of a later epoch then still finds a write that a coordinator now gone
     * left on this replica alone, while the coordinator of this epoch, if it lives on, is not
     * misled (see {@link RegionGenerations#markInDoubt}).
     */
    void shutdown() throws IOException {
        try {
            long[] above = generations.regionsAbove(watermark.get(), 0);
            if (above.length > 0) {
                generations.markInDoubt(above, epoch.current());
            }
        } finally {
            close();
        }
    }

    /**
     * Writes {@code parts} back to back from {@code offset}, records their regions at
     * {@code generation} (or as in doubt) and counts them: one admitted WRITE, from the wire or
     * in-process. {@code watermark}: the coordinator's, 0 if none.
     */
    void write(long offset, long generation, long watermark, boolean inDoubt, java.nio.ByteBuffer... parts)
            throws IOException {
        heard(watermark);
        long at = offset;
        long stamp = recording.readLock();
        try {
            for (java.nio.ByteBuffer b : parts) {
                int len = b.remaining();
                store.write(at, b);
                at += len;
            }
            generations.record(offset, at - offset, inDoubt ? RegionGenerations.IN_DOUBT : generation);
        } finally {
            recording.unlockRead(stamp);
        }
        counted(at - offset);
    }

    private void counted(long length) {
        writes.increment();
        bytesWritten.add(length);
    }

    /**
     * Keeps {@code w} if it is above the watermark heard so far; 0 says none. Not atomic: two writes
     * racing may leave the lower of their watermarks, which only puts more regions in doubt, and
     * costs no compare-and-set loop on every write.
     */
    void heard(long w) {
        long cur = watermark.get();
        if (w != 0 && (cur == NO_WATERMARK || Long.compareUnsigned(w, cur) > 0)) {
            watermark.set(w);
        }
    }

    /** The regions in doubt (see the class comment) for a coordinator of {@code epoch}, ascending. */
    long[] inDoubt(long epoch) throws IOException {
        return generations.regionsAbove(watermark.get(), epoch);
    }

    /** Per thread: a 4 KiB-aligned buffer for bulk writes, which go to disk with O_DIRECT. */
    private static final ThreadLocal<java.nio.ByteBuffer> BULK = new ThreadLocal<>();

    /**
     * A resync or rebuild copy of whole regions, whose generation on the source was
     * {@code generation}: written with {@link dev.stowage.engine.storage.ReplicaStore#writeBulk}
     * (from the payload itself when it is one direct buffer starting on a 4 KiB boundary, as
     * {@link FrameCodec} receives large payloads, otherwise gathered into one such buffer first),
     * and the regions take exactly that generation, lower or not ({@link RegionGenerations#assign}):
     * they now hold the source's content, whatever they held before.
     */
    void writeBulk(long offset, long generation, java.nio.ByteBuffer... parts) throws IOException {
        java.nio.ByteBuffer src = parts.length == 1 && ReplicaStore.isBlockAligned(parts[0]) ? parts[0] : gathered(parts);
        int n = src.remaining();
        long stamp = recording.readLock();
        try {
            store.writeBulk(offset, src);
            generations.assign(offset, n, generation);
        } finally {
            recording.unlockRead(stamp);
        }
        counted(n);
    }

    /** {@code parts} copied into this thread's aligned bulk buffer, ready to read. */
    private static java.nio.ByteBuffer gathered(java.nio.ByteBuffer... parts) {
        int total = 0;
        for (java.nio.ByteBuffer b : parts) {
            total += b.remaining();
        }
        java.nio.ByteBuffer all = BULK.get();
        if (all == null || all.capacity() < total) {
            all = ReplicaStore.blockAlignedBuffer(total);
            BULK.set(all);
        }
        all.clear();
        for (java.nio.ByteBuffer b : parts) {
            all.put(b.duplicate());
        }
        return all.flip();
    }

    /** Reads {@code dst.remaining()} bytes at {@code offset} and counts them: one admitted READ. */
    void read(long offset, java.nio.ByteBuffer dst) throws IOException {
        int n = dst.remaining();
        store.read(offset, dst);
        reads.increment();
        bytesRead.add(n);
    }

    /**
     * Makes every admitted write durable ({@code watermark}: the coordinator's, 0 if none), and the
     * region generations recorded before it (see {@link RegionGenerations}).
     *
     * <p>Where the generation file shares the data's file system, one device cache flush covers
     * both: the data is handed to the device first (a failed writeback fails the flush before any
     * generation claims it), then the generation pages, then the store's flush empties the device
     * cache. Until that flush returns, a power loss may keep a generation page and lose the data it
     * names; the regions written since their last settle round are then taken as in doubt by every
     * coordinator (docs/replication.md, "Power loss"). Elsewhere the data is flushed first and the
     * generations after it, so that the file never claims data that is not on disk: two flushes.
     */
    void flush(long watermark) throws IOException {
        heard(watermark);
        long covered = bytesWritten.sum();
        java.util.Map<Long, Long> recorded = generations.unpersisted();
        if (recorded.isEmpty()) {
            store.flush();
        } else if (generationsRideDataFlush) {
            store.writeBack();
            if (generations.writeBack(recorded)) {
                store.flush();
                generations.persisted(recorded);
            } else {
                store.flush();
                generations.persist(recorded);
            }
        } else {
            store.flush();
            generations.persist(recorded);
        }
        flushes.increment();
        bytesAtFlush.accumulateAndGet(covered, Math::max);
    }

    /** Whether a flush makes data and generations durable with one device flush (see {@link #flush}). */
    boolean generationsRideDataFlush() {
        return generationsRideDataFlush;
    }

    /**
     * Bytes written since the last completed flush started: at most what a flush now has to write
     * back before its device cache flush (the store starts a flush's first writes on their way to
     * the disk as they arrive). A write still in progress is not counted yet.
     */
    long bytesSinceFlush() {
        return bytesWritten.sum() - bytesAtFlush.get();
    }

    boolean isDeleted() {
        return deleted;
    }

    VolumeCounters counters() {
        return new VolumeCounters(requests.sum(), writes.sum(), bytesWritten.sum(), reads.sum(),
                bytesRead.sum(), flushes.sum());
    }

    /** The volume was deleted while a connection still held a handle to it. */
    static final class DeletedException extends IOException {
        private static final long serialVersionUID = 1L;

        DeletedException(String volumeId) {
            super("volume " + volumeId + " was deleted");
        }
    }
}
