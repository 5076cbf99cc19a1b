package dev.stowage.engine.volume;

import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.ReplicaCopy;
import dev.stowage.engine.api.StowageException;
import dev.stowage.engine.api.VolumeSpec;
import dev.stowage.engine.replication.Coordinator;
import dev.stowage.proto.metadata.VolumeRecord;
import java.io.IOException;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Snapshots and clones made at one point of the source's writes (docs/replication.md, invariant 9):
 * {@link #copy} runs a {@link ReplicaCopy} under the hold of the source's coordinator, on this node
 * or, through {@link PeerCoordinators}, on the node it is attached to; {@link #serve} is that other
 * node's side.
 *
 * <p>Threading: {@link #copy} runs under the volume service's lock, held by its caller;
 * {@link #serve} takes the same lock itself, with a bounded wait.
 */
final class HeldCopies {
    private static final Logger LOG = LoggerFactory.getLogger(HeldCopies.class);
    /** Longest wait for this node's lock when another node asks for a held copy. */
    private static final Duration PEER_LOCK_WAIT = Duration.ofSeconds(10);
    /** Attempts of a held copy when the volume's attachment moves while it is being made. */
    private static final int HELD_COPY_ATTEMPTS = 3;

    private final String nodeId;
    private final ReplicaFleet fleet;
    private final ReentrantLock lock;
    /** The coordinator of a volume attached on this node, if it is. */
    private final Function<String, Optional<Coordinator>> attached;
    /** A volume's record; NOT_FOUND if there is none. */
    private final Function<String, VolumeRecord> records;
    /** Reaches the coordinators of volumes attached on other nodes. */
    private volatile PeerCoordinators peers = PeerCoordinators.NONE;

    HeldCopies(String nodeId, ReplicaFleet fleet, ReentrantLock lock,
               Function<String, Optional<Coordinator>> attached, Function<String, VolumeRecord> records) {
        this.nodeId = nodeId;
        this.fleet = fleet;
        this.lock = lock;
        this.attached = attached;
        this.records = records;
    }

    void usePeers(PeerCoordinators peers) {
        this.peers = Objects.requireNonNull(peers, "peers");
    }

    /**
     * Makes {@code copy} of the source's replicas on {@code nodes} at one point of its writes
     * (docs/replication.md, invariant 9): under the hold of its coordinator, on this node or, through
     * {@link PeerCoordinators}, on the live node it is attached to. Without a hold only when no
     * coordinator runs: the volume is attached nowhere, or on a node that is not alive.
     */
    void copy(String sourceVolumeId, List<String> nodes, ReplicaCopy copy) throws IOException {
        for (int attempt = 1; ; attempt++) {
            Optional<Coordinator> here = attached.apply(sourceVolumeId);
            if (here.isPresent()) {
                here.get().whileQuiesced(() -> makeCopy(sourceVolumeId, nodes, copy));
                return;
            }
            VolumeRecord source = records.apply(sourceVolumeId);
            String at = source.hasAttachment() && !source.getAttachment().getDevicePath().isEmpty()
                    ? source.getAttachment().getNodeId() : "";
            if (at.isEmpty() || at.equals(nodeId) || !fleet.nodeAlive(at)) {
                makeCopy(sourceVolumeId, nodes, copy); // no coordinator runs (this node's would be attached)
                return;
            }
            String api = fleet.apiAddress(at).orElseThrow(() -> new StowageException(ErrorCode.UNAVAILABLE,
                    "volume " + sourceVolumeId + " is attached on node " + at + ", which has registered no"
                            + " management API address (started with --api-listen off, or still starting):"
                            + " its writes cannot be held for the copy; retry, or copy through node " + at));
            try {
                peers.copyReplicasHeld(api, at, sourceVolumeId, nodes, copy);
                return;
            } catch (StowageException e) {
                if (e.code() == ErrorCode.FAILED_PRECONDITION && attempt < HELD_COPY_ATTEMPTS) {
                    LOG.info("volume {}: node {} no longer coordinates it ({}); looking again", sourceVolumeId,
                            at, e.getMessage());
                    continue; // detached or moved meanwhile
                }
                undoCopy(nodes, copy, e); // the peer may have made it before the call failed
                throw e;
            }
        }
    }

    /** Serves another node's {@link #copy}: see {@link dev.stowage.engine.api.VolumeService#copyReplicasHeld}. */
    void serve(String coordinatorNodeId, String sourceVolumeId, List<String> nodeIds,
                                 ReplicaCopy copy) {
        LocalVolumeService.requireId("source_volume_id", sourceVolumeId);
        if (!nodeId.equals(coordinatorNodeId)) {
            throw new StowageException(ErrorCode.FAILED_PRECONDITION, "coordinator_node_id", "coordinator_node_id: this is"
                    + " node " + nodeId + ", not " + coordinatorNodeId, null);
        }
        if (nodeIds.isEmpty()) {
            throw StowageException.invalid("node_ids", "node_ids: at least one replica node is required");
        }
        // Under this node's lock, so that a detach waits for the copy: once detached, the volume may be
        // attached elsewhere, and that coordinator's writes would not be held. Bounded, as the caller
        // holds its own node's lock meanwhile and this node may be calling it at the same time.
        boolean locked;
        try {
            locked = lock.tryLock(PEER_LOCK_WAIT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new StowageException(ErrorCode.ABORTED, "interrupted while waiting to copy volume " + sourceVolumeId);
        }
        if (!locked) {
            throw new StowageException(ErrorCode.ABORTED, "node " + nodeId + " is busy with another"
                    + " operation; retry the copy of volume " + sourceVolumeId);
        }
        try {
            Coordinator coordinator = attached.apply(sourceVolumeId).orElse(null);
            if (coordinator == null) {
                throw new StowageException(ErrorCode.FAILED_PRECONDITION, "coordinator_node_id", "coordinator_node_id:"
                        + " volume " + sourceVolumeId + " is not attached on node " + nodeId, null);
            }
            coordinator.whileQuiesced(() -> makeCopy(sourceVolumeId, nodeIds, copy));
            LOG.info("volume {}: made {} on nodes {} with its writes held, for another node", sourceVolumeId, copy,
                    nodeIds);
        } catch (IOException e) {
            throw LocalVolumeService.asStowage(e, "copy volume " + sourceVolumeId);
        } finally {
            lock.unlock();
        }
    }

    private void makeCopy(String sourceVolumeId, List<String> nodes, ReplicaCopy copy) throws IOException {
        if (copy instanceof ReplicaCopy.Snapshot s) {
            fleet.snapshot(sourceVolumeId, s.snapshotId(), nodes);
        } else if (copy instanceof ReplicaCopy.Clone c) {
            fleet.create(c.volumeId(), c.sizeBytes(), new VolumeSpec.ContentSource.FromVolume(sourceVolumeId), nodes);
        } else {
            throw new IllegalArgumentException("unknown copy " + copy);
        }
    }

    private void undoCopy(List<String> nodes, ReplicaCopy copy, Exception failure) {
        try {
            if (copy instanceof ReplicaCopy.Snapshot s) {
                fleet.deleteSnapshot(s.snapshotId(), nodes);
            } else if (copy instanceof ReplicaCopy.Clone c) {
                fleet.delete(c.volumeId(), nodes);
            }
        } catch (IOException | RuntimeException cleanup) {
            failure.addSuppressed(cleanup);
        }
    }
}
