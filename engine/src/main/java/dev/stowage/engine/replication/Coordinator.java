package dev.stowage.engine.replication;

import dev.stowage.engine.block.BlockTarget;
import java.io.IOException;

/**
 * The single writer of one attached volume, as the volume service drives it: the frontend calls the
 * {@link BlockTarget} methods, the control plane grows it and changes its limits. Implemented by
 * {@link VolumeCoordinator} (one local replica) and {@link ReplicatedCoordinator} (synchronous
 * replication to several nodes).
 */
public interface Coordinator extends BlockTarget, AutoCloseable {

    String volumeId();

    /** The fencing epoch this coordinator was granted. */
    long epoch();

    /**
     * Makes the volume {@code newSizeBytes} long as the frontend sees it; the replicas themselves have
     * been grown (by the control plane) before this call.
     */
    void resize(long newSizeBytes) throws IOException;

    void setLimits(IoLimits limits);

    IoLimits limits();

    /** An action run by {@link #whileQuiesced}. */
    @FunctionalInterface
    interface QuiescedAction {
        void run() throws IOException;
    }

    /**
     * Runs {@code action} with the volume's writes held: every write acknowledged before is flushed,
     * none is in flight, and none is admitted until {@code action} returns. A snapshot taken of each
     * replica meanwhile shows all of them at the same point. Implementations with one replica need
     * only the flush (the pool's snapshot itself waits for the I/O in flight).
     */
    default void whileQuiesced(QuiescedAction action) throws IOException {
        flush();
        action.run();
    }

    /** Stops serving; flushes what the implementation can. */
    @Override
    void close() throws IOException;
}
