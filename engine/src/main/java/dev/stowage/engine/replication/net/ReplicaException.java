package dev.stowage.engine.replication.net;

import java.io.IOException;
import java.net.InetSocketAddress;

/**
 * A request to a remote replica failed. Subclasses say why and carry what a caller needs to act;
 * every one names the replica's node address and, where known, the volume.
 */
public abstract class ReplicaException extends IOException {
    private static final long serialVersionUID = 1L;
    private final InetSocketAddress address;
    private final String volumeId;

    protected ReplicaException(InetSocketAddress address, String volumeId, String message, Throwable cause) {
        super((volumeId == null ? "" : "volume " + volumeId + " ") + "on " + address + ": " + message, cause);
        this.address = address;
        this.volumeId = volumeId;
    }

    /** The replica node's address. */
    public InetSocketAddress address() {
        return address;
    }

    /** The volume, or {@code null} for a failure of the connection itself. */
    public String volumeId() {
        return volumeId;
    }
}
