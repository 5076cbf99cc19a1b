package dev.stowage.engine.volume;

import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.ReplicaCopy;
import dev.stowage.engine.api.StowageException;
import java.util.List;

/**
 * How this node reaches the coordinator of a volume attached on another node: through that node's
 * management API, asking it to make a {@link ReplicaCopy} while it holds the volume's writes
 * ({@link dev.stowage.engine.api.VolumeService#copyReplicasHeld}). Failures are
 * {@link StowageException}s; an unreachable node is UNAVAILABLE.
 */
@FunctionalInterface
public interface PeerCoordinators {

    /** Calls node {@code coordinatorNodeId}, whose management API is at {@code apiAddress}. */
    void copyReplicasHeld(String apiAddress, String coordinatorNodeId, String sourceVolumeId, List<String> nodeIds,
                          ReplicaCopy copy);

    /** For a node that has no way to call others (tests of a single service). */
    PeerCoordinators NONE = (apiAddress, coordinator, volume, nodes, copy) -> {
        throw new StowageException(ErrorCode.UNAVAILABLE, "volume " + volume + " is attached on node " + coordinator
                + ", and this node cannot call other nodes' management APIs");
    };
}
