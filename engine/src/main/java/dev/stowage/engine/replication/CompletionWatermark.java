package dev.stowage.engine.replication;

import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * The write generations of one coordinator, and its completion watermark: the highest generation
 * up to which every write has ended ({@link #end}). Replicas hear it with every write and flush; a
 * region whose generation lies above it may hold a write that not every replica has
 * (docs/replication.md, "Takeover").
 *
 * <p>How: a write's sequence number {@code s} is recorded as ended in slot {@code s mod RING} of a
 * ring, and the watermark moves up over consecutive recorded slots. A slot holds the sequence that
 * ended there, so the watermark never passes a write that has not ended. A write that ends
 * {@code RING} or more sequences above the watermark (a write ahead of one stuck in flight) would
 * reuse a slot still to be read: it goes to an overflow set instead, which the watermark reads too.
 * (A lock around a sorted set did the same, with every writer of the volume taking the lock three
 * times per write.)
 *
 * <p>Threading: lock-free; any thread may call any method.
 */
final class CompletionWatermark {
    private static final int RING = 1 << 14;
    private static final long SEQUENCE_MASK = (1L << 40) - 1;

    private final long base;
    private final AtomicLong issued = new AtomicLong();
    /** Every sequence up to this one has ended. */
    private final AtomicLong low = new AtomicLong();
    private final AtomicLongArray ended = new AtomicLongArray(RING);
    /** Sequences that ended too far above the watermark for the ring; pruned as it passes them. */
    private final java.util.concurrent.ConcurrentSkipListSet<Long> overflow = new java.util.concurrent.ConcurrentSkipListSet<>();

    /** For the writes of {@code epoch}: generation {@code epoch << 40 | sequence}, sequences from 1. */
    CompletionWatermark(long epoch) {
        this.base = epoch << 40;
    }

    /** A new write's generation, in flight until {@link #end}. */
    long begin() {
        return base | issued.incrementAndGet();
    }

    /** Records that the write of {@code generation} ended (on every replica, or it failed them all and was repaired). */
    void end(long generation) {
        long s = generation & SEQUENCE_MASK;
        if (s - low.get() >= RING) {
            overflow.add(s); // its slot may still hold a sequence the watermark has to read
        } else {
            ended.set((int) (s & (RING - 1)), s); // the next current() climbs over it
        }
    }

    /** The watermark: every write of this coordinator up to this generation has ended ({@code epoch << 40} if none has). */
    long current() {
        return base | advance();
    }

    private long advance() {
        long l = low.get();
        while (true) {
            long n = l;
            while (ended.get((int) ((n + 1) & (RING - 1))) == n + 1
                    || (!overflow.isEmpty() && overflow.contains(n + 1))) {
                n++;
            }
            if (n == l) {
                return n;
            }
            if (low.compareAndSet(l, n)) {
                if (!overflow.isEmpty()) {
                    overflow.headSet(n, true).clear();
                }
                return n;
            }
            l = low.get();
        }
    }
}
