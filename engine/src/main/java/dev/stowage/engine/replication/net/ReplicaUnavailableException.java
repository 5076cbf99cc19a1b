package dev.stowage.engine.replication.net;

import java.net.InetSocketAddress;

/**
 * The replica's node could not be reached, or the connection was lost (or closed) while the
 * request was in flight: whether a write took effect is unknown.
 */
public final class ReplicaUnavailableException extends ReplicaException {
    private static final long serialVersionUID = 1L;

    public ReplicaUnavailableException(InetSocketAddress address, String volumeId, String message, Throwable cause) {
        super(address, volumeId, message, cause);
    }
}
