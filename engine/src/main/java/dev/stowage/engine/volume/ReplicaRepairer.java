package dev.stowage.engine.volume;

import dev.stowage.engine.api.VolumeSpec;
import dev.stowage.engine.replication.Coordinator;
import dev.stowage.engine.replication.ReplicaEndpoint;
import dev.stowage.engine.replication.ReplicatedCoordinator;
import dev.stowage.proto.metadata.ReplicaRecord;
import dev.stowage.proto.metadata.ReplicaState;
import dev.stowage.proto.metadata.VolumeRecord;
import java.io.IOException;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.function.Supplier;
import java.util.function.UnaryOperator;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Restores the replica count of the volumes attached on this node, online, while they serve I/O.
 * Every {@code interval} it looks at each attached replicated volume's record:
 * <ul>
 *   <li>a STALE (or interrupted REBUILDING) replica whose node is alive again is resynced: only the
 *       regions whose generation is higher on a healthy replica are copied (invariant 4);</li>
 *   <li>a STALE replica whose node has been away longer than {@code replaceTimeout}, or whose node is
 *       alive but every resync of it has failed for that long (a failing disk, a broken replica
 *       server behind a live lease), is replaced: a new
 *       replica is placed by the same rules on another node, created empty, put in the record as
 *       REBUILDING and rebuilt from the written regions (invariant 5). The old node deletes its copy when
 *       it starts again and finds no record assigning it to it, or, if it comes back without a restart,
 *       once no record has assigned the copy to it for ten minutes ({@link StrayReplicaCollector}).</li>
 * </ul>
 * Copies are capped at {@code bandwidthBytesPerSecond} (0: no cap).
 *
 * Before that, a pass asks every HEALTHY replica whose node left the cluster whether it still
 * answers ({@link ReplicatedCoordinator#markUnreachable}), all at once: a node that died without
 * resetting its connections leaves each such request to run out its deadline (5 s), and one after
 * another they held up the pass by that much per volume.
 *
 * <p>Threading: one daemon thread; repairs of one node run one at a time. The membership probes of
 * one pass run in parallel on up to {@link #PROBE_THREADS} more.
 */
final class ReplicaRepairer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(ReplicaRepairer.class);

    /** How the repairer works; validated on construction. */
    record Config(Duration interval, Duration replaceTimeout, long bandwidthBytesPerSecond) {
        Config {
            if (interval.isNegative() || interval.isZero() || replaceTimeout.isNegative() || bandwidthBytesPerSecond < 0) {
                throw new IllegalArgumentException("replica repair: interval " + interval + ", replace timeout "
                        + replaceTimeout + ", bandwidth " + bandwidthBytesPerSecond);
            }
        }
    }

    private final ClusterFleet fleet;
    private final Config config;
    private final Supplier<Map<String, Coordinator>> attached;
    private final Function<String, Optional<VolumeRecord>> records;
    private final java.util.function.BiConsumer<String, UnaryOperator<VolumeRecord>> update;
    private final ScheduledExecutorService thread;
    /** Most membership probes of one pass in flight at once (each mostly waits on a request). */
    static final int PROBE_THREADS = 32;
    private final java.util.concurrent.ThreadPoolExecutor probes;
    private final Map<String, String> warned = new ConcurrentHashMap<>();
    /** Per {@code volumeId/node}: since when (nanoTime) every resync of that replica on a live node failed. */
    private final Map<String, Long> resyncFailingSince = new ConcurrentHashMap<>();
    private final java.util.List<Map.Entry<Duration, Runnable>> housekeeping = new java.util.ArrayList<>();

    ReplicaRepairer(ClusterFleet fleet, Config config, Supplier<Map<String, Coordinator>> attached,
                    Function<String, Optional<VolumeRecord>> records,
                    java.util.function.BiConsumer<String, UnaryOperator<VolumeRecord>> update) {
        this.fleet = fleet;
        this.config = config;
        this.attached = attached;
        this.records = records;
        this.update = update;
        this.thread = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "replica-repair");
            t.setDaemon(true);
            return t;
        });
        java.util.concurrent.atomic.AtomicInteger n = new java.util.concurrent.atomic.AtomicInteger();
        this.probes = new java.util.concurrent.ThreadPoolExecutor(PROBE_THREADS, PROBE_THREADS, 30, TimeUnit.SECONDS,
                new java.util.concurrent.LinkedBlockingQueue<>(), r -> {
                    Thread t = new Thread(r, "replica-probe-" + n.incrementAndGet());
                    t.setDaemon(true);
                    return t;
                });
        probes.allowCoreThreadTimeOut(true);
    }

    void start() {
        long ms = config.interval().toMillis();
        thread.scheduleWithFixedDelay(this::repairOnce, ms, ms, TimeUnit.MILLISECONDS);
        for (Map.Entry<Duration, Runnable> h : housekeeping) {
            long every = h.getKey().toMillis();
            thread.scheduleWithFixedDelay(h.getValue(), every, every, TimeUnit.MILLISECONDS);
        }
        LOG.info("replica repair every {} ms; replicas away longer than {} s are replaced; copies capped at {} B/s",
                ms, config.replaceTimeout().toSeconds(), config.bandwidthBytesPerSecond() == 0 ? "no"
                        : config.bandwidthBytesPerSecond());
    }

    /**
     * Runs {@code task} every {@code every} on the repair thread too, from {@link #start} on (node
     * housekeeping such as {@link StrayReplicaCollector}).
     */
    void also(Duration every, Runnable task) {
        housekeeping.add(Map.entry(every, task));
    }

    /** An attached replicated volume's coordinator and its record, as one pass read it. */
    private record Attached(ReplicatedCoordinator rc, VolumeRecord record) {}

    /** One pass over the attached volumes; never throws (a failure is retried on the next pass). */
    void repairOnce() {
        Map<String, Attached> volumes = new java.util.LinkedHashMap<>();
        for (Map.Entry<String, Coordinator> e : attached.get().entrySet()) {
            if (!(e.getValue() instanceof ReplicatedCoordinator rc) || rc.fenced()) {
                continue;
            }
            try {
                records.apply(e.getKey()).ifPresent(r -> volumes.put(e.getKey(), new Attached(rc, r)));
            } catch (RuntimeException ex) {
                LOG.warn("volume {}: replica repair failed, will retry: {}", e.getKey(), ex.toString());
            }
        }
        // Failing resyncs count for volumes still attached here only.
        resyncFailingSince.keySet().removeIf(k -> !volumes.containsKey(k.substring(0, k.lastIndexOf('/'))));
        probeDeparted(volumes);
        for (Map.Entry<String, Attached> e : volumes.entrySet()) {
            try {
                repair(e.getKey(), e.getValue().record(), e.getValue().rc());
            } catch (IOException | RuntimeException ex) {
                LOG.warn("volume {}: replica repair failed, will retry: {}", e.getKey(), ex.toString());
            }
        }
    }

    /**
     * Asks each HEALTHY replica whose node left the cluster whether it still answers its coordinator,
     * all at once, and waits for every answer: one that does not answer is marked STALE now, not only
     * at the next write that fails on it (see the class comment).
     */
    private void probeDeparted(Map<String, Attached> volumes) {
        List<java.util.concurrent.Future<?>> pending = new java.util.ArrayList<>();
        for (Map.Entry<String, Attached> e : volumes.entrySet()) {
            ReplicatedCoordinator rc = e.getValue().rc();
            for (ReplicaRecord replica : e.getValue().record().getReplicasList()) {
                String node = replica.getNodeId();
                if (replica.getState() != ReplicaState.HEALTHY || fleet.nodeAlive(node)) {
                    continue;
                }
                pending.add(probes.submit(() -> {
                    try {
                        rc.markUnreachable(node, "node " + node + " left the cluster");
                    } catch (IOException | RuntimeException ex) {
                        LOG.warn("volume {}: could not check the replica on node {}, will retry: {}", e.getKey(), node,
                                ex.toString());
                    }
                }));
            }
        }
        for (java.util.concurrent.Future<?> f : pending) {
            try {
                f.get();
            } catch (InterruptedException ex) {
                Thread.currentThread().interrupt();
                return;
            } catch (java.util.concurrent.ExecutionException ex) {
                LOG.warn("replica probe failed: {}", ex.getCause().toString());
            }
        }
    }

    private void repair(String volumeId, VolumeRecord r, ReplicatedCoordinator rc) throws IOException {
        // A fresh replica of a restored or cloned volume lacks the source's data in regions never written since.
        boolean fullCopy = !r.getContentSource().isEmpty();
        for (ReplicaRecord replica : r.getReplicasList()) {
            if (replica.getState() == ReplicaState.HEALTHY) {
                continue; // one whose node left was asked by probeDeparted
            }
            String node = replica.getNodeId();
            String key = volumeId + "/" + node;
            if (fleet.nodeAlive(node)) {
                warned.remove(key);
                try {
                    ReplicaEndpoint endpoint = fleet.endpoint(volumeId, node, rc.epoch());
                    // A returning replica shares the source's layers: the regions it missed are all it needs.
                    long copied = rc.resync(endpoint, config.bandwidthBytesPerSecond(), false);
                    resyncFailingSince.remove(key);
                    LOG.info("volume {}: replica on node {} resynced, {} bytes copied", volumeId, node, copied);
                } catch (IOException | RuntimeException e) {
                    if (rc.fenced() || e instanceof java.io.InterruptedIOException) {
                        throw e; // not the replica's doing
                    }
                    long since = resyncFailingSince.computeIfAbsent(key, k -> System.nanoTime());
                    Duration failing = Duration.ofNanos(System.nanoTime() - since);
                    if (failing.compareTo(config.replaceTimeout()) <= 0) {
                        throw e;
                    }
                    LOG.warn("volume {}: every resync of the replica on live node {} has failed for {} s, the last with {}",
                            volumeId, node, failing.toSeconds(), e.toString());
                    resyncFailingSince.remove(key);
                    replace(r, node, rc, fullCopy, "its resyncs failing for " + failing.toSeconds() + " s");
                    return; // the record changed: look again on the next pass
                }
            } else {
                resyncFailingSince.remove(key); // away: the timeout runs from its leave instead
                if (fleet.absentFor(node).compareTo(config.replaceTimeout()) > 0) {
                    replace(r, node, rc, fullCopy, "away " + fleet.absentFor(node).toSeconds() + " s");
                    return; // the record changed: look again on the next pass
                }
            }
        }
    }

    /** Replaces the replica on {@code lost} ({@code why}: for the log) by a new one placed by the same rules, rebuilt online. */
    private void replace(VolumeRecord r, String lost, ReplicatedCoordinator rc, boolean fullCopy, String why)
            throws IOException {
        List<String> kept = r.getReplicasList().stream().map(ReplicaRecord::getNodeId)
                .filter(n -> !n.equals(lost)).toList();
        Optional<String> fresh = fleet.replacement(kept, lost, r.getSizeBytes(),
                VolumeParameters.stored(r.getParametersMap()).zones());
        if (fresh.isEmpty()) {
            if (warned.put(r.getId() + "/" + lost, "") == null) {
                LOG.warn("volume {}: replica on node {} ({}) but no other node can take it;"
                        + " running with {} of {} replicas", r.getId(), lost, why, kept.size(), r.getReplicaCount());
            }
            return;
        }
        String node = fresh.get();
        LOG.info("volume {}: replacing the replica on node {} ({}) with a new one on node {}", r.getId(), lost, why,
                node);
        fleet.create(r.getId(), r.getSizeBytes(), new VolumeSpec.ContentSource.Empty(), List.of(node));
        update.accept(r.getId(), rec -> {
            VolumeRecord.Builder b = rec.toBuilder().clearReplicas();
            for (ReplicaRecord rep : rec.getReplicasList()) {
                b.addReplicas(rep.getNodeId().equals(lost)
                        ? ReplicaRecord.newBuilder().setNodeId(node).setState(ReplicaState.REBUILDING).build() : rep);
            }
            return b.build();
        });
        rc.forget(lost);
        ReplicaEndpoint endpoint = fleet.endpoint(r.getId(), node, rc.epoch());
        long copied = rc.resync(endpoint, config.bandwidthBytesPerSecond(), fullCopy);
        LOG.info("volume {}: new replica on node {} rebuilt, {} bytes copied", r.getId(), node, copied);
    }

    @Override
    public void close() {
        thread.shutdownNow();
        probes.shutdownNow();
        try {
            thread.awaitTermination(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
