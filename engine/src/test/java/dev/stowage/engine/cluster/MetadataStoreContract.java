package dev.stowage.engine.cluster;

import dev.stowage.engine.cluster.MetadataStore.Lease;
import dev.stowage.engine.cluster.MetadataStore.Versioned;
import dev.stowage.engine.cluster.MetadataStore.WatchEvent;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The behaviour every {@link MetadataStore} must have. A subclass supplies a fresh, empty store per
 * test and a way to stop keeping a lease alive, as the death of its holder would.
 */
public abstract class MetadataStoreContract {
    /** Generous: etcd's lease expiry and watch delivery run on its own clock. */
    protected static final Duration DEADLINE = Duration.ofSeconds(30);

    protected MetadataStore store;

    /** A store that is empty as far as this test can see (e.g. a fresh key prefix). */
    protected abstract MetadataStore newStore() throws Exception;

    /** Makes the store stop keeping {@code lease} alive without revoking it. */
    protected abstract void stopKeepAlive(Lease lease);

    /** Lets at least {@code duration} pass on the store's clock; real stores wait on a deadline instead. */
    protected void advanceClock(Duration duration) {}

    /** A TTL the store accepts and that expires quickly. */
    protected Duration shortTtl() { return Duration.ofSeconds(2); }

    @BeforeEach
    void openStore() throws Exception {
        store = newStore();
    }

    @AfterEach
    void closeStore() {
        if (store != null) {
            store.close();
        }
    }

    protected static byte[] bytes(String s) { return s.getBytes(StandardCharsets.UTF_8); }

    protected static String text(byte[] b) { return new String(b, StandardCharsets.UTF_8); }

    @Test
    void getOfMissingKeyIsEmpty() {
        assertEquals(Optional.empty(), store.get("missing"));
    }

    @Test
    void putThenGetReturnsValueAndRevisions() {
        long created = store.put("k", bytes("v1"), MetadataStore.ABSENT);
        Versioned first = store.get("k").orElseThrow();
        assertEquals("k", first.key());
        assertArrayEquals(bytes("v1"), first.value());
        assertEquals(created, first.createRevision());
        assertEquals(created, first.modRevision());
        assertEquals(0, first.leaseId());

        long updated = store.put("k", bytes("v2"), created);
        assertTrue(updated > created);
        Versioned second = store.get("k").orElseThrow();
        assertArrayEquals(bytes("v2"), second.value());
        assertEquals(created, second.createRevision());
        assertEquals(updated, second.modRevision());
    }

    @Test
    void valuesAreNotSharedWithTheCaller() {
        byte[] value = bytes("abc");
        store.put("k", value, MetadataStore.ANY);
        value[0] = 'X';
        byte[] read = store.get("k").orElseThrow().value();
        assertArrayEquals(bytes("abc"), read);
        read[0] = 'Y';
        assertArrayEquals(bytes("abc"), store.get("k").orElseThrow().value());
    }

    @Test
    void putAbsentOnExistingKeyFailsWithActualRevision() {
        long rev = store.put("k", bytes("v"), MetadataStore.ABSENT);
        RevisionMismatchException e = assertThrows(RevisionMismatchException.class,
                () -> store.put("k", bytes("w"), MetadataStore.ABSENT));
        assertEquals("k", e.key());
        assertEquals(MetadataStore.ABSENT, e.expectedRevision());
        assertEquals(rev, e.actualRevision());
        assertArrayEquals(bytes("v"), store.get("k").orElseThrow().value());
    }

    @Test
    void putWithStaleRevisionFailsWithExpectedAndActual() {
        long first = store.put("k", bytes("1"), MetadataStore.ABSENT);
        long second = store.put("k", bytes("2"), first);
        RevisionMismatchException e = assertThrows(RevisionMismatchException.class,
                () -> store.put("k", bytes("3"), first));
        assertEquals(first, e.expectedRevision());
        assertEquals(second, e.actualRevision());
        assertArrayEquals(bytes("2"), store.get("k").orElseThrow().value());
    }

    @Test
    void putWithRevisionOnMissingKeyFailsWithActualZero() {
        RevisionMismatchException e = assertThrows(RevisionMismatchException.class,
                () -> store.put("nothing", bytes("x"), 5));
        assertEquals(5, e.expectedRevision());
        assertEquals(0, e.actualRevision());
        assertEquals(Optional.empty(), store.get("nothing"));
    }

    @Test
    void putAnyCreatesAndOverwrites() {
        long first = store.put("k", bytes("1"), MetadataStore.ANY);
        long second = store.put("k", bytes("2"), MetadataStore.ANY);
        assertTrue(second > first);
        assertArrayEquals(bytes("2"), store.get("k").orElseThrow().value());
    }

    @Test
    void deleteWithRightRevisionDeletes() {
        long rev = store.put("k", bytes("v"), MetadataStore.ABSENT);
        assertTrue(store.delete("k", rev));
        assertEquals(Optional.empty(), store.get("k"));
        assertFalse(store.delete("k", MetadataStore.ANY));
    }

    @Test
    void deleteWithWrongRevisionFailsAndKeepsKey() {
        long rev = store.put("k", bytes("v"), MetadataStore.ABSENT);
        RevisionMismatchException e = assertThrows(RevisionMismatchException.class,
                () -> store.delete("k", rev + 100));
        assertEquals(rev + 100, e.expectedRevision());
        assertEquals(rev, e.actualRevision());
        assertTrue(store.get("k").isPresent());
        assertThrows(RevisionMismatchException.class, () -> store.delete("k", MetadataStore.ABSENT));
    }

    @Test
    void deleteAnyOfExistingKeyDeletes() {
        store.put("k", bytes("v"), MetadataStore.ABSENT);
        assertTrue(store.delete("k", MetadataStore.ANY));
        assertEquals(Optional.empty(), store.get("k"));
    }

    @Test
    void revisionsAreMonotonic() {
        long start = Futures.join(store.currentRevisionAsync());
        long a = store.put("a", bytes("1"), MetadataStore.ABSENT);
        long b = store.put("b", bytes("1"), MetadataStore.ABSENT);
        long c = store.put("a", bytes("2"), a);
        long afterPuts = Futures.join(store.currentRevisionAsync());
        store.delete("b", b);
        long afterDelete = Futures.join(store.currentRevisionAsync());
        assertTrue(start < a && a < b && b < c, start + " < " + a + " < " + b + " < " + c);
        assertTrue(c <= afterPuts);
        assertTrue(afterDelete > afterPuts);
    }

    @Test
    void listIsSortedAndPrefixExact() {
        for (String key : List.of("a/b", "a/a", "a/c/d", "a", "ab/x", "a0", "b/a", "a/")) {
            store.put(key, bytes(key), MetadataStore.ABSENT);
        }
        assertEquals(List.of("a/", "a/a", "a/b", "a/c/d"), keys(store.list("a/")));
        assertEquals(List.of("a", "a/", "a/a", "a/b", "a/c/d", "a0", "ab/x"), keys(store.list("a")));
        assertEquals(List.of(), keys(store.list("c")));
        assertEquals(8, store.list("").size());
        Versioned first = store.list("a/a").get(0);
        assertArrayEquals(bytes("a/a"), first.value());
    }

    private static List<String> keys(List<Versioned> entries) {
        List<String> keys = new ArrayList<>();
        entries.forEach(e -> keys.add(e.key()));
        return keys;
    }

    @Test
    void watchFromNowSeesPutsAndDeletesInOrder() throws Exception {
        store.put("w/before", bytes("old"), MetadataStore.ABSENT);
        List<WatchEvent> events = new CopyOnWriteArrayList<>();
        try (AutoCloseable watch = store.watch("w/", 0, events::add)) {
            long r1 = store.put("w/1", bytes("one"), MetadataStore.ABSENT);
            store.put("x/other", bytes("no"), MetadataStore.ABSENT);
            store.put("w", bytes("no"), MetadataStore.ABSENT);
            assertTrue(store.delete("w/1", r1));
            long r3 = store.put("w/2", bytes("two"), MetadataStore.ABSENT);
            Await.until(DEADLINE, "3 watch events", () -> events.size() >= 3);
            assertEquals(3, events.size(), events.toString());
            assertEvent(events.get(0), WatchEvent.Type.PUT, "w/1", "one", r1);
            assertEvent(events.get(1), WatchEvent.Type.DELETE, "w/1", null, events.get(1).modRevision());
            assertTrue(r1 < events.get(1).modRevision() && events.get(1).modRevision() < r3, events.toString());
            assertEvent(events.get(2), WatchEvent.Type.PUT, "w/2", "two", r3);
        }
    }

    @Test
    void watchFromPastRevisionReplaysHistoryThenLiveEvents() throws Exception {
        long r1 = store.put("p/a", bytes("a1"), MetadataStore.ABSENT);
        long r2 = store.put("p/b", bytes("b1"), MetadataStore.ABSENT);
        store.delete("p/a", r1);
        store.put("q/elsewhere", bytes("no"), MetadataStore.ABSENT);
        List<WatchEvent> events = new CopyOnWriteArrayList<>();
        try (AutoCloseable watch = store.watch("p/", r1, events::add)) {
            long r4 = store.put("p/b", bytes("b2"), r2);
            Await.until(DEADLINE, "4 watch events", () -> events.size() >= 4);
            assertEquals(4, events.size(), events.toString());
            assertEvent(events.get(0), WatchEvent.Type.PUT, "p/a", "a1", r1);
            assertEvent(events.get(1), WatchEvent.Type.PUT, "p/b", "b1", r2);
            long r3 = events.get(2).modRevision();
            assertEvent(events.get(2), WatchEvent.Type.DELETE, "p/a", null, r3);
            assertTrue(r2 < r3 && r3 < r4, events.toString());
            assertEvent(events.get(3), WatchEvent.Type.PUT, "p/b", "b2", r4);
        }
    }

    @Test
    void watchFromMiddleRevisionSkipsOlderEvents() throws Exception {
        store.put("m/a", bytes("1"), MetadataStore.ABSENT);
        long r2 = store.put("m/b", bytes("2"), MetadataStore.ABSENT);
        List<WatchEvent> events = new CopyOnWriteArrayList<>();
        try (AutoCloseable watch = store.watch("m/", r2, events::add)) {
            long r3 = store.put("m/c", bytes("3"), MetadataStore.ABSENT);
            Await.until(DEADLINE, "2 watch events", () -> events.size() >= 2);
            assertEquals(List.of(r2, r3), events.stream().map(WatchEvent::modRevision).toList());
        }
    }

    private static void assertEvent(WatchEvent event, WatchEvent.Type type, String key, String value, long revision) {
        assertEquals(type, event.type(), event.toString());
        assertEquals(key, event.key());
        if (value == null) {
            assertNull(event.value());
        } else {
            assertArrayEquals(bytes(value), event.value());
        }
        assertEquals(revision, event.modRevision());
    }

    @Test
    void leaseKeysVanishOnRevoke() {
        Lease lease = Futures.join(store.grantLeaseAsync(Duration.ofSeconds(30)));
        Futures.join(store.putAsync("l/owned", bytes("x"), MetadataStore.ABSENT, lease.id()));
        store.put("l/free", bytes("y"), MetadataStore.ABSENT);
        assertEquals(lease.id(), store.get("l/owned").orElseThrow().leaseId());
        lease.close();
        assertEquals(Optional.empty(), store.get("l/owned"));
        assertTrue(store.get("l/free").isPresent());
        lease.close(); // idempotent
    }

    @Test
    void leaseKeysVanishOnExpiry() throws Exception {
        Lease lease = Futures.join(store.grantLeaseAsync(shortTtl()));
        Futures.join(store.putAsync("e/owned", bytes("x"), MetadataStore.ABSENT, lease.id()));
        List<WatchEvent> events = new CopyOnWriteArrayList<>();
        try (AutoCloseable watch = store.watch("e/", 0, events::add)) {
            stopKeepAlive(lease);
            advanceClock(shortTtl().multipliedBy(2));
            Await.until(DEADLINE, "the leased key to expire", () -> store.get("e/owned").isEmpty());
            Await.until(DEADLINE, "the delete event", () -> !events.isEmpty());
            assertEquals(WatchEvent.Type.DELETE, events.get(0).type());
            assertEquals("e/owned", events.get(0).key());
        }
        lease.close(); // revoking an expired lease is harmless
    }

    @Test
    void putWithUnknownLeaseFails() {
        Lease lease = Futures.join(store.grantLeaseAsync(Duration.ofSeconds(30)));
        lease.close();
        assertThrows(IllegalArgumentException.class,
                () -> Futures.join(store.putAsync("k", bytes("v"), MetadataStore.ABSENT, lease.id())));
        assertEquals(Optional.empty(), store.get("k"));
    }

    @Test
    void invalidArgumentsAreRejected() {
        assertThrows(IllegalArgumentException.class,
                () -> Futures.join(store.putAsync("k", bytes("v"), -2, 0)));
        assertThrows(IllegalArgumentException.class,
                () -> Futures.join(store.putAsync("", bytes("v"), MetadataStore.ANY, 0)));
    }

    @Test
    void concurrentCompareAndSetIncrementsLoseNoUpdate() throws Exception {
        int threads = 4;
        int perThread = 25;
        store.put("counter", bytes("0"), MetadataStore.ABSENT);
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            List<Future<Integer>> results = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                results.add(pool.submit(() -> {
                    int conflicts = 0;
                    for (int i = 0; i < perThread; i++) {
                        while (true) {
                            Versioned current = store.get("counter").orElseThrow();
                            int next = Integer.parseInt(text(current.value())) + 1;
                            try {
                                store.put("counter", bytes(Integer.toString(next)), current.modRevision());
                                break;
                            } catch (RevisionMismatchException e) {
                                conflicts++;
                            }
                        }
                    }
                    return conflicts;
                }));
            }
            for (Future<Integer> result : results) {
                result.get(DEADLINE.toSeconds(), TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
            assertTrue(pool.awaitTermination(DEADLINE.toSeconds(), TimeUnit.SECONDS));
        }
        assertEquals(Integer.toString(threads * perThread), text(store.get("counter").orElseThrow().value()));
    }
}
