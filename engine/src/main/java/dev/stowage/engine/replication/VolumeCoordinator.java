package dev.stowage.engine.replication;

import dev.stowage.engine.storage.ReplicaStore;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.LongAdder;

/**
 * The single writer of one attached volume: every read and write of the frontend passes here.
 * It holds the volume's epoch, the fencing token it was granted when it took the volume.
 *
 * <p>This is the single-node coordinator: it serves from the local replica alone. Replication
 * (fan-out to remote replicas, acknowledging after all healthy ones) slots in here without the
 * frontends above or the replica store below changing.
 *
 * <p>Threading: thread-safe; I/O goes straight through to the replica store, which orders what it
 * must. After {@link #close()} every call fails with an {@link IOException}.
 */
public final class VolumeCoordinator implements Coordinator {
    private final String volumeId;
    private final long epoch;
    private final ReplicaStore local;
    private final AtomicBoolean closed = new AtomicBoolean();
    private final LongAdder bytesRead = new LongAdder();
    private final LongAdder bytesWritten = new LongAdder();
    private final LongAdder flushes = new LongAdder();

    private final IoThrottle throttle;

    public VolumeCoordinator(String volumeId, long epoch, ReplicaStore local, IoThrottle throttle) {
        this.volumeId = volumeId;
        this.epoch = epoch;
        this.local = local;
        this.throttle = throttle;
    }

    /** Changes the volume's I/O limits while it serves I/O. */
    @Override
    public void setLimits(IoLimits limits) {
        throttle.setLimits(limits);
    }

    @Override
    public IoLimits limits() {
        return throttle.limits();
    }

    @Override
    public String volumeId() {
        return volumeId;
    }

    @Override
    public long epoch() {
        return epoch;
    }

    @Override
    public long sizeBytes() {
        return local.sizeBytes();
    }

    @Override
    public void read(long offset, ByteBuffer dst) throws IOException {
        checkOpen();
        int n = dst.remaining();
        throttle(n);
        local.read(offset, dst);
        bytesRead.add(n);
    }

    @Override
    public void write(long offset, ByteBuffer src) throws IOException {
        checkOpen();
        int n = src.remaining();
        throttle(n);
        local.write(offset, src);
        bytesWritten.add(n);
    }

    @Override
    public void flush() throws IOException {
        checkOpen();
        local.flush();
        flushes.increment();
    }

    /** Grows the local replica to {@code newSizeBytes}. */
    @Override
    public void resize(long newSizeBytes) throws IOException {
        checkOpen();
        local.resize(newSizeBytes);
    }

    public long bytesRead() { return bytesRead.sum(); }

    public long bytesWritten() { return bytesWritten.sum(); }

    public long flushes() { return flushes.sum(); }

    private void throttle(int bytes) throws IOException {
        try {
            throttle.acquire(bytes);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new java.io.InterruptedIOException("volume " + volumeId + ": interrupted while throttled");
        }
    }

    private void checkOpen() throws IOException {
        if (closed.get()) {
            throw new IOException("volume " + volumeId + ": coordinator is closed");
        }
    }

    /** Flushes and stops serving. The replica store stays open (the pool owns it). */
    @Override
    public void close() throws IOException {
        if (closed.compareAndSet(false, true)) {
            local.flush();
        }
    }
}
