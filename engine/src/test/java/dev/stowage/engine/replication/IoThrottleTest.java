package dev.stowage.engine.replication;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/** The throttle against a fake clock: sleeping advances time, so rates can be computed exactly. */
class IoThrottleTest {
    private final AtomicLong now = new AtomicLong(1_000_000_000L);
    private final AtomicLong slept = new AtomicLong();

    private IoThrottle throttle(IoLimits limits) {
        return new IoThrottle(limits, now::get, nanos -> {
            slept.addAndGet(nanos);
            now.addAndGet(nanos);
        });
    }

    @Test
    void unlimitedNeverWaits() throws Exception {
        IoThrottle t = throttle(IoLimits.UNLIMITED);
        for (int i = 0; i < 100_000; i++) {
            t.acquire(1 << 20);
        }
        assertEquals(0, slept.get());
    }

    @Test
    void iopsLimitSpacesOperationsAfterTheFirstSecondsBurst() throws Exception {
        IoThrottle t = throttle(new IoLimits(100, 0));
        long start = now.get();
        for (int i = 0; i < 1100; i++) {
            t.acquire(4096);
        }
        double seconds = (now.get() - start) / 1e9;
        // 100 from the full bucket, then 1000 more at 100/s.
        assertTrue(seconds >= 9.9 && seconds <= 10.1, "took " + seconds + " s");
    }

    @Test
    void bandwidthLimitCountsBytes() throws Exception {
        IoThrottle t = throttle(new IoLimits(0, 1 << 20));
        long start = now.get();
        for (int i = 0; i < 64; i++) {
            t.acquire(256 << 10);
        }
        double seconds = (now.get() - start) / 1e9;
        // 16 MiB at 1 MiB/s after a 1 MiB burst: about 15 s.
        assertTrue(seconds >= 14.9 && seconds <= 15.1, "took " + seconds + " s");
    }

    @Test
    void limitsChangeOnline() throws Exception {
        IoThrottle t = throttle(new IoLimits(10, 0));
        for (int i = 0; i < 10; i++) {
            t.acquire(4096);
        }
        t.setLimits(IoLimits.UNLIMITED);
        long before = slept.get();
        for (int i = 0; i < 10_000; i++) {
            t.acquire(4096);
        }
        assertEquals(before, slept.get());
    }

    @Test
    void negativeLimitsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> new IoLimits(-1, 0));
    }
}
