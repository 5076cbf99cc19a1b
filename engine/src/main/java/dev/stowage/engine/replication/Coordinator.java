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

    /** Stops serving; flushes what the implementation can. */
    @Override
    void close() throws IOException;
}
