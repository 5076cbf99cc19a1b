package dev.stowage.engine.replication.net;

import java.net.InetSocketAddress;

/** The replica's storage failed the request (IO_ERROR); the message is the replica's. */
public final class ReplicaIoException extends ReplicaException {
    private static final long serialVersionUID = 1L;

    public ReplicaIoException(InetSocketAddress address, String volumeId, String message) {
        super(address, volumeId, message, null);
    }
}
