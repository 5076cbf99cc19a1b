package dev.stowage.engine.cluster;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.Optional;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.LongSupplier;

/**
 * A {@link MetadataStore} for one process, kept in the node's data directory: an in-memory sorted
 * map, an append-only {@link MutationLog} of every change since the last {@link SnapshotFile}, and
 * the snapshot. The log is compacted into a new snapshot on open and whenever it grows beyond
 * {@link Options#compactLogBytes()}.
 *
 * <p>Durability: a put, delete or lease revocation completes only after its log record was forced
 * to the device. Revisions are global, start at 1 and keep increasing across restarts. If the log
 * cannot be written the store fails closed: every later change fails with
 * {@link IllegalStateException} (reads go on serving the durable state).
 *
 * <p>Leases live in this process only. While the store is open it keeps every granted lease alive;
 * closing a lease revokes it and deletes its keys. Keys still attached to a lease when the process
 * stopped are deleted on the next open, as a dead process's leases would expire.
 *
 * <p>Threading: thread-safe. Changes run one at a time on a store-owned writer thread (which also
 * completes their futures: do not block in dependent stages of those futures); reads run on the
 * caller's thread and return completed futures. Watch listeners run on a second store-owned thread,
 * one event at a time, in revision order. Watches can start at any revision since this store was
 * opened, within the last {@link Options#watchHistoryEvents()} changes; older revisions are refused
 * with {@link CompactedRevisionException}.
 *
 * <p>Exclusion: the directory is locked ({@code FileChannel.tryLock} on {@code LOCK}) while open; a
 * second open, from this or another process, fails with {@link IllegalStateException}.
 *
 * <p>Values are copied on the way in and out; callers keep ownership of their arrays.
 */
public final class EmbeddedMetadataStore implements MetadataStore {
    private static final Logger log = LoggerFactory.getLogger(EmbeddedMetadataStore.class);
    /** Largest value accepted, as etcd's default request limit. */
    public static final int MAX_VALUE_BYTES = 1536 * 1024;
    /** Largest key accepted, in UTF-8 bytes. */
    public static final int MAX_KEY_BYTES = 4096;
    static final String LOG_NAME = "log";
    static final String LOCK_NAME = "LOCK";

    /** Tunables; {@link #defaults()} suits a node. */
    public record Options(LongSupplier nanoTicker, long compactLogBytes, int watchHistoryEvents,
                          Duration leaseCheckInterval) {
        public Options {
            if (nanoTicker == null) {
                throw new IllegalArgumentException("nanoTicker: required");
            }
            if (compactLogBytes < 1) {
                throw new IllegalArgumentException("compactLogBytes: must be positive, was " + compactLogBytes);
            }
            if (watchHistoryEvents < 1) {
                throw new IllegalArgumentException("watchHistoryEvents: must be positive, was " + watchHistoryEvents);
            }
            if (leaseCheckInterval == null || leaseCheckInterval.isNegative() || leaseCheckInterval.isZero()) {
                throw new IllegalArgumentException("leaseCheckInterval: must be positive, was " + leaseCheckInterval);
            }
        }

        /** System.nanoTime, compaction past 16 MiB of log, 10,000 events of watch history, 100 ms lease checks. */
        public static Options defaults() {
            return new Options(System::nanoTime, 16L << 20, 10_000, Duration.ofMillis(100));
        }

        public Options withNanoTicker(LongSupplier ticker) {
            return new Options(ticker, compactLogBytes, watchHistoryEvents, leaseCheckInterval);
        }

        public Options withCompactLogBytes(long bytes) {
            return new Options(nanoTicker, bytes, watchHistoryEvents, leaseCheckInterval);
        }

        public Options withWatchHistoryEvents(int events) {
            return new Options(nanoTicker, compactLogBytes, events, leaseCheckInterval);
        }
    }

    private final Path dir;
    private final Options options;
    private final FileChannel lockChannel;
    private final FileLock lock;
    private final MutationLog mutationLog;
    private final ScheduledThreadPoolExecutor writer;
    private final ExecutorService dispatcher;
    private final ReentrantReadWriteLock stateLock = new ReentrantReadWriteLock();
    // Guarded by stateLock; changed only on the writer thread (which may read without the lock).
    private final NavigableMap<String, Versioned> entries;
    private long revision;
    private final WatchHub watches;
    // Writer thread only.
    private final Map<Long, EmbeddedLease> leases = new HashMap<>();
    private volatile Throwable failure;
    private volatile boolean closed;

    private EmbeddedMetadataStore(Path dir, Options options, FileChannel lockChannel, FileLock lock,
                                  MutationLog mutationLog, NavigableMap<String, Versioned> entries, long revision) {
        this.dir = dir;
        this.options = options;
        this.lockChannel = lockChannel;
        this.lock = lock;
        this.mutationLog = mutationLog;
        this.entries = entries;
        this.revision = revision;
        this.writer = new ScheduledThreadPoolExecutor(1, daemon("stowage-metadata-writer"));
        this.dispatcher = Executors.newSingleThreadExecutor(daemon("stowage-metadata-watch"));
        this.watches = new WatchHub(dispatcher, options.watchHistoryEvents(), revision, stateLock.writeLock());
        long intervalNanos = options.leaseCheckInterval().toNanos();
        writer.scheduleWithFixedDelay(this::expireLeases, intervalNanos, intervalNanos, TimeUnit.NANOSECONDS);
    }

    /** Opens the store in {@code dir} with {@link Options#defaults()}. */
    public static EmbeddedMetadataStore open(Path dir) throws IOException {
        return open(dir, Options.defaults());
    }

    /**
     * Opens (creating if needed) the store in {@code dir}: locks the directory, loads the snapshot,
     * replays the log (dropping a torn last record), deletes keys of leases from the previous
     * process, and compacts.
     *
     * @throws IllegalStateException when the store is already open, in this or another process
     * @throws IOException on I/O errors or corrupt files (the message names the file and offset)
     */
    public static EmbeddedMetadataStore open(Path dir, Options options) throws IOException {
        Files.createDirectories(dir);
        FileChannel lockChannel = FileChannel.open(dir.resolve(LOCK_NAME), StandardOpenOption.CREATE,
                StandardOpenOption.WRITE);
        FileLock lock = null;
        MutationLog mutationLog = null;
        try {
            try {
                lock = lockChannel.tryLock();
            } catch (OverlappingFileLockException e) {
                throw new IllegalStateException("metadata store " + dir + " is already open in this process");
            }
            if (lock == null) {
                throw new IllegalStateException("metadata store " + dir + " is locked by another process");
            }
            SnapshotFile.deleteLeftovers(dir);
            SnapshotFile.Contents snapshot = SnapshotFile.read(dir);
            NavigableMap<String, Versioned> entries = new TreeMap<>(KEY_ORDER);
            long snapshotRevision = 0;
            if (snapshot != null) {
                snapshotRevision = snapshot.revision();
                for (Versioned entry : snapshot.entries()) {
                    entries.put(entry.key(), entry);
                }
            }
            Recovery recovery = new Recovery(entries, snapshotRevision);
            mutationLog = MutationLog.open(dir.resolve(LOG_NAME), recovery::apply);
            if (recovery.error != null) {
                throw new IOException("metadata log " + mutationLog.path() + ": " + recovery.error);
            }
            long revision = recovery.revision;
            int expired = 0;
            for (Versioned entry : List.copyOf(entries.values())) {
                if (entry.leaseId() != 0) {
                    entries.remove(entry.key());
                    revision++;
                    expired++;
                }
            }
            SnapshotFile.write(dir, revision, entries.values());
            mutationLog.reset();
            log.info("opened metadata store {}: {} keys at revision {} ({} log records replayed, {} keys of"
                    + " leases from the previous process deleted)", dir, entries.size(), revision,
                    recovery.replayed, expired);
            return new EmbeddedMetadataStore(dir, options, lockChannel, lock, mutationLog, entries, revision);
        } catch (IOException | RuntimeException e) {
            if (mutationLog != null) {
                mutationLog.close();
            }
            if (lock != null) {
                lock.release();
            }
            lockChannel.close();
            throw e;
        }
    }

    /** Applies replayed log records past the snapshot, checking that revisions only grow. */
    private static final class Recovery {
        final NavigableMap<String, Versioned> entries;
        long revision;
        int replayed;
        String error;

        Recovery(NavigableMap<String, Versioned> entries, long revision) {
            this.entries = entries;
            this.revision = revision;
        }

        void apply(LogRecord record) {
            if (error != null || record.revision() <= revision && replayed == 0) {
                return; // already in the snapshot (a crash came between snapshot and log reset)
            }
            if (record.revision() <= revision) {
                error = "revision " + record.revision() + " follows revision " + revision + "; refusing to open";
                return;
            }
            revision = record.revision();
            replayed++;
            if (record instanceof LogRecord.Put put) {
                entries.put(put.entry().key(), put.entry());
            } else if (record instanceof LogRecord.Delete delete) {
                entries.remove(delete.key());
            }
        }
    }

    // ---- reads

    @Override
    public CompletableFuture<Optional<Versioned>> getAsync(String key) {
        checkKey(key);
        stateLock.readLock().lock();
        try {
            return CompletableFuture.completedFuture(Optional.ofNullable(entries.get(key)).map(EmbeddedMetadataStore::copy));
        } finally {
            stateLock.readLock().unlock();
        }
    }

    @Override
    public CompletableFuture<List<Versioned>> listAsync(String prefix) {
        if (prefix == null) {
            throw new IllegalArgumentException("prefix: required");
        }
        List<Versioned> result = new ArrayList<>();
        stateLock.readLock().lock();
        try {
            for (Versioned entry : entries.tailMap(prefix, true).values()) {
                if (!entry.key().startsWith(prefix)) {
                    break;
                }
                result.add(copy(entry));
            }
        } finally {
            stateLock.readLock().unlock();
        }
        return CompletableFuture.completedFuture(result);
    }

    @Override
    public CompletableFuture<Long> currentRevisionAsync() {
        stateLock.readLock().lock();
        try {
            return CompletableFuture.completedFuture(revision);
        } finally {
            stateLock.readLock().unlock();
        }
    }

    // ---- changes

    @Override
    public CompletableFuture<Long> putAsync(String key, byte[] value, long expectedRevision, long leaseId) {
        checkKey(key);
        checkExpected(expectedRevision);
        if (value == null) {
            throw new IllegalArgumentException("value: required");
        }
        if (value.length > MAX_VALUE_BYTES) {
            throw new IllegalArgumentException("value: " + value.length + " bytes exceeds " + MAX_VALUE_BYTES);
        }
        byte[] stored = value.clone();
        return submit(() -> applyPut(key, stored, expectedRevision, leaseId));
    }

    @Override
    public CompletableFuture<Boolean> deleteAsync(String key, long expectedRevision) {
        checkKey(key);
        checkExpected(expectedRevision);
        return submit(() -> {
            Versioned current = entries.get(key);
            long actual = current == null ? 0 : current.modRevision();
            if (expectedRevision != ANY && expectedRevision != actual) {
                throw new RevisionMismatchException(key, expectedRevision, actual);
            }
            if (current == null) {
                return false;
            }
            applyDelete(current);
            return true;
        });
    }

    private long applyPut(String key, byte[] value, long expectedRevision, long leaseId) throws IOException {
        Versioned current = entries.get(key);
        long actual = current == null ? 0 : current.modRevision();
        if (expectedRevision != ANY && expectedRevision != actual) {
            throw new RevisionMismatchException(key, expectedRevision, actual);
        }
        EmbeddedLease lease = null;
        if (leaseId != 0) {
            lease = leases.get(leaseId);
            if (lease == null) {
                throw new IllegalArgumentException("lease " + leaseId + " does not exist (expired or revoked)");
            }
        }
        long next = revision + 1;
        Versioned entry = new Versioned(key, value, current == null ? next : current.createRevision(), next, leaseId);
        mutationLog.append(new LogRecord.Put(entry));
        stateLock.writeLock().lock();
        try {
            entries.put(key, entry);
            revision = next;
            watches.publish(new WatchEvent(WatchEvent.Type.PUT, key, value, next));
        } finally {
            stateLock.writeLock().unlock();
        }
        if (current != null && current.leaseId() != 0 && current.leaseId() != leaseId) {
            EmbeddedLease previous = leases.get(current.leaseId());
            if (previous != null) {
                previous.keys.remove(key);
            }
        }
        if (lease != null) {
            lease.keys.add(key);
        }
        compactIfLarge();
        return next;
    }

    private void applyDelete(Versioned current) throws IOException {
        long next = revision + 1;
        mutationLog.append(new LogRecord.Delete(current.key(), next));
        stateLock.writeLock().lock();
        try {
            entries.remove(current.key());
            revision = next;
            watches.publish(new WatchEvent(WatchEvent.Type.DELETE, current.key(), null, next));
        } finally {
            stateLock.writeLock().unlock();
        }
        if (current.leaseId() != 0) {
            EmbeddedLease lease = leases.get(current.leaseId());
            if (lease != null) {
                lease.keys.remove(current.key());
            }
        }
        compactIfLarge();
    }

    private void compactIfLarge() throws IOException {
        if (mutationLog.size() < options.compactLogBytes()) {
            return;
        }
        // Only this thread changes the map, so it can be written without blocking readers.
        SnapshotFile.write(dir, revision, entries.values());
        mutationLog.reset();
        log.debug("compacted metadata store {} at revision {} ({} keys)", dir, revision, entries.size());
    }

    // ---- watches

    @Override
    public AutoCloseable watch(String prefix, long fromRevision, WatchListener listener) {
        if (prefix == null) {
            throw new IllegalArgumentException("prefix: required");
        }
        if (fromRevision < 0) {
            throw new IllegalArgumentException("fromRevision: must be 0 (now) or a revision, was " + fromRevision);
        }
        if (listener == null) {
            throw new IllegalArgumentException("listener: required");
        }
        stateLock.writeLock().lock();
        try {
            checkOpen();
            return watches.register(prefix, fromRevision == 0 ? revision + 1 : fromRevision, listener);
        } finally {
            stateLock.writeLock().unlock();
        }
    }

    // ---- leases

    @Override
    public CompletableFuture<Lease> grantLeaseAsync(Duration ttl) {
        if (ttl == null || ttl.isNegative() || ttl.isZero()) {
            throw new IllegalArgumentException("ttl: must be positive, was " + ttl);
        }
        return submit(() -> {
            long id;
            do {
                id = ThreadLocalRandom.current().nextLong(1, Long.MAX_VALUE);
            } while (leases.containsKey(id));
            EmbeddedLease lease = new EmbeddedLease(id, ttl.toNanos());
            leases.put(id, lease);
            return lease;
        });
    }

    private CompletableFuture<Void> revokeAsync(EmbeddedLease lease) {
        return submit(() -> {
            revoke(lease);
            return null;
        });
    }

    private void revoke(EmbeddedLease lease) throws IOException {
        if (leases.remove(lease.id) == null) {
            return;
        }
        for (String key : List.copyOf(lease.keys)) {
            Versioned current = entries.get(key);
            if (current != null && current.leaseId() == lease.id) {
                applyDelete(current);
            }
        }
        lease.keys.clear();
    }

    /** Writer thread: revokes leases whose holder stopped keeping them alive past their TTL. */
    private void expireLeases() {
        if (failure != null || leases.isEmpty()) {
            return;
        }
        long now = options.nanoTicker().getAsLong();
        for (EmbeddedLease lease : List.copyOf(leases.values())) {
            if (lease.expired(now)) {
                try {
                    log.info("metadata lease {} expired; deleting its {} keys", lease.id, lease.keys.size());
                    revoke(lease);
                } catch (IOException e) {
                    fail(e);
                    return;
                }
            }
        }
    }

    /**
     * A lease of this store. Kept alive until closed; {@link #stopKeepAlive()} models the loss of
     * its holder, after which it expires one TTL later by the store's ticker.
     */
    final class EmbeddedLease implements Lease {
        private final long id;
        private final long ttlNanos;
        /** Long.MAX_VALUE while kept alive. */
        private volatile long expiresAtNanos = Long.MAX_VALUE;
        // Writer thread only.
        private final TreeSet<String> keys = new TreeSet<>(KEY_ORDER);

        EmbeddedLease(long id, long ttlNanos) {
            this.id = id;
            this.ttlNanos = ttlNanos;
        }

        @Override
        public long id() { return id; }

        /** Stops keeping this lease alive, as when its holder dies: it expires one TTL from now. */
        void stopKeepAlive() {
            expiresAtNanos = options.nanoTicker().getAsLong() + ttlNanos;
        }

        boolean expired(long nowNanos) {
            long deadline = expiresAtNanos;
            return deadline != Long.MAX_VALUE && nowNanos - deadline >= 0;
        }

        /** Revokes the lease and deletes its keys; durable when this returns. A no-op once the store is closed. */
        @Override
        public void close() {
            if (closed) {
                return;
            }
            Futures.join(revokeAsync(this));
        }
    }

    // ---- plumbing

    @FunctionalInterface
    private interface WriterTask<T> {
        T run() throws IOException;
    }

    private <T> CompletableFuture<T> submit(WriterTask<T> task) {
        CompletableFuture<T> future = new CompletableFuture<>();
        try {
            checkOpen();
            writer.execute(() -> {
                if (failure != null) {
                    future.completeExceptionally(failedException());
                    return;
                }
                try {
                    future.complete(task.run());
                } catch (IOException e) {
                    fail(e);
                    future.completeExceptionally(failedException());
                } catch (RuntimeException e) {
                    future.completeExceptionally(e);
                }
            });
        } catch (RejectedExecutionException e) {
            future.completeExceptionally(new IllegalStateException("metadata store " + dir + " is closed"));
        } catch (IllegalStateException e) {
            future.completeExceptionally(e);
        }
        return future;
    }

    private void fail(IOException e) {
        if (failure == null) {
            failure = e;
            log.error("metadata store {} failed to persist a change; refusing further changes", dir, e);
        }
    }

    private IllegalStateException failedException() {
        return new IllegalStateException("metadata store " + dir + " failed to persist a change ("
                + failure.getMessage() + "); restart the node", failure);
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("metadata store " + dir + " is closed");
        }
    }

    /**
     * Waits for queued changes to become durable, stops the threads and releases the directory.
     * Leases end with the store; their keys are deleted on the next open.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        writer.shutdown();
        awaitTermination(writer, "writer");
        dispatcher.shutdown();
        awaitTermination(dispatcher, "watch dispatcher");
        try {
            mutationLog.close();
            lock.release();
            lockChannel.close();
        } catch (IOException e) {
            log.warn("closing metadata store {}: {}", dir, e.toString());
        }
        log.info("closed metadata store {} at revision {}", dir, revision);
    }

    private void awaitTermination(ExecutorService executor, String what) {
        try {
            if (!executor.awaitTermination(10, TimeUnit.SECONDS)) {
                log.warn("metadata store {}: {} did not stop within 10 s; interrupting it", dir, what);
                executor.shutdownNow();
            }
        } catch (InterruptedException e) {
            executor.shutdownNow();
            Thread.currentThread().interrupt();
        }
    }

    /** The directory this store lives in. */
    public Path directory() { return dir; }

    /** Orders keys as etcd does (by UTF-8 bytes, which is code point order). */
    static final Comparator<String> KEY_ORDER = (a, b) -> {
        int i = 0;
        int j = 0;
        while (i < a.length() && j < b.length()) {
            int ca = a.codePointAt(i);
            int cb = b.codePointAt(j);
            if (ca != cb) {
                return Integer.compare(ca, cb);
            }
            i += Character.charCount(ca);
            j += Character.charCount(cb);
        }
        return Boolean.compare(i < a.length(), j < b.length());
    };

    private static void checkKey(String key) {
        if (key == null || key.isEmpty()) {
            throw new IllegalArgumentException("key: required");
        }
        if (key.length() > MAX_KEY_BYTES / 3 && key.getBytes(StandardCharsets.UTF_8).length > MAX_KEY_BYTES) {
            throw new IllegalArgumentException("key: longer than " + MAX_KEY_BYTES + " UTF-8 bytes");
        }
    }

    private static void checkExpected(long expectedRevision) {
        if (expectedRevision < ANY) {
            throw new IllegalArgumentException("expectedRevision: must be a revision, ABSENT (0) or ANY (-1), was "
                    + expectedRevision);
        }
    }

    private static Versioned copy(Versioned entry) {
        return new Versioned(entry.key(), entry.value().clone(), entry.createRevision(), entry.modRevision(),
                entry.leaseId());
    }

    private static java.util.concurrent.ThreadFactory daemon(String name) {
        return runnable -> {
            Thread thread = new Thread(runnable, name);
            thread.setDaemon(true);
            return thread;
        };
    }
}
