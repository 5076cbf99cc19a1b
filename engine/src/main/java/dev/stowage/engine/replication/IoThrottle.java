package dev.stowage.engine.replication;

import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

/**
 * Token buckets for a volume's {@link IoLimits}: one for operations, one for bytes, each holding at
 * most one second's worth of tokens (so a burst after idleness is bounded by the limit itself).
 * {@link #acquire} blocks the calling I/O thread until the operation fits; it is meant for the
 * frontend's dedicated I/O threads, never for an event loop.
 *
 * <p>Threading: thread-safe; waiting callers are served in no particular order. The clock is
 * injected so tests can drive time.
 */
public final class IoThrottle {
    /** Sleeps for the given number of nanoseconds; injected so tests need not wait. */
    @FunctionalInterface
    public interface Sleeper {
        void sleepNanos(long nanos) throws InterruptedException;
    }

    private final LongSupplier nanoClock;
    private final Sleeper sleeper;
    private volatile IoLimits limits;
    private double opTokens;
    private double byteTokens;
    private long lastRefill;

    public IoThrottle(IoLimits limits, LongSupplier nanoClock, Sleeper sleeper) {
        this.nanoClock = nanoClock;
        this.sleeper = sleeper;
        this.lastRefill = nanoClock.getAsLong();
        setLimits(limits);
    }

    public static IoThrottle system(IoLimits limits) {
        return new IoThrottle(limits, System::nanoTime, nanos -> TimeUnit.NANOSECONDS.sleep(nanos));
    }

    public IoLimits limits() {
        return limits;
    }

    /** Changes the limits; buckets start full at the new rates. */
    public synchronized void setLimits(IoLimits newLimits) {
        this.limits = newLimits;
        this.opTokens = newLimits.maxIops();
        this.byteTokens = newLimits.maxBytesPerSecond();
        this.lastRefill = nanoClock.getAsLong();
    }

    /** Waits until one operation of {@code bytes} bytes fits both limits, then takes its tokens. */
    public void acquire(long bytes) throws InterruptedException {
        if (limits.unlimited()) {
            return;
        }
        while (true) {
            long waitNanos;
            synchronized (this) {
                IoLimits l = limits;
                refill(l);
                // An operation larger than a whole second's bytes may go once the bucket is full.
                double neededBytes = l.maxBytesPerSecond() == 0 ? 0 : Math.min(bytes, l.maxBytesPerSecond());
                boolean opsOk = l.maxIops() == 0 || opTokens >= 1;
                boolean bytesOk = l.maxBytesPerSecond() == 0 || byteTokens >= neededBytes;
                if (opsOk && bytesOk) {
                    if (l.maxIops() > 0) {
                        opTokens -= 1;
                    }
                    if (l.maxBytesPerSecond() > 0) {
                        byteTokens -= neededBytes;
                    }
                    return;
                }
                long opWait = opsOk ? 0 : (long) Math.ceil((1 - opTokens) * 1e9 / l.maxIops());
                long byteWait = bytesOk ? 0 : (long) Math.ceil((neededBytes - byteTokens) * 1e9 / l.maxBytesPerSecond());
                waitNanos = Math.max(Math.max(opWait, byteWait), 1000);
            }
            sleeper.sleepNanos(waitNanos);
        }
    }

    private void refill(IoLimits l) {
        long now = nanoClock.getAsLong();
        double seconds = (now - lastRefill) / 1e9;
        lastRefill = now;
        if (l.maxIops() > 0) {
            opTokens = Math.min(l.maxIops(), opTokens + seconds * l.maxIops());
        }
        if (l.maxBytesPerSecond() > 0) {
            byteTokens = Math.min(l.maxBytesPerSecond(), byteTokens + seconds * l.maxBytesPerSecond());
        }
    }
}
