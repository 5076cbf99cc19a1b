package dev.stowage.engine.replication.net;

import dev.stowage.engine.storage.ReplicaStore;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.UnpooledByteBufAllocator;
import io.netty.buffer.UnpooledDirectByteBuf;
import java.nio.ByteBuffer;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Direct buffers for large payloads as {@link FrameCodec} receives them: each starts on a 4 KiB
 * boundary, so a bulk write goes to disk with O_DIRECT straight from it, and released buffers are
 * kept for the next payload of their size class (powers of two from 64 KiB), so a stream of 1 MiB
 * WRITEs does not allocate and zero memory for each. Netty's pooled allocator did not do for this:
 * it frees a chunk whenever its last buffer goes back, and zeroes the next one it allocates (2% of
 * the machine in a resync's receiving event loop).
 *
 * <p>At most {@link #KEPT_BYTES_PER_CLASS} bytes are kept per size class (16 MiB: a resync keeps
 * eight 1 MiB regions in flight), 128 MiB over all eight classes; buffers beyond that are left to
 * the garbage collector.
 *
 * <p>Threading: safe from any thread; a buffer is usually taken on an event loop and released on
 * a replica I/O thread.
 */
final class PayloadBuffers {
    static final int MIN_CLASS = 64 * 1024;
    static final long KEPT_BYTES_PER_CLASS = 16L << 20;

    private final ConcurrentLinkedDeque<ByteBuffer>[] free;
    private final AtomicInteger[] kept;
    private final AtomicLong outstanding = new AtomicLong();

    @SuppressWarnings("unchecked")
    PayloadBuffers() {
        int classes = classOf(Frame.MAX_PAYLOAD) + 1;
        free = new ConcurrentLinkedDeque[classes];
        kept = new AtomicInteger[classes];
        for (int i = 0; i < classes; i++) {
            free[i] = new ConcurrentLinkedDeque<>();
            kept[i] = new AtomicInteger();
        }
    }

    /** A buffer of exactly {@code length} writable bytes (1..{@link Frame#MAX_PAYLOAD}), owned by the caller. */
    ByteBuf take(int length) {
        if (length <= 0 || length > Frame.MAX_PAYLOAD) {
            throw new IllegalArgumentException("payload length " + length + " outside [1, " + Frame.MAX_PAYLOAD + "]");
        }
        int c = classOf(length);
        ByteBuffer whole = free[c].pollFirst();
        if (whole == null) {
            whole = ReplicaStore.blockAlignedBuffer(sizeOf(c));
        } else {
            kept[c].decrementAndGet();
        }
        outstanding.incrementAndGet();
        return new Payload(this, c, whole, length);
    }

    /** Buffers taken and not yet released (for tests and leak checks). */
    long outstanding() {
        return outstanding.get();
    }

    /** Bytes kept for reuse, over all size classes. */
    long keptBytes() {
        long sum = 0;
        for (int c = 0; c < kept.length; c++) {
            sum += (long) kept[c].get() * sizeOf(c);
        }
        return sum;
    }

    private void giveBack(int c, ByteBuffer whole) {
        outstanding.decrementAndGet();
        if ((long) kept[c].incrementAndGet() * sizeOf(c) <= KEPT_BYTES_PER_CLASS) {
            free[c].offerFirst(whole); // the most recently used buffer is the likeliest to be in cache
        } else {
            kept[c].decrementAndGet(); // over the bound (counted first, so concurrent releases cannot pass it)
        }
    }

    private static int classOf(int length) {
        int size = Math.max(MIN_CLASS, Integer.highestOneBit(length - 1) << 1);
        return Integer.numberOfTrailingZeros(size) - Integer.numberOfTrailingZeros(MIN_CLASS);
    }

    private static int sizeOf(int c) {
        return MIN_CLASS << c;
    }

    /** A payload buffer: a view of {@code length} bytes of a kept buffer, which goes back on release. */
    private static final class Payload extends UnpooledDirectByteBuf {
        private final PayloadBuffers owner;
        private final int sizeClass;
        private final ByteBuffer whole;

        Payload(PayloadBuffers owner, int sizeClass, ByteBuffer whole, int length) {
            super(UnpooledByteBufAllocator.DEFAULT, whole.duplicate().clear().limit(length), length);
            this.owner = owner;
            this.sizeClass = sizeClass;
            this.whole = whole;
            clear(); // the view starts empty: the decoder writes the payload into it
        }

        @Override
        protected void deallocate() {
            super.deallocate(); // drops the view; the memory is not freed (not ours to free)
            owner.giveBack(sizeClass, whole);
        }
    }
}
