package dev.stowage.engine.storage;

import java.io.IOException;

/** A block's data does not match its stored crc32c: the block is corrupt on this replica. */
public final class ChecksumMismatchException extends IOException {
    private final String volumeId;
    private final long blockIndex;
    private final int expectedCrc;
    private final int actualCrc;

    public ChecksumMismatchException(String volumeId, long blockIndex, int expectedCrc, int actualCrc) {
        super(String.format("volume %s block %d: crc32c %08x on disk, %08x computed",
                volumeId, blockIndex, expectedCrc, actualCrc));
        this.volumeId = volumeId;
        this.blockIndex = blockIndex;
        this.expectedCrc = expectedCrc;
        this.actualCrc = actualCrc;
    }

    public String volumeId() { return volumeId; }
    public long blockIndex() { return blockIndex; }
    public int expectedCrc() { return expectedCrc; }
    public int actualCrc() { return actualCrc; }
}
