package dev.stowage.csi.testing;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicInteger;

import dev.stowage.engine.api.Capacity;
import dev.stowage.engine.api.ClusterNode;
import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.NodeInfo;
import dev.stowage.engine.api.Page;
import dev.stowage.engine.api.Snapshot;
import dev.stowage.engine.api.StowageException;
import dev.stowage.engine.api.Volume;
import dev.stowage.engine.api.VolumeService;
import dev.stowage.engine.api.VolumeSpec;

/**
 * A small, faithful in-memory {@link VolumeService} for the driver's unit tests: sizes, names,
 * idempotency, publication and attachment rules as the contract states them. No storage behind it;
 * devices are fake paths. Synchronized; counts attach/detach calls so tests can check undo.
 */
public final class InMemoryVolumeService implements VolumeService {
    public static final String LOCAL_NODE = "node-1";
    public static final String OTHER_NODE = "node-2";
    public static final long DEFAULT_SIZE = 1L << 30;
    public static final long POOL_BYTES = 100L << 30;

    private final Map<String, Volume> volumes = new TreeMap<>();
    private final Map<String, Snapshot> snapshots = new TreeMap<>();
    private final Map<String, String> devices = new HashMap<>();
    private final AtomicInteger ids = new AtomicInteger();
    private final Set<String> nodes = Set.of(LOCAL_NODE, OTHER_NODE);
    public volatile boolean ready = true;
    /** Whether {@link #OTHER_NODE} shows as alive in {@link #clusterNodes()}. */
    public volatile boolean otherNodeAlive = true;
    public int attachCalls;
    public int detachCalls;

    @Override
    public boolean ready() {
        return ready;
    }

    @Override
    public NodeInfo localNode() {
        return new NodeInfo(LOCAL_NODE, Map.of("zone", "z1", "rack", "r7"), 16);
    }

    @Override
    public Map<String, String> supportedParameters() {
        return Map.of("repl", "number of replicas, 1-3", "fsType", "ext4 or xfs");
    }

    @Override
    public synchronized Volume createVolume(VolumeSpec spec) {
        for (String key : spec.parameters().keySet()) {
            if (!supportedParameters().containsKey(key)) {
                throw StowageException.invalid("parameters." + key, "is not a known parameter");
            }
        }
        int repl = Integer.parseInt(spec.parameters().getOrDefault("repl", "1"));
        if (repl < 1 || repl > nodes.size()) {
            throw StowageException.invalid("parameters.repl", "must be between 1 and " + nodes.size());
        }
        long size = spec.requiredBytes() == 0 ? DEFAULT_SIZE : spec.requiredBytes();
        if (spec.limitBytes() > 0 && size > spec.limitBytes()) {
            size = spec.limitBytes();
        }
        Optional<Volume> same = volumes.values().stream().filter(v -> v.name().equals(spec.name())).findFirst();
        if (same.isPresent()) {
            Volume v = same.get();
            boolean fits = v.sizeBytes() >= spec.requiredBytes()
                    && (spec.limitBytes() == 0 || v.sizeBytes() <= spec.limitBytes());
            if (!fits || !v.parameters().equals(spec.parameters()) || !v.contentSource().equals(spec.contentSource())) {
                throw new StowageException(ErrorCode.ALREADY_EXISTS, "volume " + spec.name() + " exists with another spec");
            }
            return v;
        }
        if (spec.contentSource() instanceof VolumeSpec.ContentSource.FromSnapshot s) {
            Snapshot snapshot = getSnapshot(s.snapshotId())
                    .orElseThrow(() -> StowageException.notFound("snapshot", s.snapshotId()));
            size = Math.max(size, snapshot.sizeBytes());
        } else if (spec.contentSource() instanceof VolumeSpec.ContentSource.FromVolume s) {
            Volume source = getVolume(s.volumeId()).orElseThrow(() -> StowageException.notFound("volume", s.volumeId()));
            size = Math.max(size, source.sizeBytes());
        }
        if (size > POOL_BYTES) {
            throw new StowageException(ErrorCode.OUT_OF_RANGE, "volume size " + size + " exceeds the pool");
        }
        List<Volume.Replica> replicas = new ArrayList<>();
        nodes.stream().sorted().limit(repl).forEach(n -> replicas.add(new Volume.Replica(n, Volume.ReplicaState.HEALTHY)));
        Volume volume = new Volume("vol-" + ids.incrementAndGet(), spec.name(), size, repl,
                spec.parameters().getOrDefault("fsType", ""), spec.parameters(), spec.contentSource(), replicas, 1,
                Optional.empty(), Volume.Condition.healthy());
        volumes.put(volume.id(), volume);
        return volume;
    }

    @Override
    public synchronized void deleteVolume(String volumeId) {
        Volume v = volumes.get(volumeId);
        if (v == null) {
            return;
        }
        if (v.attachment().isPresent()) {
            throw new StowageException(ErrorCode.FAILED_PRECONDITION, "volume " + volumeId + " is published");
        }
        volumes.remove(volumeId);
    }

    @Override
    public synchronized Optional<Volume> getVolume(String volumeId) {
        return Optional.ofNullable(volumes.get(volumeId));
    }

    @Override
    public synchronized Page<Volume> listVolumes(int maxEntries, String startingToken) {
        return page(new ArrayList<>(volumes.values()), maxEntries, startingToken);
    }

    private static <T> Page<T> page(List<T> all, int maxEntries, String startingToken) {
        int start = 0;
        if (startingToken != null && !startingToken.isEmpty()) {
            try {
                start = Integer.parseInt(startingToken);
            } catch (NumberFormatException e) {
                throw StowageException.invalid("starting_token", "is not a token this service issued");
            }
            if (start < 0 || start > all.size()) {
                throw StowageException.invalid("starting_token", "is out of range");
            }
        }
        int end = maxEntries == 0 ? all.size() : Math.min(all.size(), start + maxEntries);
        return new Page<>(List.copyOf(all.subList(start, end)), end < all.size() ? Integer.toString(end) : "");
    }

    @Override
    public synchronized long expandVolume(String volumeId, long requiredBytes, long limitBytes) {
        Volume v = getVolume(volumeId).orElseThrow(() -> StowageException.notFound("volume", volumeId));
        if (requiredBytes < v.sizeBytes()) {
            throw new StowageException(ErrorCode.OUT_OF_RANGE, "volume " + volumeId + " cannot shrink");
        }
        long size = Math.max(v.sizeBytes(), requiredBytes);
        volumes.put(volumeId, with(v, size, v.attachment(), v.parameters()));
        return size;
    }

    @Override
    public synchronized Volume modifyVolume(String volumeId, Map<String, String> mutableParameters) {
        Volume v = getVolume(volumeId).orElseThrow(() -> StowageException.notFound("volume", volumeId));
        for (String key : mutableParameters.keySet()) {
            if (!key.equals("maxIops")) {
                throw StowageException.invalid("mutable_parameters." + key, "cannot be changed");
            }
        }
        Map<String, String> parameters = new LinkedHashMap<>(v.parameters());
        parameters.putAll(mutableParameters);
        Volume modified = with(v, v.sizeBytes(), v.attachment(), parameters);
        volumes.put(volumeId, modified);
        return modified;
    }

    @Override
    public synchronized Snapshot createSnapshot(String name, String sourceVolumeId) {
        for (Snapshot s : snapshots.values()) {
            if (s.name().equals(name)) {
                if (!s.sourceVolumeId().equals(sourceVolumeId)) {
                    throw new StowageException(ErrorCode.ALREADY_EXISTS, "snapshot " + name + " exists for another volume");
                }
                return s;
            }
        }
        Volume source = getVolume(sourceVolumeId).orElseThrow(() -> StowageException.notFound("volume", sourceVolumeId));
        Snapshot snapshot = new Snapshot("snap-" + ids.incrementAndGet(), name, sourceVolumeId, source.sizeBytes(),
                1_700_000_000_123L, true);
        snapshots.put(snapshot.id(), snapshot);
        return snapshot;
    }

    @Override
    public synchronized void deleteSnapshot(String snapshotId) {
        snapshots.remove(snapshotId);
    }

    @Override
    public synchronized Optional<Snapshot> getSnapshot(String snapshotId) {
        return Optional.ofNullable(snapshots.get(snapshotId));
    }

    @Override
    public synchronized Page<Snapshot> listSnapshots(String sourceVolumeId, String snapshotId, int maxEntries,
                                                     String startingToken) {
        List<Snapshot> matching = snapshots.values().stream()
                .filter(s -> sourceVolumeId == null || s.sourceVolumeId().equals(sourceVolumeId))
                .filter(s -> snapshotId == null || s.id().equals(snapshotId))
                .toList();
        return page(matching, maxEntries, startingToken);
    }

    @Override
    public synchronized Volume publish(String volumeId, String nodeId, boolean readOnly, boolean force) {
        Volume v = getVolume(volumeId).orElseThrow(() -> StowageException.notFound("volume", volumeId));
        if (!force && v.attachment().isPresent() && !v.attachment().get().nodeId().equals(nodeId)) {
            throw new StowageException(ErrorCode.FAILED_PRECONDITION, "volume " + volumeId + " is published to "
                    + v.attachment().get().nodeId());
        }
        Volume published = new Volume(v.id(), v.name(), v.sizeBytes(), v.replicaCount(), v.fsType(), v.parameters(),
                v.contentSource(), v.replicas(), v.epoch() + 1,
                Optional.of(new Volume.Attachment(nodeId, readOnly, Optional.ofNullable(devices.get(volumeId)))),
                v.condition());
        volumes.put(volumeId, published);
        return published;
    }

    @Override
    public synchronized void unpublish(String volumeId, String nodeId) {
        Volume v = volumes.get(volumeId);
        if (v != null && v.attachment().filter(a -> a.nodeId().equals(nodeId)).isPresent()) {
            volumes.put(volumeId, with(v, v.sizeBytes(), Optional.empty(), v.parameters()));
        }
    }

    @Override
    public synchronized Path attachDevice(String volumeId) {
        attachCalls++;
        Volume v = getVolume(volumeId).orElseThrow(() -> StowageException.notFound("volume", volumeId));
        String device = devices.computeIfAbsent(volumeId, id -> "/dev/loop" + (10 + devices.size()));
        boolean readOnly = v.attachment().map(Volume.Attachment::readOnly).orElse(false);
        volumes.put(volumeId, with(v, v.sizeBytes(),
                Optional.of(new Volume.Attachment(LOCAL_NODE, readOnly, Optional.of(device))), v.parameters()));
        return Path.of(device);
    }

    @Override
    public synchronized void detachDevice(String volumeId) {
        detachCalls++;
        devices.remove(volumeId);
        Volume v = volumes.get(volumeId);
        if (v != null && v.attachment().isPresent()) {
            Volume.Attachment a = v.attachment().get();
            volumes.put(volumeId, with(v, v.sizeBytes(),
                    Optional.of(new Volume.Attachment(a.nodeId(), a.readOnly(), Optional.empty())), v.parameters()));
        }
    }

    public synchronized boolean isAttached(String volumeId) {
        return devices.containsKey(volumeId);
    }

    /** Marks a volume abnormal, as the engine would after losing replicas. */
    public synchronized void setCondition(String volumeId, Volume.Condition condition) {
        Volume v = volumes.get(volumeId);
        volumes.put(volumeId, new Volume(v.id(), v.name(), v.sizeBytes(), v.replicaCount(), v.fsType(), v.parameters(),
                v.contentSource(), v.replicas(), v.epoch(), v.attachment(), condition));
    }

    @Override
    public synchronized Capacity capacity(Map<String, String> topologySegments) {
        String node = topologySegments.get("topology.stowage.dev/node");
        if (node != null && !nodes.contains(node)) {
            return new Capacity(0, 0, 0);
        }
        long used = volumes.values().stream().mapToLong(Volume::sizeBytes).sum();
        return new Capacity(POOL_BYTES - used, POOL_BYTES - used, 1L << 20);
    }

    @Override
    public boolean nodeExists(String nodeId) {
        return nodes.contains(nodeId);
    }

    private static Volume with(Volume v, long size, Optional<Volume.Attachment> attachment, Map<String, String> parameters) {
        return new Volume(v.id(), v.name(), size, v.replicaCount(), v.fsType(), Map.copyOf(parameters),
                v.contentSource(), v.replicas(), v.epoch(), attachment, v.condition());
    }

    /** The local node (a storage node holding {@link #POOL_BYTES}) and {@link #OTHER_NODE}, storage-less. */
    @Override
    public synchronized List<ClusterNode> clusterNodes() {
        long used = volumes.values().stream().mapToLong(Volume::sizeBytes).sum();
        return List.of(
                new ClusterNode(LOCAL_NODE, "127.0.0.2:7400", localNode().labels(), POOL_BYTES,
                        Math.max(0, POOL_BYTES - used), false, true),
                new ClusterNode(OTHER_NODE, "127.0.0.3:7499", Map.of("zone", "z2"), 0, 0, true, otherNodeAlive));
    }
}
