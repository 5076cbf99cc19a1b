package dev.stowage.engine.storage;

import dev.stowage.engine.storage.PoolManifest.SnapshotRecord;
import dev.stowage.engine.storage.PoolManifest.VolumeRecord;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.DirectoryStream;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileStore;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.time.Duration;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A {@link StoragePool} in one directory of a local file system:
 * <pre>
 * dataDir/manifest          structure (see {@link PoolManifest}), replaced atomically
 * dataDir/lock              held (flock) while a process has the pool open
 * dataDir/boot-id           the kernel boot the pool last ran in ({@link BootRecord})
 * dataDir/layers/L*.layer   one sparse file per layer: its crc32c table, then its block data
 * dataDir/layers/L*.unsettled  per layer, the regions whose data and checksums may disagree on
 *                           disk until settled ({@link UnsettledRegions}); empty after a clean close
 * dataDir/layers/L*.recovered  per layer, the regions a crash recovery took as written ({@link RecoveredRegions})
 * </pre>
 *
 * <p>Every structural change creates its new layer files first (and fsyncs the directory), then
 * commits the manifest; only a committed manifest makes them part of the pool. Opening the pool
 * removes layer files the manifest does not name, so a crash midway leaves nothing half-made.
 * Layers are reference-counted through the manifest: a layer lives while a volume's head, a
 * snapshot or a child layer references it.
 *
 * <p>Threading: thread-safe; structural operations are serialised by the pool's monitor and wait
 * for the I/O in flight on the volume they change. I/O on the stores never takes the pool's lock.
 *
 * <p>Errors: bad ids or sizes throw {@link IllegalArgumentException} naming the parameter; a
 * missing volume or snapshot {@link NoSuchFileException}; an existing one {@link FileAlreadyExistsException}.
 */
public final class FileStoragePool implements StoragePool {
    private static final Logger LOG = LoggerFactory.getLogger(FileStoragePool.class);
    static final String LAYERS_DIR = "layers";
    /** On-disk format: where block data starts in a layer file (the checksum table comes first). */
    public static final long LAYER_DATA_OFFSET = Layer.DATA_OFFSET;
    /**
     * How often written regions are settled ({@link UnsettledRegions}): a region is unmarked after
     * one to two intervals without writes, so recovery after a crash reads back at most the
     * regions written in the last two intervals.
     */
    static final Duration SETTLE_INTERVAL = Duration.ofMillis(Long.getLong("stowage.settleIntervalMillis", 5_000));

    private final Path dataDir;
    private final Path layersDir;
    private final PoolManifest.CommitHook hook;
    private final FileChannel lockChannel;
    private final FileLock lock;
    private final Map<String, Layer> layers = new HashMap<>();
    private final Map<String, LayeredReplicaStore> stores = new HashMap<>();
    private PoolManifest manifest;
    private boolean closed;
    /** See {@link #maxVolumeBytes()}; probed at open. */
    private long maxVolumeBytes = StorageIds.MAX_SIZE_BYTES;
    private ScheduledExecutorService settler;

    private FileStoragePool(Path dataDir, PoolManifest.CommitHook hook, FileChannel lockChannel, FileLock lock) {
        this.dataDir = dataDir;
        this.layersDir = dataDir.resolve(LAYERS_DIR);
        this.hook = hook;
        this.lockChannel = lockChannel;
        this.lock = lock;
    }

    private void startSettler(Duration interval) {
        if (interval.isZero()) {
            return;
        }
        settler = Executors.newSingleThreadScheduledExecutor(runnable -> {
            Thread t = new Thread(runnable, "stowage-settle-" + dataDir.getFileName());
            t.setDaemon(true);
            return t;
        });
        long millis = interval.toMillis();
        settler.scheduleWithFixedDelay(this::settle, millis, millis, TimeUnit.MILLISECONDS);
    }

    /**
     * Opens the pool in {@code dataDir}, creating the directory layout if absent and recovering
     * from a crash: a leftover temporary manifest and layer files the manifest does not name are
     * removed. Fails if another process (or another open pool in this JVM) has the directory.
     */
    public static FileStoragePool open(Path dataDir) throws IOException {
        return open(dataDir, PoolManifest.CommitHook.NONE);
    }

    static FileStoragePool open(Path dataDir, PoolManifest.CommitHook hook) throws IOException {
        return open(dataDir, hook, SETTLE_INTERVAL);
    }

    /** With {@code settleInterval} zero nothing settles by itself: tests call {@link #settle()}. */
    static FileStoragePool open(Path dataDir, PoolManifest.CommitHook hook, Duration settleInterval)
            throws IOException {
        if (dataDir == null) {
            throw new IllegalArgumentException("dataDir must not be null");
        }
        Path dir = dataDir.toAbsolutePath().normalize();
        Files.createDirectories(dir.resolve(LAYERS_DIR));
        FileChannel lockChannel = FileChannel.open(dir.resolve("lock"), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
        FileLock lock;
        try {
            lock = lockChannel.tryLock();
        } catch (OverlappingFileLockException e) {
            lock = null;
        }
        if (lock == null) {
            lockChannel.close();
            throw new IOException("storage pool " + dir + " is already open");
        }
        FileStoragePool pool = new FileStoragePool(dir, hook, lockChannel, lock);
        try {
            pool.maxVolumeBytes = probeMaxVolumeBytes(dir);
            pool.recover();
            pool.startSettler(settleInterval);
            return pool;
        } catch (IOException | RuntimeException e) {
            try {
                pool.close();
            } catch (IOException | RuntimeException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
    }

    private void recover() throws IOException {
        Files.deleteIfExists(dataDir.resolve(PoolManifest.TEMP_NAME));
        Path file = dataDir.resolve(PoolManifest.FILE_NAME);
        PoolManifest m;
        if (Files.exists(file)) {
            m = PoolManifest.read(file);
            List<String> unreferenced = m.collectGarbage();
            if (!unreferenced.isEmpty()) {
                LOG.warn("pool {}: dropping unreferenced layers {}", dataDir, unreferenced);
                m.write(dataDir, PoolManifest.CommitHook.NONE);
            }
        } else {
            m = new PoolManifest();
            m.write(dataDir, PoolManifest.CommitHook.NONE);
        }
        removeOrphans(m);
        for (String id : m.layers.keySet()) {
            openLayer(m, id);
        }
        BootRecord boot = BootRecord.of(dataDir);
        boolean pageCacheLost = !boot.sameBoot();
        for (Layer l : layers.values()) {
            List<Long> regions = l.unsettled.marked();
            if (!regions.isEmpty()) {
                l.recordRecovered(regions, pageCacheLost); // before the marks go: see RecoveredRegions
                int rewritten = l.settleAfterCrash(regions);
                LOG.warn("pool {}: layer {} was not settled when the pool last closed (a crash): took the data of"
                        + " {} recently written regions as written, {} checksum entries rewritten", dataDir, l.id,
                        regions.size(), rewritten);
            }
        }
        boot.record(); // after the recovery: a crash before this recovers again as lost
        manifest = m;
        for (VolumeRecord v : m.volumes.values()) {
            stores.put(v.id(), newStore(v.id(), layers.get(v.layerId()), v.sizeBytes()));
        }
        LOG.info("pool {} open: {} volumes, {} snapshots, {} layers", dataDir, m.volumes.size(),
                m.snapshots.size(), m.layers.size());
    }

    private Layer openLayer(PoolManifest m, String id) throws IOException {
        Layer l = layers.get(id);
        if (l == null) {
            String parentId = m.layers.get(id).parentId();
            Layer parent = parentId == null ? null : openLayer(m, parentId);
            l = Layer.open(layersDir, id, parent);
            layers.put(id, l);
        }
        return l;
    }

    private void removeOrphans(PoolManifest m) throws IOException {
        try (DirectoryStream<Path> files = Files.newDirectoryStream(layersDir)) {
            for (Path f : files) {
                String name = f.getFileName().toString();
                int dot = name.lastIndexOf('.');
                String suffix = dot < 0 ? "" : name.substring(dot);
                if (!suffix.equals(Layer.FILE_SUFFIX) && !suffix.equals(UnsettledRegions.FILE_SUFFIX)
                        && !suffix.equals(RecoveredRegions.FILE_SUFFIX)) {
                    LOG.warn("pool {}: ignoring unknown file {}", dataDir, f);
                } else if (!m.layers.containsKey(name.substring(0, dot))) {
                    LOG.info("pool {}: removing orphan layer file {}", dataDir, name);
                    Files.delete(f);
                }
            }
        }
    }

    // ---------------------------------------------------------------- volumes

    @Override
    public synchronized ReplicaStore create(String volumeId, long sizeBytes) throws IOException {
        StorageIds.requireId("volumeId", volumeId);
        requireFits("sizeBytes", sizeBytes);
        ensureOpen();
        requireNoVolume(volumeId);
        LayeredReplicaStore store = addVolume(volumeId, null, sizeBytes);
        LOG.info("volume {} created: {} bytes, layer {}", volumeId, sizeBytes, store.head().id);
        return store;
    }

    /** Commits a new volume whose head is a new layer over {@code parentLayerId} (null: none) and opens it. */
    private LayeredReplicaStore addVolume(String volumeId, String parentLayerId, long sizeBytes) throws IOException {
        PoolManifest next = manifest.copy();
        String layerId = next.addLayer(parentLayerId);
        next.volumes.put(volumeId, new VolumeRecord(volumeId, layerId, sizeBytes));
        Layer layer = newLayer(layerId, parentLayerId == null ? null : layers.get(parentLayerId));
        commit(next, List.of(layer));
        LayeredReplicaStore store = newStore(volumeId, layer, sizeBytes);
        stores.put(volumeId, store);
        return store;
    }

    @Override
    public synchronized ReplicaStore createFromSnapshot(String snapshotId, String volumeId, long sizeBytes)
            throws IOException {
        StorageIds.requireId("snapshotId", snapshotId);
        StorageIds.requireId("volumeId", volumeId);
        requireFits("sizeBytes", sizeBytes);
        ensureOpen();
        SnapshotRecord snap = requireSnapshot(snapshotId);
        requireNoVolume(volumeId);
        if (sizeBytes < snap.sizeBytes()) {
            throw new IllegalArgumentException("sizeBytes " + sizeBytes + " is smaller than the size "
                    + snap.sizeBytes() + " of snapshot " + snapshotId);
        }
        LayeredReplicaStore store = addVolume(volumeId, snap.layerId(), sizeBytes);
        LOG.info("volume {} created from snapshot {}: {} bytes, layer {}", volumeId, snapshotId, sizeBytes,
                store.head().id);
        return store;
    }

    @Override
    public synchronized ReplicaStore cloneVolume(String sourceVolumeId, String volumeId, long sizeBytes)
            throws IOException {
        StorageIds.requireId("sourceVolumeId", sourceVolumeId);
        StorageIds.requireId("volumeId", volumeId);
        requireFits("sizeBytes", sizeBytes);
        ensureOpen();
        VolumeRecord source = requireVolume(sourceVolumeId);
        requireNoVolume(volumeId);
        if (sizeBytes < source.sizeBytes()) {
            throw new IllegalArgumentException("sizeBytes " + sizeBytes + " is smaller than the size "
                    + source.sizeBytes() + " of source volume " + sourceVolumeId);
        }
        LayeredReplicaStore sourceStore = stores.get(sourceVolumeId);
        long stamp = sourceStore.lockStructure();
        try {
            Layer frozen = sourceStore.head();
            frozen.force();
            PoolManifest next = manifest.copy();
            String sourceHeadId = next.addLayer(frozen.id);
            String cloneHeadId = next.addLayer(frozen.id);
            next.volumes.put(sourceVolumeId, new VolumeRecord(sourceVolumeId, sourceHeadId, source.sizeBytes()));
            next.volumes.put(volumeId, new VolumeRecord(volumeId, cloneHeadId, sizeBytes));
            Layer sourceHead = newLayer(sourceHeadId, frozen);
            Layer cloneHead;
            try {
                cloneHead = newLayer(cloneHeadId, frozen);
            } catch (IOException | RuntimeException e) {
                sourceHead.closeAndDelete();
                throw e;
            }
            commit(next, List.of(sourceHead, cloneHead));
            sourceStore.setHead(sourceHead);
            settleFrozen(frozen);
            LayeredReplicaStore store = newStore(volumeId, cloneHead, sizeBytes);
            stores.put(volumeId, store);
            LOG.info("volume {} cloned from {}: {} bytes, layer {} frozen", volumeId, sourceVolumeId, sizeBytes,
                    frozen.id);
            return store;
        } finally {
            sourceStore.unlockStructure(stamp);
        }
    }

    @Override
    public synchronized Optional<ReplicaStore> open(String volumeId) throws IOException {
        StorageIds.requireId("volumeId", volumeId);
        ensureOpen();
        return Optional.ofNullable(stores.get(volumeId));
    }

    @Override
    public synchronized void delete(String volumeId) throws IOException {
        StorageIds.requireId("volumeId", volumeId);
        ensureOpen();
        LayeredReplicaStore store = stores.get(volumeId);
        if (store == null) {
            return;
        }
        long stamp = store.lockStructure();
        try {
            PoolManifest next = manifest.copy();
            next.volumes.remove(volumeId);
            List<String> freed = next.collectGarbage();
            commit(next, List.of());
            store.markClosed("the volume was deleted");
            stores.remove(volumeId);
            deleteLayers(freed);
            LOG.info("volume {} deleted, layers freed: {}", volumeId, freed);
        } finally {
            store.unlockStructure(stamp);
        }
    }

    /** Persists a store's new size; called by {@link LayeredReplicaStore#resize}. */
    private synchronized void resize(LayeredReplicaStore store, long newSizeBytes) throws IOException {
        ensureOpen();
        requireFits("newSizeBytes", newSizeBytes);
        VolumeRecord v = manifest.volumes.get(store.volumeId());
        if (v == null || stores.get(store.volumeId()) != store) {
            throw new IOException("volume " + store.volumeId() + " was deleted");
        }
        if (newSizeBytes < v.sizeBytes()) {
            throw new IllegalArgumentException("newSizeBytes " + newSizeBytes + " is smaller than the size "
                    + v.sizeBytes() + " of volume " + v.id() + ": shrinking is not supported");
        }
        PoolManifest next = manifest.copy();
        next.volumes.put(v.id(), new VolumeRecord(v.id(), v.layerId(), newSizeBytes));
        commit(next, List.of());
        store.setSize(newSizeBytes);
        LOG.info("volume {} resized: {} -> {} bytes", v.id(), v.sizeBytes(), newSizeBytes);
    }

    @Override
    public synchronized Set<String> volumeIds() throws IOException {
        ensureOpen();
        return Set.copyOf(manifest.volumes.keySet());
    }

    @Override
    public synchronized Set<String> snapshotIds() throws IOException {
        ensureOpen();
        return Set.copyOf(manifest.snapshots.keySet());
    }

    // ---------------------------------------------------------------- snapshots

    @Override
    public synchronized void snapshot(String volumeId, String snapshotId) throws IOException {
        StorageIds.requireId("volumeId", volumeId);
        StorageIds.requireId("snapshotId", snapshotId);
        ensureOpen();
        VolumeRecord v = requireVolume(volumeId);
        if (manifest.snapshots.containsKey(snapshotId)) {
            throw new FileAlreadyExistsException("snapshot " + snapshotId);
        }
        LayeredReplicaStore store = stores.get(volumeId);
        long stamp = store.lockStructure();
        try {
            Layer frozen = store.head();
            frozen.force();
            PoolManifest next = manifest.copy();
            String headId = next.addLayer(frozen.id);
            next.volumes.put(volumeId, new VolumeRecord(volumeId, headId, v.sizeBytes()));
            next.snapshots.put(snapshotId, new SnapshotRecord(snapshotId, frozen.id, v.sizeBytes(), volumeId));
            Layer newHead = newLayer(headId, frozen);
            commit(next, List.of(newHead));
            store.setHead(newHead);
            settleFrozen(frozen);
            LOG.info("snapshot {} of volume {} taken: layer {} frozen, new head {}", snapshotId, volumeId,
                    frozen.id, headId);
        } finally {
            store.unlockStructure(stamp);
        }
    }

    @Override
    public synchronized void deleteSnapshot(String snapshotId) throws IOException {
        StorageIds.requireId("snapshotId", snapshotId);
        ensureOpen();
        if (!manifest.snapshots.containsKey(snapshotId)) {
            return;
        }
        PoolManifest next = manifest.copy();
        next.snapshots.remove(snapshotId);
        List<String> freed = next.collectGarbage();
        commit(next, List.of());
        deleteLayers(freed);
        LOG.info("snapshot {} deleted, layers freed: {}", snapshotId, freed);
    }

    @Override
    public synchronized boolean snapshotExists(String snapshotId) {
        StorageIds.requireId("snapshotId", snapshotId);
        return !closed && manifest.snapshots.containsKey(snapshotId);
    }

    @Override
    public synchronized long snapshotSizeBytes(String snapshotId) throws IOException {
        StorageIds.requireId("snapshotId", snapshotId);
        ensureOpen();
        return requireSnapshot(snapshotId).sizeBytes();
    }

    /** The volume a snapshot was taken of, as recorded at snapshot time. */
    public synchronized String snapshotSourceVolumeId(String snapshotId) throws IOException {
        StorageIds.requireId("snapshotId", snapshotId);
        ensureOpen();
        return requireSnapshot(snapshotId).sourceVolumeId();
    }

    // ---------------------------------------------------------------- capacity and lifecycle

    @Override
    public long freeBytes() throws IOException {
        return fileStore().getUsableSpace();
    }

    @Override
    public long capacityBytes() throws IOException {
        return fileStore().getTotalSpace();
    }

    private FileStore fileStore() throws IOException {
        return Files.getFileStore(dataDir);
    }

    public Path dataDir() {
        return dataDir;
    }

    /**
     * Makes every volume's writes durable, closes every store (their later I/O fails) and layer,
     * and releases the directory. Idempotent.
     */
    @Override
    public void close() throws IOException {
        ScheduledExecutorService s = settler;
        if (s != null) {
            s.shutdown(); // never interrupt it: an interrupt closes a FileChannel in use
            try {
                if (!s.awaitTermination(30, TimeUnit.SECONDS)) {
                    LOG.warn("pool {}: a settle round still runs after 30 s; closing anyway", dataDir);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        closeStores();
    }

    private synchronized void closeStores() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        IOException failure = null;
        for (LayeredReplicaStore store : stores.values()) {
            long stamp = store.lockStructure();
            try {
                store.head().force();
                store.head().unsettled.clearAll(); // flushed with no writer left: a clean close
            } catch (IOException e) {
                failure = addFailure(failure, e);
            } finally {
                store.markClosed("the storage pool was closed");
                store.unlockStructure(stamp);
            }
        }
        stores.clear();
        for (Layer l : layers.values()) {
            try {
                l.close();
            } catch (IOException e) {
                failure = addFailure(failure, e);
            }
        }
        layers.clear();
        try {
            lock.release();
        } finally {
            lockChannel.close();
        }
        if (failure != null) {
            throw failure;
        }
        LOG.info("pool {} closed", dataDir);
    }

    // ---------------------------------------------------------------- size limit

    @Override
    public long maxVolumeBytes() {
        return maxVolumeBytes;
    }

    private void requireFits(String parameter, long sizeBytes) {
        StorageIds.requireSize(parameter, sizeBytes);
        if (sizeBytes > maxVolumeBytes) {
            throw new IllegalArgumentException(parameter + " " + sizeBytes + " exceeds the largest volume pool "
                    + dataDir + " can hold, " + maxVolumeBytes + " bytes: its file system ends files at "
                    + (maxVolumeBytes + Layer.DATA_OFFSET) + " bytes and volume data starts at byte "
                    + Layer.DATA_OFFSET + " of a layer file");
        }
    }

    /**
     * The largest volume whose layer file the file system under {@code dir} accepts, found by
     * truncating a scratch file (sparse: no data is written) to ever closer sizes. A file system
     * caps a file's size (ext4 with 4 KiB blocks at 16 TiB - 4 KiB); a volume beyond that would be
     * created but fail writes near its end, so mkfs on it would fail half way.
     */
    private static long probeMaxVolumeBytes(Path dir) throws IOException {
        Path probe = dir.resolve("size-probe.tmp");
        try (FileChannel f = FileChannel.open(probe, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            long fits = 1; // in 4 KiB blocks of volume
            long tooBig = StorageIds.MAX_SIZE_BYTES / 4096 + 1;
            grow(f, Layer.DATA_OFFSET + 4096); // a failure here is the file system's, not a size cap: thrown
            if (truncates(f, Layer.DATA_OFFSET + StorageIds.MAX_SIZE_BYTES)) {
                return StorageIds.MAX_SIZE_BYTES;
            }
            while (tooBig - fits > 1) {
                long mid = (fits + tooBig) >>> 1;
                if (truncates(f, Layer.DATA_OFFSET + mid * 4096)) {
                    fits = mid;
                } else {
                    tooBig = mid;
                }
            }
            long max = fits * 4096;
            LOG.info("pool {}: its file system caps a file at {} bytes, so the largest volume is {} bytes", dir,
                    Layer.DATA_OFFSET + max, max);
            return max;
        } finally {
            Files.deleteIfExists(probe);
        }
    }

    /**
     * Whether the file may grow to {@code size}. Any failure counts as "no": the usual one is EFBIG,
     * whose text depends on the locale, and a wrong "no" only lowers the limit (the probe already
     * showed the file system works at all).
     */
    private static boolean truncates(FileChannel f, long size) {
        try {
            grow(f, size);
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    private static void grow(FileChannel f, long size) throws IOException {
        f.truncate(0);
        // FileChannel.truncate only shrinks; growing a sparse file goes through a one-byte write at its end.
        f.write(java.nio.ByteBuffer.allocate(1), size - 1);
    }

    // ---------------------------------------------------------------- settling

    /**
     * One settle round over every volume (see {@link UnsettledRegions}); the node runs it every
     * few seconds. Returns the number of regions settled. Failures are logged and leave marks set,
     * which only costs recovery time.
     */
    public int settle() {
        List<LayeredReplicaStore> current;
        synchronized (this) {
            if (closed) {
                return 0;
            }
            current = List.copyOf(stores.values());
        }
        int settled = 0;
        for (LayeredReplicaStore store : current) {
            try {
                settled += store.settle();
            } catch (IOException | RuntimeException e) {
                LOG.warn("pool {}: settling volume {} failed (its marks stay set): {}", dataDir, store.volumeId(),
                        e.toString());
            }
        }
        return settled;
    }

    /** A frozen layer was flushed and is never written again: nothing of it is unsettled. */
    private void settleFrozen(Layer frozen) {
        try {
            frozen.unsettled.clearAll();
        } catch (IOException e) {
            LOG.warn("pool {}: clearing the unsettled marks of frozen layer {} failed (recovery will check its"
                    + " marked regions): {}", dataDir, frozen.id, e.toString());
        }
    }

    // ---------------------------------------------------------------- helpers

    private LayeredReplicaStore newStore(String volumeId, Layer head, long sizeBytes) {
        return new LayeredReplicaStore(volumeId, head, sizeBytes, this::resize);
    }

    private Layer newLayer(String id, Layer parent) throws IOException {
        return Layer.create(layersDir, id, parent);
    }

    /**
     * Makes {@code next} the pool's structure: the new layers' directory entries are made durable,
     * then the manifest is replaced. On failure the new layers are removed and nothing changes
     * (beyond never reusing their ids).
     */
    private void commit(PoolManifest next, List<Layer> newLayers) throws IOException {
        try {
            if (!newLayers.isEmpty()) {
                DurableFiles.fsyncDirectory(layersDir);
            }
            next.write(dataDir, hook);
        } catch (IOException | RuntimeException e) {
            manifest.nextLayer = Math.max(manifest.nextLayer, next.nextLayer);
            for (Layer l : newLayers) {
                try {
                    l.closeAndDelete();
                } catch (IOException | RuntimeException suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            throw e;
        }
        manifest = next;
        for (Layer l : newLayers) {
            layers.put(l.id, l);
        }
    }

    private void deleteLayers(List<String> ids) {
        for (String id : ids) {
            Layer l = layers.remove(id);
            if (l != null) {
                try {
                    l.closeAndDelete();
                } catch (IOException | RuntimeException e) {
                    LOG.warn("pool {}: layer {} is no longer referenced but its files could not be removed"
                            + " (they are removed at the next open): {}", dataDir, id, e.toString());
                }
            }
        }
    }

    private VolumeRecord requireVolume(String volumeId) throws NoSuchFileException {
        VolumeRecord v = manifest.volumes.get(volumeId);
        if (v == null) {
            throw new NoSuchFileException("volume " + volumeId);
        }
        return v;
    }

    private void requireNoVolume(String volumeId) throws FileAlreadyExistsException {
        if (manifest.volumes.containsKey(volumeId)) {
            throw new FileAlreadyExistsException("volume " + volumeId);
        }
    }

    private SnapshotRecord requireSnapshot(String snapshotId) throws NoSuchFileException {
        SnapshotRecord s = manifest.snapshots.get(snapshotId);
        if (s == null) {
            throw new NoSuchFileException("snapshot " + snapshotId);
        }
        return s;
    }

    private void ensureOpen() throws IOException {
        if (closed) {
            throw new IOException("storage pool " + dataDir + " is closed");
        }
    }

    private static IOException addFailure(IOException failure, IOException e) {
        if (failure == null) {
            return e;
        }
        failure.addSuppressed(e);
        return failure;
    }

    /** Test access: the layer object of a layer id, or null. */
    synchronized Layer layer(String id) {
        return layers.get(id);
    }

    /** Test access: the ids of the pool's layers. */
    synchronized Set<String> layerIds() {
        return Set.copyOf(manifest.layers.keySet());
    }

    /** Test access: the layer a snapshot reads. */
    synchronized Layer snapshotLayer(String snapshotId) {
        SnapshotRecord s = manifest.snapshots.get(snapshotId);
        return s == null ? null : layers.get(s.layerId());
    }
}
