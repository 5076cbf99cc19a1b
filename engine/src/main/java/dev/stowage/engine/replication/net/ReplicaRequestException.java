package dev.stowage.engine.replication.net;

import java.net.InetSocketAddress;

/**
 * The replica refused the request as {@link FrameStatus#NOT_FOUND} (no such volume or handle) or
 * {@link FrameStatus#BAD_REQUEST} (malformed or out of range; the message names the field).
 */
public final class ReplicaRequestException extends ReplicaException {
    private static final long serialVersionUID = 1L;
    private final FrameStatus status;

    public ReplicaRequestException(InetSocketAddress address, String volumeId, FrameStatus status, String message) {
        super(address, volumeId, status + ": " + message, null);
        this.status = status;
    }

    public FrameStatus status() {
        return status;
    }
}
