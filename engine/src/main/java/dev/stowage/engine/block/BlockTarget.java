package dev.stowage.engine.block;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * A byte-addressed volume as a frontend serves it to the kernel: the coordinator of an attached
 * volume implements it, frontends (FUSE, NBD) consume it and never see what lies beneath.
 *
 * <p>Threading: implementations are thread-safe; frontends call them from several threads at
 * once, for overlapping ranges too (the kernel orders what it needs ordered).
 *
 * <p>Buffers: the callee reads {@code src} / fills {@code dst} between position and limit and
 * does not keep a reference after returning; positions are advanced.
 *
 * <p>Durability: a completed {@link #write} is visible to later reads; it is durable (survives a
 * crash of the process or the host) only once a later {@link #flush} has returned.
 */
public interface BlockTarget {

    /** Current size in bytes. Reads and writes must lie within it. */
    long sizeBytes();

    /** Fills {@code dst} with the bytes at {@code offset}; never-written ranges read as zeros. */
    void read(long offset, ByteBuffer dst) throws IOException;

    /** Writes the remaining bytes of {@code src} at {@code offset}. */
    void write(long offset, ByteBuffer src) throws IOException;

    /** Makes every write that completed before this call durable. */
    void flush() throws IOException;

    /**
     * Whether {@link #writeAsync} may complete after it returned, and so reads {@code src} until
     * then. A frontend that reuses its request buffers copies such a write's data out of them
     * first; for a target that answers false it calls {@link #write} and copies nothing.
     */
    default boolean writesInBackground() {
        return false;
    }

    /**
     * Starts writing the remaining bytes of {@code src} at {@code offset}; {@code done} is called
     * exactly once, when the write completed (as {@link #write} returning) or failed, on any thread,
     * possibly this one before this method returns. {@code src} must stay unchanged until then.
     * {@code done} must not block: it may run on an event loop. This default writes right here.
     */
    default void writeAsync(long offset, ByteBuffer src, WriteCompletion done) {
        IOException failure = null;
        try {
            write(offset, src);
        } catch (IOException e) {
            failure = e;
        }
        done.completed(failure);
    }

    /** What {@link #writeAsync} calls when its write completed ({@code failure} null) or failed. */
    @FunctionalInterface
    interface WriteCompletion {
        void completed(IOException failure);
    }
}
