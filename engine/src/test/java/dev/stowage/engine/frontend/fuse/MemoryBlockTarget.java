package dev.stowage.engine.frontend.fuse;

import dev.stowage.engine.block.BlockTarget;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Test double: a BlockTarget in memory (64 MiB heap chunks, so it can exceed 2 GiB), growable,
 * counting flushes, with ranges whose reads or writes fail on demand, and writes that complete in
 * the background on demand. Thread-safe for disjoint chunks;
 * chunk access is synchronised per chunk.
 */
final class MemoryBlockTarget implements BlockTarget {
    private static final int CHUNK = 64 << 20;

    private final List<ByteBuffer> chunks = new ArrayList<>();
    private volatile long size;
    private final AtomicLong flushes = new AtomicLong();
    private volatile long failFrom = -1;
    private volatile long failTo = -1;
    private volatile long failWritesFrom = -1;
    private volatile long failWritesTo = -1;
    /** Where writes complete when they complete in the background; null: they complete in the call. */
    private volatile java.util.concurrent.ScheduledExecutorService background;
    private final AtomicLong backgroundWrites = new AtomicLong();
    /** While set, reads of [0, heldReadsTo) wait for it to count down. */
    private volatile java.util.concurrent.CountDownLatch readGate;
    private volatile long heldReadsTo;
    private final AtomicLong heldReads = new AtomicLong();

    MemoryBlockTarget(long size) {
        resize(size);
    }

    synchronized void resize(long newSize) {
        while ((long) chunks.size() * CHUNK < newSize) {
            chunks.add(ByteBuffer.allocate(CHUNK));
        }
        size = newSize;
    }

    /** Reads overlapping [from, to) fail with an IOException until {@link #healReads}. */
    void failReads(long from, long to) {
        failFrom = from;
        failTo = to;
    }

    void healReads() {
        failFrom = -1;
        failTo = -1;
    }

    /** Reads that start below {@code to} wait from now on until {@link #releaseReads}. */
    void holdReads(long to) {
        heldReadsTo = to;
        readGate = new java.util.concurrent.CountDownLatch(1);
    }

    void releaseReads() {
        java.util.concurrent.CountDownLatch gate = readGate;
        readGate = null;
        if (gate != null) {
            gate.countDown();
        }
    }

    /** Reads waiting in {@link #holdReads}'s range right now. */
    long heldReadCount() {
        return heldReads.get();
    }

    /** Writes overlapping [from, to) fail with an IOException from now on. */
    void failWrites(long from, long to) {
        failWritesFrom = from;
        failWritesTo = to;
    }

    /**
     * From now on writes complete in the background ({@link #writesInBackground}): each is read
     * from its buffer and stored on {@code executor} a millisecond after it was handed over, long
     * after the frontend's call returned, as the replies of remote replicas arrive.
     */
    void completeWritesOn(java.util.concurrent.ScheduledExecutorService executor) {
        background = executor;
    }

    /** Writes handed over through {@link #writeAsync} and completed in the background. */
    long backgroundWriteCount() {
        return backgroundWrites.get();
    }

    @Override
    public boolean writesInBackground() {
        return background != null;
    }

    @Override
    public void writeAsync(long offset, ByteBuffer src, WriteCompletion done) {
        java.util.concurrent.ScheduledExecutorService executor = background;
        if (executor == null) {
            BlockTarget.super.writeAsync(offset, src, done);
            return;
        }
        executor.schedule(() -> {
            IOException failure = null;
            try {
                write(offset, src);
                backgroundWrites.incrementAndGet();
            } catch (IOException e) {
                failure = e;
            }
            done.completed(failure);
        }, 1, java.util.concurrent.TimeUnit.MILLISECONDS);
    }

    long flushCount() {
        return flushes.get();
    }

    @Override
    public long sizeBytes() {
        return size;
    }

    @Override
    public void read(long offset, ByteBuffer dst) throws IOException {
        int len = dst.remaining();
        check(offset, len);
        if (failFrom >= 0 && offset < failTo && offset + len > failFrom) {
            throw new IOException("injected read failure at " + offset);
        }
        java.util.concurrent.CountDownLatch gate = readGate;
        if (gate != null && offset < heldReadsTo) {
            heldReads.incrementAndGet();
            try {
                gate.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new java.io.InterruptedIOException("held read interrupted");
            } finally {
                heldReads.decrementAndGet();
            }
        }
        copy(offset, dst, false);
    }

    @Override
    public void write(long offset, ByteBuffer src) throws IOException {
        check(offset, src.remaining());
        if (failWritesFrom >= 0 && offset < failWritesTo && offset + src.remaining() > failWritesFrom) {
            throw new IOException("injected write failure at " + offset);
        }
        copy(offset, src, true);
    }

    @Override
    public void flush() {
        flushes.incrementAndGet();
    }

    /** A copy of [offset, offset + len) for assertions. */
    byte[] snapshot(long offset, int len) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(len);
        copy(offset, b, false);
        return b.array();
    }

    private void check(long offset, int len) throws IOException {
        if (offset < 0 || offset + len > size) {
            throw new IOException("out of range: " + offset + "+" + len + " > " + size);
        }
    }

    private void copy(long offset, ByteBuffer buf, boolean write) {
        while (buf.hasRemaining()) {
            ByteBuffer chunk;
            synchronized (this) {
                chunk = chunks.get((int) (offset / CHUNK));
            }
            int at = (int) (offset % CHUNK);
            int n = Math.min(buf.remaining(), CHUNK - at);
            synchronized (chunk) {
                if (write) {
                    chunk.put(at, buf, buf.position(), n);
                } else {
                    buf.put(buf.position(), chunk, at, n);
                }
            }
            buf.position(buf.position() + n);
            offset += n;
        }
    }
}
