package dev.stowage.engine.replication;

import dev.stowage.engine.replication.ReplicatedCoordinator.State;
import java.io.IOException;

/** A replica as its coordinator sees it: the endpoint, its state, and while resynced, the regions it has finished. */
final class ReplicaMember {
    final ReplicaEndpoint endpoint;
    volatile State state;
    /** The last failed attempt to record this replica STALE, and when it failed (guarded by stateLock). */
    IOException markFailure;
    long markFailedAt;
    /**
     * While a resync brings this replica up to date: the regions it has finished (copied, or
     * found current). Null otherwise. See {@link #generationFor}.
     */
    volatile java.util.concurrent.atomic.AtomicLongArray upToDate;

    ReplicaMember(ReplicaEndpoint endpoint, State state) {
        this.endpoint = endpoint;
        this.state = state;
    }

    /**
     * Whether a write of regions {@code [first, last]} must reach this replica as in doubt
     * rather than at its generation: true for a replica being resynced, for a region the
     * resync has not finished yet. Recording the generation would let the region claim it
     * while it still lacks the writes it missed while away; the resync would then find the
     * region current and never copy it (a partial write during the resync was enough to lose
     * the missed data). In doubt, the resync copies it whatever the source's generation, and
     * so does a later resync if a dead coordinator left the write on this replica alone.
     */
    boolean inDoubtFor(long first, long last) {
        java.util.concurrent.atomic.AtomicLongArray done = upToDate;
        if (done == null) {
            return false;
        }
        for (long r = first; r <= last; r++) {
            int word = (int) (r >>> 6);
            if (word >= done.length() || (done.get(word) & (1L << r)) == 0) {
                return true;
            }
        }
        return false;
    }

    void finished(long region) {
        java.util.concurrent.atomic.AtomicLongArray done = upToDate;
        int word = (int) (region >>> 6);
        if (done != null && word < done.length()) {
            done.getAndAccumulate(word, 1L << region, (a, b) -> a | b);
        }
    }
}
