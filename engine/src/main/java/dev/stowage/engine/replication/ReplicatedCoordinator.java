package dev.stowage.engine.replication;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.LongAdder;
import dev.stowage.engine.replication.net.StaleEpochException;
import dev.stowage.engine.storage.ReplicaStore;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The single writer of a replicated volume, on the node that attached it. Every write gets a
 * generation ({@code epoch << 40 | sequence}) and goes to every HEALTHY and REBUILDING replica at
 * once; it is acknowledged when every HEALTHY replica acknowledged it. A replica that fails a write
 * or a flush is marked STALE in metadata (through {@link ReplicaHealth}) <em>before</em> the failing
 * request returns, so no acknowledged write can be missing from a replica the metadata calls healthy.
 * With no healthy replica left, I/O fails.
 *
 * <p>Reads go to the local replica when it is healthy, else to another healthy one; a replica that
 * fails a read (a checksum mismatch, say) is skipped and the block is rewritten on it from the
 * replica that answered.
 *
 * <p>Resync and rebuild ({@link #resync}) copy, region by region, exactly the regions whose
 * generation on a healthy replica differs from the target's (missed writes, or a write a dead
 * coordinator left on the target alone); a region being copied is locked against writes so that
 * a copy never overwrites newer data.
 *
 * <p>Takeover ({@link #reconcileInDoubt}, docs/replication.md): a write goes to every replica at
 * once, so when a coordinator dies its writes in flight may have reached some replicas and not
 * others. Writes and flushes tell the replicas the completion watermark
 * ({@link CompletionWatermark}); a new coordinator asks each healthy replica for its regions in
 * doubt (above the watermark it heard, or marked in doubt) and rewrites them on every replica from
 * one of them before it serves.
 *
 * <p>Fencing: a replica that has seen a newer epoch refuses requests with
 * {@link StaleEpochException}; the coordinator then stops serving for good.
 *
 * <p>Threading: thread-safe. Blocking calls ({@link dev.stowage.engine.block.BlockTarget} methods, {@link #resync}) run on
 * frontend or maintenance threads, never on an event loop.
 */
public final class ReplicatedCoordinator implements Coordinator {
    private static final Logger LOG = LoggerFactory.getLogger(ReplicatedCoordinator.class);
    /** Size of a resync region: the unit of generation tracking on replicas. */
    public static final int REGION_SIZE = 1 << 20;
    private static final int LOCK_STRIPES = 1024;
    /** Regions compared and copied between two progress reports. */
    private static final int PROGRESS_BATCH = 16;
    /**
     * Settles the writes of {@link #writeAsync} that an answer failed: marking a replica STALE
     * waits on the metadata store, which an event loop must not. Idle threads go after a minute.
     */
    private static final java.util.concurrent.ExecutorService SETTLERS = java.util.concurrent.Executors.newCachedThreadPool(
            new io.netty.util.concurrent.DefaultThreadFactory("write-settle", true));

    /** Where replica state changes are recorded (the volume's metadata record). */
    public interface ReplicaHealth {
        /** Records {@code nodeId}'s replica as STALE; returns only once that is durable. */
        void markStale(String nodeId, Throwable cause) throws IOException;

        /** Records {@code nodeId}'s replica as REBUILDING (it receives writes but is not read). */
        void markRebuilding(String nodeId) throws IOException;

        /** Records {@code nodeId}'s replica as HEALTHY once it holds every acknowledged write. */
        void markHealthy(String nodeId) throws IOException;

        /** Records how far the resync or rebuild of {@code nodeId}'s replica has come (0-100). */
        void rebuildProgress(String nodeId, int percent) throws IOException;
    }

    /** What the coordinator believes of each replica. */
    public enum State { HEALTHY, REBUILDING, STALE }

    /** Nodes whose replica answered although their node had left the cluster (logged once each). */
    private final Set<String> answeredDespite = ConcurrentHashMap.newKeySet();

    private final String volumeId;
    private final long epoch;
    private final String localNodeId;
    private final ReplicaHealth health;
    private final IoThrottle throttle;
    /**
     * Generations of writes, and which have ended: a write ends when it completed, or, if it failed
     * on every healthy replica, once {@link #repairFailedWrites} made its regions agree.
     */
    private final CompletionWatermark writes;
    /** Writes that failed on every healthy replica, by generation: their first and last region. */
    private final Map<Long, long[]> failedWrites = new ConcurrentHashMap<>();
    private final Map<String, ReplicaMember> members = new ConcurrentHashMap<>();
    private final RegionLocks locks = new RegionLocks(LOCK_STRIPES);
    private final Object stateLock = new Object();
    private final LongAdder resyncBytes = new LongAdder();
    private volatile long sizeBytes;
    private volatile boolean fenced;
    private volatile boolean closed;

    /**
     * @param replicas endpoints with the state metadata gives them; only HEALTHY ones serve reads
     */
    public ReplicatedCoordinator(String volumeId, long epoch, long sizeBytes, String localNodeId,
                                 Map<ReplicaEndpoint, State> replicas, ReplicaHealth health, IoThrottle throttle) {
        if (epoch <= 0 || epoch >= (1L << 23)) {
            throw new IllegalArgumentException("epoch " + epoch + " outside 1.." + ((1L << 23) - 1));
        }
        this.volumeId = volumeId;
        this.epoch = epoch;
        this.sizeBytes = sizeBytes;
        this.localNodeId = localNodeId;
        this.health = health;
        this.throttle = throttle;
        this.writes = new CompletionWatermark(epoch);
        replicas.forEach((endpoint, state) -> members.put(endpoint.nodeId(), new ReplicaMember(endpoint, state)));
    }

    @Override
    public String volumeId() { return volumeId; }

    @Override
    public long epoch() { return epoch; }

    /** The coordinator's view of each replica's state. */
    public Map<String, State> states() {
        Map<String, State> m = new ConcurrentHashMap<>();
        members.forEach((node, member) -> m.put(node, member.state));
        return Map.copyOf(m);
    }

    /**
     * Records that {@code nodeId}'s replica can no longer be reached (its node left the cluster),
     * so that it stops receiving writes and the repair can start even while the volume is idle;
     * unless the replica still answers this coordinator. A node leaves the cluster when its lease
     * in the metadata store expires, which says that the node lost the store, not that it lost
     * this coordinator: when etcd is away for longer than the lease TTL, every node leaves at once
     * on its return, and marking their replicas STALE would leave the volume with fewer healthy
     * replicas (two of three were marked in the test that found this) and a resync of everything
     * written meanwhile, for replicas that took every write. So the replica is asked a request
     * first ({@code reason} names why it is suspect); one that answers it within the request
     * deadline keeps its state.
     */
    public void markUnreachable(String nodeId, String reason) throws IOException {
        ReplicaMember m = members.get(nodeId);
        if (m == null || m.state == State.STALE) {
            return;
        }
        IOException unanswered;
        try {
            await(m.endpoint.generationsAsync(0, 0));
            if (answeredDespite.add(nodeId)) {
                LOG.info("volume {}: {}, but its replica still answers this coordinator; it stays {}", volumeId,
                        reason, m.state);
            }
            return;
        } catch (StaleEpochException e) {
            fence(e); // it answered: another coordinator has the volume now
            throw e;
        } catch (IOException e) {
            unanswered = new IOException(reason + "; its replica does not answer either: " + e.getMessage(), e);
        }
        answeredDespite.remove(nodeId);
        markStale(m, "membership check", unanswered);
    }

    /** Drops a replica that was replaced by one on another node. */
    public void forget(String nodeId) {
        ReplicaMember m = members.remove(nodeId);
        if (m != null) {
            m.endpoint.close();
        }
    }

    /** Bytes copied by resyncs and rebuilds so far. */
    public long resyncBytes() { return resyncBytes.sum(); }

    public boolean fenced() { return fenced; }

    @Override
    public long sizeBytes() { return sizeBytes; }

    /** Grows the volume as the frontend sees it; the control plane grew every replica first. */
    @Override
    public void resize(long newSizeBytes) { this.sizeBytes = newSizeBytes; }

    @Override
    public void setLimits(IoLimits limits) { throttle.setLimits(limits); }

    @Override
    public IoLimits limits() { return throttle.limits(); }

    @Override
    public void write(long offset, ByteBuffer src) throws IOException {
        checkUsable();
        repairFailedWrites();
        int length = src.remaining();
        throttle(length);
        int[] stripes = stripesOf(offset, length);
        locks.share(stripes);
        try {
            replicate(offset, src);
        } finally {
            locks.unshare(stripes);
        }
        src.position(src.limit());
    }

    /**
     * Whether a write may complete after {@link #writeAsync} returned: on the event loop that
     * receives the last remote replica's answer. With the local replica alone it completes inside
     * the call, and a frontend need not copy its data.
     */
    @Override
    public boolean writesInBackground() {
        return members.size() > 1 || !members.containsKey(localNodeId);
    }

    /**
     * As {@link #write}, but the calling thread does not wait for the replicas: the write is sent
     * (and the local replica written) here, and {@code done} runs on the thread that receives the
     * last answer, usually a replication event loop. A frontend thread is then free for the next
     * request at once, and no thread is parked and woken per write. A write whose answers include a
     * failure is settled ({@link #settle}: replicas marked STALE in metadata first, which blocks)
     * on {@link #SETTLERS}, and {@code done} runs there. Its regions stay admitted
     * ({@link RegionLocks#admit}) until it completed, so copies and quiesces wait for it.
     */
    @Override
    public void writeAsync(long offset, ByteBuffer src, WriteCompletion done) {
        Replication r;
        RegionLocks.Admission admission;
        try {
            checkUsable();
            repairFailedWrites();
            int length = src.remaining();
            throttle(length);
            admission = locks.admit(stripesOf(offset, length));
            try {
                r = send(offset, src);
            } catch (IOException | RuntimeException e) {
                admission.release();
                throw e;
            }
        } catch (IOException e) {
            done.completed(e);
            return;
        } catch (RuntimeException e) {
            done.completed(new IOException("volume " + volumeId + ": write failed: " + e, e));
            return;
        }
        r.whenAnswered(() -> {
            if (r.allAcknowledged()) {
                end(r, true);
                admission.release();
                complete(done, null);
                return;
            }
            try {
                SETTLERS.execute(() -> {
                    IOException failure = null;
                    try {
                        finish(r);
                    } catch (IOException e) {
                        failure = e;
                    } finally {
                        admission.release();
                    }
                    complete(done, failure);
                });
            } catch (RuntimeException e) { // rejected: cannot happen with an unbounded pool, but never lose done
                end(r, false);
                admission.release();
                complete(done, new IOException("volume " + volumeId + ": could not settle a write: " + e, e));
            }
        });
    }

    private void complete(WriteCompletion done, IOException failure) {
        try {
            done.completed(failure);
        } catch (RuntimeException e) {
            LOG.error("volume {}: a write's completion failed", volumeId, e);
        }
    }

    /**
     * Sends one write to every writable replica and waits for them, the regions' locks held. A
     * write that fails on every healthy replica may still have landed on some: it stays below the
     * watermark, and its regions are rewritten ({@link #repairFailedWrites}) before the next write.
     */
    private void replicate(long offset, ByteBuffer src) throws IOException {
        finish(send(offset, src));
    }

    /** Gives a write its generation and sends it to every writable replica, the local one last. */
    private Replication send(long offset, ByteBuffer src) throws IOException {
        int length = src.remaining();
        long firstRegion = offset / REGION_SIZE;
        long lastRegion = (offset + Math.max(length, 1) - 1) / REGION_SIZE;
        long generation = writes.begin();
        List<ReplicaMember> targets;
        try {
            targets = writable();
        } catch (IOException | RuntimeException e) {
            writes.end(generation); // sent nowhere
            throw e;
        }
        List<CompletableFuture<Void>> futures = new ArrayList<>(targets.size());
        long watermark = writes.current();
        try {
            for (ReplicaMember m : targets) {
                futures.add(m.endpoint.writeAsync(offset, src.duplicate(), generation, watermark,
                        m.inDoubtFor(firstRegion, lastRegion)));
            }
        } catch (RuntimeException e) { // some may have it: rewritten alike before the next write
            failedWrites.put(generation, new long[] {firstRegion, lastRegion});
            throw e;
        }
        return new Replication(generation, firstRegion, lastRegion, targets, futures);
    }

    /** Waits for {@code r}'s answers, settles them ({@link #settle}) and ends its generation. */
    private void finish(Replication r) throws IOException {
        boolean completed = false;
        try {
            settle(r.targets, r.answers, "write");
            completed = true;
        } finally {
            end(r, completed);
        }
    }

    private void end(Replication r, boolean completed) {
        if (completed || fenced) {
            writes.end(r.generation);
        } else {
            failedWrites.put(r.generation, new long[] {r.firstRegion, r.lastRegion});
        }
    }

    /**
     * Rewrites the regions of writes that failed on every healthy replica (so that they may have
     * landed on some and not others) from the replica reads go to; a write that cannot be repaired
     * yet stays below the watermark and is tried again before the next write.
     */
    private void repairFailedWrites() throws IOException {
        if (failedWrites.isEmpty()) {
            return;
        }
        ByteBuffer buffer = ReplicaStore.blockAlignedBuffer(REGION_SIZE);
        for (Map.Entry<Long, long[]> e : failedWrites.entrySet()) {
            for (long r = e.getValue()[0]; r <= e.getValue()[1]; r++) {
                rewriteRegion(r, buffer);
            }
            if (failedWrites.remove(e.getKey()) != null) {
                writes.end(e.getKey());
                LOG.info("volume {}: regions {}-{} of a write that failed on every replica rewritten alike",
                        volumeId, e.getValue()[0], e.getValue()[1]);
            }
        }
    }

    /**
     * Takeover: before this coordinator serves any I/O, makes its healthy replicas agree on every
     * region that a previous coordinator may have left written on some of them and not on others
     * (the union of what each reports in doubt): each such region is read from the replica reads
     * go to and written to every replica as a write of this coordinator. A replica that fails the
     * query or the writes is marked STALE as for any write. Returns the regions rewritten.
     */
    public int reconcileInDoubt() throws IOException {
        checkUsable();
        List<ReplicaMember> targets = readOrder();
        List<CompletableFuture<long[]>> asks = new ArrayList<>(targets.size());
        for (ReplicaMember m : targets) {
            asks.add(m.endpoint.inDoubtAsync());
        }
        java.util.TreeSet<Long> regions = new java.util.TreeSet<>();
        List<CompletableFuture<Void>> answered = new ArrayList<>(targets.size());
        for (CompletableFuture<long[]> ask : asks) {
            answered.add(ask.thenAccept(found -> {
                synchronized (regions) {
                    for (long r : found) {
                        regions.add(r);
                    }
                }
            }));
        }
        settle(targets, answered, "in-doubt query");
        long count = (sizeBytes + REGION_SIZE - 1) / REGION_SIZE;
        int rewritten = 0;
        ByteBuffer buffer = ReplicaStore.blockAlignedBuffer(REGION_SIZE);
        for (long r : regions) {
            if (r < count) {
                rewriteRegion(r, buffer);
                rewritten++;
            }
        }
        flush();
        return rewritten;
    }

    /**
     * Rewrites {@code region} on every writable replica with what the replica reads go to holds,
     * as a write of this coordinator, its lock held against writes meanwhile; {@code buffer} (a
     * region's worth, block-aligned) carries the data.
     */
    private void rewriteRegion(long region, ByteBuffer buffer) throws IOException {
        long offset = region * REGION_SIZE;
        int length = (int) Math.min(REGION_SIZE, sizeBytes - offset);
        buffer.clear().limit(length);
        int stripe = (int) (region % LOCK_STRIPES);
        locks.exclusive(stripe);
        try {
            read(offset, buffer.duplicate());
            replicate(offset, buffer.duplicate());
        } finally {
            locks.unlockExclusive(stripe);
        }
    }

    @Override
    public void flush() throws IOException {
        checkUsable();
        repairFailedWrites();
        List<ReplicaMember> targets = writable();
        List<CompletableFuture<Void>> futures = new ArrayList<>(targets.size());
        long watermark = writes.current();
        for (ReplicaMember m : targets) {
            futures.add(m.endpoint.flushAsync(watermark));
        }
        settle(targets, futures, "flush");
    }

    /**
     * Holds every region's lock (in stripe order, as writes and copies take theirs) so that no write
     * is in flight or admitted, flushes every writable replica, then runs {@code action}: replicas
     * snapshotted meanwhile agree block for block. Without it, a write in flight during a snapshot
     * could land before one replica's snapshot and after another's.
     */
    @Override
    public void whileQuiesced(QuiescedAction action) throws IOException {
        int held = 0;
        try {
            for (; held < LOCK_STRIPES; held++) {
                locks.exclusive(held);
            }
            flush();
            action.run();
        } finally {
            for (int i = 0; i < held; i++) {
                locks.unlockExclusive(i);
            }
        }
    }

    @Override
    public void read(long offset, ByteBuffer dst) throws IOException {
        checkUsable();
        throttle(dst.remaining());
        IOException last = null;
        List<ReplicaMember> failed = new ArrayList<>();
        for (ReplicaMember m : readOrder()) {
            try {
                await(m.endpoint.readAsync(offset, dst.duplicate()));
                if (!failed.isEmpty()) {
                    repair(failed, offset, dst.duplicate());
                }
                dst.position(dst.limit());
                return;
            } catch (StaleEpochException e) {
                fence(e);
                throw e;
            } catch (IOException e) {
                LOG.warn("volume {}: read of {} bytes at {} from node {} failed ({}); trying another replica",
                        volumeId, dst.remaining(), offset, m.endpoint.nodeId(), e.getMessage());
                failed.add(m);
                last = e;
            }
        }
        throw last != null ? last : new IOException("volume " + volumeId + ": no healthy replica to read from");
    }

    /** Rewrites a range that failed to read on {@code failed} replicas with the data another one returned. */
    private void repair(List<ReplicaMember> failed, long offset, ByteBuffer good) {
        long generation = writes.begin();
        int[] stripes = stripesOf(offset, good.remaining());
        locks.share(stripes);
        try {
            for (ReplicaMember m : failed) {
                try {
                    await(m.endpoint.writeAsync(offset, good.duplicate(), generation, writes.current(), false));
                    LOG.info("volume {}: repaired {} bytes at {} on node {} from another replica", volumeId,
                            good.remaining(), offset, m.endpoint.nodeId());
                } catch (IOException e) {
                    LOG.warn("volume {}: repair on node {} failed: {}", volumeId, m.endpoint.nodeId(), e.getMessage());
                }
            }
        } finally {
            locks.unshare(stripes);
            writes.end(generation);
        }
    }

    /**
     * Brings {@code target}'s replica up to date from a healthy one, online: marks it REBUILDING (so it
     * receives new writes), copies every region whose generation on the source differs from the
     * target's, flushes it and marks it HEALTHY. Returns the bytes copied. {@code bandwidth} caps the copy (0: none).
     */
    public long resync(ReplicaEndpoint target, long bandwidthBytesPerSecond) throws IOException {
        return resync(target, bandwidthBytesPerSecond, false);
    }

    /**
     * As {@link #resync(ReplicaEndpoint, long)}; with {@code fullCopy} every region is copied, not only
     * those with a higher generation (a new replica of a volume restored from a snapshot, whose
     * unwritten regions hold the snapshot's data at generation 0).
     */
    public long resync(ReplicaEndpoint target, long bandwidthBytesPerSecond, boolean fullCopy) throws IOException {
        checkUsable();
        // The target comes with a fresh connection: it replaces whatever endpoint the node had.
        ReplicaMember member = new ReplicaMember(target, State.STALE);
        long regions = (sizeBytes + REGION_SIZE - 1) / REGION_SIZE;
        member.upToDate = new java.util.concurrent.atomic.AtomicLongArray((int) ((regions + 63) >>> 6));
        ReplicaMember previous = members.put(target.nodeId(), member);
        if (previous != null && previous.endpoint != target) {
            previous.endpoint.close();
        }
        ReplicaMember source = readOrder().stream().filter(m -> m != member).findFirst()
                .orElseThrow(() -> new IOException("volume " + volumeId + ": no healthy replica to resync from"));
        health.markRebuilding(target.nodeId());
        member.state = State.REBUILDING;
        // Writes that chose their targets before the line above, without this replica, finish before
        // any generation is compared: the comparison must see them on the source.
        for (int stripe = 0; stripe < LOCK_STRIPES; stripe++) {
            locks.exclusive(stripe);
            locks.unlockExclusive(stripe);
        }
        LOG.info("volume {}: resync of node {} from node {} started", volumeId, target.nodeId(),
                source.endpoint.nodeId());
        long copied = 0;
        int reported = 0;
        try (RegionCopies copies = new RegionCopies(volumeId, REGION_SIZE, bandwidthBytesPerSecond)) {
            for (long first = 0; first < regions; first += PROGRESS_BATCH) {
                int count = (int) Math.min(PROGRESS_BATCH, regions - first);
                long[] have = await(member.endpoint.generationsAsync(first, count));
                long[] want = await(source.endpoint.generationsAsync(first, count));
                for (int i = 0; i < count; i++) {
                    long region = first + i;
                    // Any difference is copied, also a target ahead of the source or in doubt: its
                    // region may hold a write that a dead coordinator left on it alone.
                    if (!fullCopy && want[i] == have[i]) {
                        member.finished(region); // current: later writes may record their generation
                    } else {
                        copies.submit(regionLength(region), buffer -> copyRegion(source, member, region, buffer));
                    }
                    copied += copies.collectFinished(); // a failed copy ends the resync here
                }
                int percent = (int) (100 * (first + count) / regions);
                if (percent >= reported + 5 && percent < 100) {
                    health.rebuildProgress(target.nodeId(), percent);
                    if (percent / 25 > reported / 25) {
                        // A long rebuild shows in the log that it moves, and how fast (bench/cluster.sh
                        // reads these lines to tell the copy's steady rate from its start-up).
                        LOG.info("volume {}: resync of node {} at {}%, {} bytes copied", volumeId,
                                target.nodeId(), percent, copied);
                    }
                    reported = percent;
                }
            }
            copied += copies.collectAll();
            await(member.endpoint.flushAsync());
        } catch (IOException e) {
            member.state = State.STALE;
            health.markStale(target.nodeId(), e);
            throw e;
        }
        health.markHealthy(target.nodeId());
        member.upToDate = null; // every region finished
        member.state = State.HEALTHY;
        LOG.info("volume {}: resync of node {} done, {} bytes copied", volumeId, target.nodeId(), copied);
        return copied;
    }

    /** The bytes of {@code region}: a whole region, but for the volume's last one. */
    private int regionLength(long region) {
        return (int) Math.min(REGION_SIZE, sizeBytes - region * REGION_SIZE);
    }

    /** Copies {@code region} from {@code source} to {@code target} through {@code buffer}, the region's lock held. */
    private long copyRegion(ReplicaMember source, ReplicaMember target, long region, ByteBuffer buffer) throws IOException {
        long offset = region * REGION_SIZE;
        int length = regionLength(region);
        int stripe = (int) (region % LOCK_STRIPES);
        locks.exclusive(stripe);
        try {
            long generation = await(source.endpoint.generationsAsync(region, 1))[0];
            buffer.clear().limit(length);
            await(source.endpoint.readAsync(offset, buffer.duplicate()));
            await(target.endpoint.copyAsync(offset, buffer.duplicate(), generation));
            target.finished(region); // before writes to the region resume
        } finally {
            locks.unlockExclusive(stripe);
        }
        resyncBytes.add(length);
        return length;
    }

    /**
     * Waits for every target, then records the replicas that failed as STALE, but only when a
     * healthy one succeeded. When none did, the request fails and no replica is marked: nothing was
     * acknowledged that a replica could have missed (invariant 3 needs no record), and when every
     * replica fails at once the likely cause is this coordinator's own network, not all of them.
     * Marking them all STALE would leave the volume with no healthy replica anywhere, so not even a
     * new coordinator on a well-connected node could attach it.
     */
    private void settle(List<ReplicaMember> targets, List<CompletableFuture<Void>> futures, String what) throws IOException {
        int healthyAcks = 0;
        List<ReplicaMember> failed = List.of(); // allocated on the first failure only: this runs for every write
        List<IOException> causes = List.of();
        StaleEpochException stale = null;
        for (int i = 0; i < targets.size(); i++) {
            ReplicaMember m = targets.get(i);
            try {
                await(futures.get(i));
                if (m.state == State.HEALTHY) {
                    healthyAcks++;
                }
            } catch (StaleEpochException e) {
                stale = stale == null ? e : stale;
            } catch (IOException e) {
                if (failed.isEmpty()) {
                    failed = new ArrayList<>(2);
                    causes = new ArrayList<>(2);
                }
                failed.add(m);
                causes.add(e);
            }
        }
        if (stale != null) {
            fence(stale);
            throw stale;
        }
        if (failed.isEmpty() && healthyAcks > 0) {
            return;
        }
        if (healthyAcks == 0) {
            IOException e = new IOException("volume " + volumeId + ": " + what + " failed on every healthy replica;"
                    + " none is marked stale (nothing was acknowledged)", causes.isEmpty() ? null : causes.get(0));
            causes.stream().skip(1).forEach(e::addSuppressed);
            throw e;
        }
        for (int i = 0; i < failed.size(); i++) {
            markStale(failed.get(i), what, causes.get(i));
        }
    }

    /**
     * Records {@code m} as STALE, durably, before the request that failed on it may return
     * (invariant 3). Callers that queued behind an attempt which failed (the metadata store did not
     * answer) share its failure instead of trying again one after the other: with 16 writes in
     * flight when a node is cut off from everything, each would otherwise wait out its own store
     * timeout in turn, and the application would hang for minutes before it saw an error.
     */
    private void markStale(ReplicaMember m, String what, IOException cause) throws IOException {
        long asked = System.nanoTime();
        synchronized (stateLock) {
            if (fenced) {
                throw new IOException("volume " + volumeId + ": fenced at epoch " + epoch + "; not recording "
                        + m.endpoint.nodeId() + " as stale", cause);
            }
            if (m.state == State.STALE) {
                return;
            }
            if (m.markFailure != null && m.markFailedAt - asked > 0) {
                IOException shared = new IOException(m.markFailure.getMessage(), m.markFailure);
                shared.addSuppressed(cause);
                throw shared;
            }
            LOG.warn("volume {}: replica on node {} failed a {} ({}); marking it STALE", volumeId,
                    m.endpoint.nodeId(), what, cause.getMessage());
            try {
                health.markStale(m.endpoint.nodeId(), cause);
            } catch (IOException | RuntimeException e) {
                m.markFailure = e instanceof IOException io ? io : new IOException(e.getMessage(), e);
                m.markFailedAt = System.nanoTime();
                throw e;
            }
            m.markFailure = null;
            m.state = State.STALE;
        }
    }

    private void fence(StaleEpochException e) {
        if (!fenced) {
            fenced = true;
            LOG.error("volume {}: fenced at epoch {}: a replica has seen epoch {}; this coordinator stops",
                    volumeId, epoch, e.current());
        }
    }

    /**
     * Replicas that take writes, the local one last: an in-process endpoint does its work inside
     * the call, so the remote requests are sent first and overlap it.
     */
    private List<ReplicaMember> writable() throws IOException {
        List<ReplicaMember> out = new ArrayList<>();
        boolean anyHealthy = false;
        ReplicaMember local = members.get(localNodeId);
        for (ReplicaMember m : members.values()) {
            if (m != local && m.state != State.STALE) {
                out.add(m);
                anyHealthy |= m.state == State.HEALTHY;
            }
        }
        if (local != null && local.state != State.STALE) {
            out.add(local);
            anyHealthy |= local.state == State.HEALTHY;
        }
        if (!anyHealthy) {
            throw new IOException("volume " + volumeId + ": no healthy replica; refusing I/O rather than serve stale data");
        }
        return out;
    }

    /** Healthy replicas, the local one first. */
    private List<ReplicaMember> readOrder() throws IOException {
        List<ReplicaMember> out = new ArrayList<>();
        ReplicaMember local = members.get(localNodeId);
        if (local != null && local.state == State.HEALTHY) {
            out.add(local);
        }
        for (ReplicaMember m : members.values()) {
            if (m != local && m.state == State.HEALTHY) {
                out.add(m);
            }
        }
        if (out.isEmpty()) {
            throw new IOException("volume " + volumeId + ": no healthy replica; refusing I/O rather than serve stale data");
        }
        return out;
    }

    private int[] stripesOf(long offset, int length) {
        return locks.stripesOf(offset / REGION_SIZE, (offset + Math.max(length, 1) - 1) / REGION_SIZE);
    }

    private void throttle(int bytes) throws IOException {
        try {
            throttle.acquire(bytes);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("volume " + volumeId + ": interrupted while throttled");
        }
    }

    private void checkUsable() throws IOException {
        if (closed) {
            throw new IOException("volume " + volumeId + ": coordinator is closed");
        }
        if (fenced) {
            throw new IOException("volume " + volumeId + ": fenced, the volume was attached elsewhere (epoch " + epoch + ")");
        }
    }

    /**
     * Waits for {@code future}; rethrows the IOException it failed with (others wrapped in one), an
     * interrupt as {@link InterruptedIOException}. Also {@link RegionCopies}'s wait.
     */
    static <T> T await(java.util.concurrent.Future<T> future) throws IOException {
        try {
            return future.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted");
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof IOException io) {
                throw io;
            }
            throw new IOException(cause.getMessage(), cause);
        }
    }

    /** Stops serving; closes the endpoints. Unflushed writes are not flushed: the frontend flushes first. */
    @Override
    public void close() {
        closed = true;
        members.values().forEach(m -> m.endpoint.close());
    }
}
