package dev.stowage.engine.replication.net;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import java.nio.ByteBuffer;
import java.util.concurrent.CompletableFuture;

/**
 * One volume opened on a remote replica through a {@link ReplicaClient}. Every request carries the
 * handle and this replica's current epoch (the one it was opened with, or raised to by
 * {@link #raiseEpochAsync}).
 *
 * <p>Buffer ownership: {@link #writeAsync} sends {@code src}'s remaining bytes without copying
 * them; {@link #readAsync} fills {@code dst}'s remaining bytes. Neither changes the buffer's
 * position or limit, and the caller must not touch the buffer until the future completes.
 *
 * <p>Ordering: requests may complete in any order. A flush covers the writes acknowledged before
 * it was sent; send it after their futures completed.
 *
 * <p>Threading: thread-safe; futures complete on the connection's event loop (callbacks must not
 * block). Errors: see {@link ReplicaClient}.
 */
public final class RemoteReplica implements AutoCloseable {
    private final ReplicaClient client;
    private final String volumeId;
    private final int handle;
    private final long sizeBytes;
    private volatile long epoch;

    RemoteReplica(ReplicaClient client, String volumeId, int handle, long epoch, long sizeBytes) {
        this.client = client;
        this.volumeId = volumeId;
        this.handle = handle;
        this.epoch = epoch;
        this.sizeBytes = sizeBytes;
    }

    public String volumeId() {
        return volumeId;
    }

    /** The epoch this replica's requests carry. */
    public long epoch() {
        return epoch;
    }

    /** The volume's size on the replica when it was opened. */
    public long sizeBytes() {
        return sizeBytes;
    }

    /** The replica server's handle of the open volume. */
    int handle() {
        return handle;
    }

    public ReplicaClient client() {
        return client;
    }

    /**
     * Writes {@code src}'s remaining bytes (at most 4 MiB + 4 KiB) at {@code offset}; the replica
     * records {@code generation} for the 1 MiB regions written. The crc32c is computed on the
     * calling thread. Durable after a later {@link #flushAsync()} completes.
     */
    public CompletableFuture<Void> writeAsync(long offset, ByteBuffer src, long generation) {
        return writeAsync(offset, src, generation, 0);
    }

    /**
     * As {@link #writeAsync(long, ByteBuffer, long)} with the WRITE's aux: flags such as
     * {@link Frame#WRITE_BULK}, and the watermark ({@link Frame#writeAux}).
     */
    public CompletableFuture<Void> writeAsync(long offset, ByteBuffer src, long generation, int flags) {
        int n = src.remaining();
        if (n == 0 || n > Frame.MAX_PAYLOAD) {
            return CompletableFuture.failedFuture(new IllegalArgumentException(
                    "write length must be in [1, " + Frame.MAX_PAYLOAD + "]: " + n));
        }
        long e = epoch;
        return client.call(id -> {
            ByteBuf payload = Unpooled.wrappedBuffer(src.slice());
            return Frame.request(FrameType.WRITE, id, handle, e, generation, offset, flags, payload);
        }, volumeId, FrameType.WRITE, e, offset, resp -> null);
    }

    /**
     * Reads {@code dst.remaining()} bytes (at most 4 MiB + 4 KiB) at {@code offset} into {@code dst}.
     * A response whose crc32c does not match fails with {@link ReplicaChecksumException}
     * ({@code IN_TRANSIT}); a corrupt block on the replica's disk with {@code ON_DISK}.
     */
    public CompletableFuture<Void> readAsync(long offset, ByteBuffer dst) {
        int n = dst.remaining();
        if (n == 0 || n > Frame.MAX_PAYLOAD) {
            return CompletableFuture.failedFuture(new IllegalArgumentException(
                    "read length must be in [1, " + Frame.MAX_PAYLOAD + "]: " + n));
        }
        long e = epoch;
        return client.call(id -> Frame.request(FrameType.READ, id, handle, e, 0, offset, n),
                volumeId, FrameType.READ, e, offset, resp -> {
                    if (resp.length() != n) {
                        throw new ReplicaRequestException(client.address(), volumeId, FrameStatus.BAD_REQUEST,
                                "READ of " + n + " bytes answered with " + resp.length());
                    }
                    if (!resp.checksumMatches()) {
                        throw new ReplicaChecksumException(client.address(), volumeId,
                                ReplicaChecksumException.Where.IN_TRANSIT, offset);
                    }
                    ByteBuf p = resp.payload();
                    p.getBytes(p.readerIndex(), dst.duplicate());
                    return null;
                });
    }

    /** Makes every write acknowledged before this call durable on the replica, with its region generations. */
    public CompletableFuture<Void> flushAsync() {
        return flushAsync(0);
    }

    /** As {@link #flushAsync()}, telling the replica the coordinator's completion watermark (0: none). */
    public CompletableFuture<Void> flushAsync(long watermark) {
        long e = epoch;
        return client.call(id -> Frame.request(FrameType.FLUSH, id, handle, e, watermark, 0, 0),
                volumeId, FrameType.FLUSH, e, 0, resp -> null);
    }

    /** The replica's regions in doubt, ascending (see {@link FrameType#IN_DOUBT}). */
    public CompletableFuture<long[]> inDoubtAsync() {
        long e = epoch;
        return client.call(id -> Frame.request(FrameType.IN_DOUBT, id, handle, e, 0, 0, 0),
                volumeId, FrameType.IN_DOUBT, e, 0, resp -> {
                    ByteBuf p = resp.payload();
                    long[] out = new long[p.readableBytes() / 8];
                    for (int i = 0; i < out.length; i++) {
                        out[i] = p.getLong(p.readerIndex() + 8 * i);
                    }
                    return out;
                });
    }

    /** The highest write generation of {@code count} regions (1 MiB each) from {@code firstRegion}; 0 = never written. */
    public CompletableFuture<long[]> generationsAsync(long firstRegion, int count) {
        if (firstRegion < 0 || count < 0 || count > Frame.MAX_PAYLOAD / 8) {
            return CompletableFuture.failedFuture(new IllegalArgumentException(
                    "firstRegion must be >= 0 and count in [0, " + Frame.MAX_PAYLOAD / 8 + "]: "
                            + firstRegion + ", " + count));
        }
        long e = epoch;
        return client.call(id -> Frame.request(FrameType.GENERATIONS, id, handle, e, 0, firstRegion, count),
                volumeId, FrameType.GENERATIONS, e, firstRegion, resp -> {
                    if (resp.length() != count * 8) {
                        throw new ReplicaRequestException(client.address(), volumeId, FrameStatus.BAD_REQUEST,
                                "GENERATIONS of " + count + " regions answered with " + resp.length() + " bytes");
                    }
                    ByteBuf p = resp.payload();
                    long[] out = new long[count];
                    for (int i = 0; i < count; i++) {
                        out[i] = p.getLong(p.readerIndex() + 8 * i);
                    }
                    return out;
                });
    }

    /**
     * Raises the replica's persisted epoch to {@code newEpoch} (durable when the future completes);
     * later requests through this object carry it. Fails with {@link StaleEpochException} if the
     * replica's epoch is already higher.
     */
    public CompletableFuture<Void> raiseEpochAsync(long newEpoch) {
        return client.call(id -> Frame.request(FrameType.EPOCH, id, handle, newEpoch, 0, 0, 0),
                volumeId, FrameType.EPOCH, newEpoch, 0, resp -> {
                    synchronized (this) {
                        if (newEpoch > epoch) {
                            epoch = newEpoch;
                        }
                    }
                    return null;
                });
    }

    /** Releases the handle on the replica. */
    public CompletableFuture<Void> closeAsync() {
        long e = epoch;
        return client.call(id -> Frame.request(FrameType.CLOSE, id, handle, e, 0, 0, 0),
                volumeId, FrameType.CLOSE, e, 0, resp -> null);
    }

    /** Sends CLOSE without waiting for the answer; never blocks. */
    @Override
    public void close() {
        closeAsync();
    }
}
