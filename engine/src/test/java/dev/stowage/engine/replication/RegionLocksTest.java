package dev.stowage.engine.replication;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(30)
class RegionLocksTest {
    private final RegionLocks locks = new RegionLocks(8);

    @Test
    void anExclusiveHolderWaitsForWritesAdmittedBeforeItUntilAnotherThreadReleasesThem() throws Exception {
        RegionLocks.Admission write = locks.admit(locks.stripesOf(3, 3));
        CompletableFuture<Void> copy = CompletableFuture.runAsync(() -> {
            locks.exclusive(3);
            locks.unlockExclusive(3);
        });
        assertThrowsTimeout(copy);
        locks.exclusive(4); // another stripe is free
        locks.unlockExclusive(4);
        CompletableFuture.runAsync(write::release).get(5, TimeUnit.SECONDS); // released by another thread
        copy.get(5, TimeUnit.SECONDS);
    }

    @Test
    void noWriteIsAdmittedOrSharedWhileAStripeIsHeldAlone() throws Exception {
        locks.exclusive(2);
        CompletableFuture<RegionLocks.Admission> admitted = CompletableFuture.supplyAsync(() -> locks.admit(new int[] {2}));
        CompletableFuture<Void> shared = CompletableFuture.runAsync(() -> {
            locks.share(new int[] {1, 2});
            locks.unshare(new int[] {1, 2});
        });
        assertThrowsTimeout(admitted);
        assertFalse(shared.isDone());
        locks.share(new int[] {2}); // the holder itself may share it: a repair inside a rewrite does
        locks.unshare(new int[] {2});
        locks.exclusive(2); // and take it again
        locks.unlockExclusive(2);
        locks.unlockExclusive(2);
        admitted.get(5, TimeUnit.SECONDS).release();
        shared.get(5, TimeUnit.SECONDS);
    }

    @Test
    void stripesOfARangeComeOnceEachInIncreasingOrder() {
        assertArrayEquals(new int[] {0, 1, 6, 7}, locks.stripesOf(6, 9));
        assertArrayEquals(new int[] {0, 1, 2, 3, 4, 5, 6, 7}, locks.stripesOf(5, 100));
        assertArrayEquals(new int[] {3}, locks.stripesOf(11, 11));
    }

    private static void assertThrowsTimeout(CompletableFuture<?> f) throws Exception {
        try {
            f.get(300, TimeUnit.MILLISECONDS);
        } catch (TimeoutException expected) {
            return;
        }
        assertTrue(false, "should still be waiting");
    }
}
