package dev.stowage.engine.replication.net;

import io.netty.handler.codec.CorruptedFrameException;

/**
 * A frame header broke the protocol (bad magic, oversized length, non-zero reserved bytes, a crc
 * on an empty payload). The byte stream can no longer be trusted: the connection is closed.
 */
public final class MalformedFrameException extends CorruptedFrameException {
    private static final long serialVersionUID = 1L;

    public MalformedFrameException(String message) {
        super(message);
    }
}
