package dev.stowage.engine.replication;

import java.util.Arrays;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * The coordinator's locks over regions, in stripes (region {@code r} in stripe {@code r % stripes}):
 * writes share them, a region copy or rewrite and a quiesce hold them alone, so that a copy never
 * lands over a newer write and a snapshot never sees a write on one replica and not another.
 *
 * <p>Two ways to share a stripe:
 * <ul>
 *   <li>{@link #share}: the calling thread holds the stripes' read locks until it unlocks them; a
 *       write that waits for its replicas on that thread.
 *   <li>{@link #admit}: the write is counted in flight on its stripes and the calling thread keeps
 *       no lock; whichever thread sees the write complete calls {@link Admission#release}. A write
 *       answered from an event loop, with no thread waiting for it, holds its stripes this way.
 * </ul>
 * {@link #exclusive} takes a stripe's write lock, which stops new writes of either kind, then waits
 * until the stripe's admitted writes have drained. The write lock is reentrant, and its holder may
 * still share its stripe ({@link #share}), as a read that repairs a replica does inside a rewrite.
 */
final class RegionLocks {
    /** How long a thread waiting for admitted writes to drain sleeps between looks. */
    private static final long DRAIN_POLL_NANOS = 20_000;

    private final ReentrantReadWriteLock[] locks;
    private final AtomicIntegerArray admitted;

    RegionLocks(int stripes) {
        locks = new ReentrantReadWriteLock[stripes];
        for (int i = 0; i < stripes; i++) {
            locks[i] = new ReentrantReadWriteLock();
        }
        admitted = new AtomicIntegerArray(stripes);
    }

    /** The stripes of regions {@code first..last}, each once, in increasing order (so that no two takers deadlock). */
    int[] stripesOf(long first, long last) {
        int n = (int) Math.min(locks.length, last - first + 1);
        int[] order = new int[n];
        for (int i = 0; i < n; i++) {
            order[i] = (int) ((first + i) % locks.length);
        }
        Arrays.sort(order);
        return order;
    }

    /** Read-locks {@code stripes} for the calling thread; it unlocks them with {@link #unshare}. */
    void share(int[] stripes) {
        for (int s : stripes) {
            locks[s].readLock().lock();
        }
    }

    void unshare(int[] stripes) {
        for (int s : stripes) {
            locks[s].readLock().unlock();
        }
    }

    /**
     * Counts a write in flight on {@code stripes}; no lock stays with the calling thread. Waits
     * while any of them is held exclusively.
     */
    Admission admit(int[] stripes) {
        for (int s : stripes) {
            ReentrantReadWriteLock.ReadLock l = locks[s].readLock();
            l.lock(); // an exclusive holder drains only what was admitted before it locked
            try {
                admitted.incrementAndGet(s);
            } finally {
                l.unlock();
            }
        }
        return new Admission(stripes);
    }

    /** A write admitted by {@link #admit}; {@link #release} it exactly once, from any thread. */
    final class Admission {
        private final int[] stripes;

        private Admission(int[] stripes) {
            this.stripes = stripes;
        }

        void release() {
            for (int s : stripes) {
                admitted.decrementAndGet(s);
            }
        }
    }

    /** Takes {@code stripe} alone: no write shares or is admitted to it until {@link #unlockExclusive}. */
    void exclusive(int stripe) {
        locks[stripe].writeLock().lock();
        while (admitted.get(stripe) > 0) {
            LockSupport.parkNanos(DRAIN_POLL_NANOS);
        }
    }

    void unlockExclusive(int stripe) {
        locks[stripe].writeLock().unlock();
    }
}
