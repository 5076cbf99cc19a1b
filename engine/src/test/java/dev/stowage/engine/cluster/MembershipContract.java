package dev.stowage.engine.cluster;

import dev.stowage.engine.cluster.MetadataStore.Lease;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * How {@link Membership} must behave on every {@link MetadataStore}. A subclass supplies the store
 * (and, for a server store, a second client of the same data), a way to stop keeping a lease alive,
 * and the store's clock.
 */
public abstract class MembershipContract {
    protected static final Duration DEADLINE = Duration.ofSeconds(30);
    private static final Duration LONG_TTL = Duration.ofSeconds(30);

    protected MetadataStore store;
    private MetadataStore peerStore;
    private final List<Membership> memberships = new ArrayList<>();

    /** A store that is empty as far as this test can see. */
    protected abstract MetadataStore newStore() throws Exception;

    /**
     * Another client of the same data as {@code store}, as another node would hold; closed after the
     * test if it is not {@code store} itself. Defaults to {@code store}.
     */
    protected MetadataStore peerStore(MetadataStore store) throws Exception { return store; }

    /** Makes the store stop keeping {@code lease} alive without revoking it. */
    protected abstract void stopKeepAlive(Lease lease);

    /** Lets at least {@code duration} pass on the store's clock; real stores wait on a deadline instead. */
    protected void advanceClock(Duration duration) {}

    protected Duration shortTtl() { return Duration.ofSeconds(2); }

    @BeforeEach
    void openStores() throws Exception {
        store = newStore();
        peerStore = peerStore(store);
    }

    @AfterEach
    void closeAll() {
        for (Membership membership : memberships) {
            membership.close();
        }
        if (peerStore != null && peerStore != store) {
            peerStore.close();
        }
        if (store != null) {
            store.close();
        }
    }

    private static NodeDescriptor node(String id, String zone) {
        return NodeDescriptor.storage(id, "127.0.0.1:" + (7000 + Math.abs(id.hashCode() % 1000)),
                Map.of(NodeDescriptor.ZONE, zone), 100L << 30, 50L << 30);
    }

    private Membership join(MetadataStore on, NodeDescriptor self, Duration ttl) {
        Membership membership = Membership.join(on, self, ttl);
        memberships.add(membership);
        return membership;
    }

    /** Records listener calls as "join n1", "leave n1", "update n1"; flags a join of a live or leave of an absent node. */
    private static final class Recorder implements Membership.Listener {
        final List<String> calls = new CopyOnWriteArrayList<>();
        final List<String> violations = new CopyOnWriteArrayList<>();
        final Set<String> live = ConcurrentHashMap.newKeySet();

        @Override
        public void onJoin(NodeDescriptor node) {
            calls.add("join " + node.id());
            if (!live.add(node.id())) {
                violations.add("second join of " + node.id());
            }
        }

        @Override
        public void onLeave(NodeDescriptor node) {
            calls.add("leave " + node.id());
            if (!live.remove(node.id())) {
                violations.add("leave of absent " + node.id());
            }
        }

        @Override
        public void onUpdate(NodeDescriptor previous, NodeDescriptor current) {
            calls.add("update " + current.id() + " " + previous.freeBytes() + "->" + current.freeBytes());
        }
    }

    private static List<String> ids(List<NodeDescriptor> nodes) {
        return nodes.stream().map(NodeDescriptor::id).toList();
    }

    @Test
    void joinRegistersTheNodeUnderItsLease() {
        NodeDescriptor self = node("n1", "a");
        Membership m1 = join(store, self, LONG_TTL);
        MetadataStore.Versioned record = store.get(Membership.PREFIX + "n1").orElseThrow();
        assertEquals(self, NodeProtos.decode(record.value()));
        assertEquals(m1.lease().id(), record.leaseId());
        assertEquals(List.of(self), m1.liveNodes());
        assertTrue(m1.isAlive("n1"));
        assertEquals(self, m1.self());
    }

    @Test
    void joinAndLeaveAreSeenByAnotherMember() throws Exception {
        Membership m1 = join(store, node("n1", "a"), LONG_TTL);
        Recorder recorder = new Recorder();
        try (AutoCloseable registration = m1.addListener(recorder)) {
            Await.until(DEADLINE, "the replayed join of n1", () -> recorder.calls.equals(List.of("join n1")));
            Membership m2 = join(peerStore, node("n2", "b"), LONG_TTL);
            assertEquals(Optional.of(node("n2", "b")), m1.awaitNode("n2", DEADLINE));
            assertEquals(List.of("n1", "n2"), ids(m2.liveNodes()), "the newcomer lists the members already there");
            Await.until(DEADLINE, "the join of n2", () -> recorder.calls.equals(List.of("join n1", "join n2")));

            m2.close();
            assertTrue(store.get(Membership.PREFIX + "n2").isEmpty(), "close deletes the record");
            Await.until(DEADLINE, "n2 to leave m1's view", () -> !m1.isAlive("n2"));
            Await.until(DEADLINE, "the leave of n2",
                    () -> recorder.calls.equals(List.of("join n1", "join n2", "leave n2")));
            assertEquals(List.of("n1"), ids(m1.liveNodes()));
            m2.close(); // idempotent
        }
        assertEquals(List.of(), recorder.violations);
    }

    @Test
    void aNodeWhoseLeaseExpiredLeavesAndJoinsAgain() {
        Membership m1 = join(store, node("n1", "a"), LONG_TTL);
        Membership m2 = join(peerStore, node("n2", "b"), shortTtl());
        Recorder recorder = new Recorder();
        m1.addListener(recorder);
        assertTrue(m1.awaitNode("n2", DEADLINE).isPresent());
        MetadataStore.Lease expired = m2.lease();

        stopKeepAlive(expired); // as a partition from the store longer than the TTL would
        advanceClock(shortTtl().multipliedBy(2));

        Await.until(DEADLINE, "the leave of n2", () -> recorder.calls.contains("leave n2"));
        Await.until(DEADLINE, "n2 to join again", () -> recorder.calls.equals(
                List.of("join n1", "join n2", "leave n2", "join n2")));
        assertTrue(m1.isAlive("n2"));
        // The record under the new lease is written (and seen by n1) just before n2 takes the lease
        // as its own, under its registration lock: wait for that step, as its updates do.
        Await.until(DEADLINE, "n2 to hold its new lease", () -> m2.lease().id() != expired.id());
        assertEquals(m2.lease().id(), store.get(Membership.PREFIX + "n2").orElseThrow().leaseId());
        NodeDescriptor updated = m2.updateCapacity(1L << 30);
        assertEquals(1L << 30, updated.freeBytes(), "the new registration takes updates");
        assertTrue(m1.isAlive("n1"), "the other member is unaffected");
        assertEquals(List.of(), recorder.violations);
    }

    @Test
    void aClosedMembershipDoesNotJoinAgain() {
        Membership m1 = join(store, node("n1", "a"), LONG_TTL);
        Membership m2 = join(peerStore, node("n2", "b"), shortTtl());
        assertTrue(m1.awaitNode("n2", DEADLINE).isPresent());
        m2.close();
        Await.until(DEADLINE, "n2 to leave", () -> !m1.isAlive("n2"));
        advanceClock(shortTtl().multipliedBy(2));
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> m2.updateCapacity(1L << 30));
        assertTrue(e.getMessage().contains("closed"), e.getMessage());
        assertTrue(store.get(Membership.PREFIX + "n2").isEmpty(), "no registration after close");
    }

    @Test
    void aLiveIdCannotJoinTwice() {
        Membership m1 = join(store, node("n1", "a"), LONG_TTL);
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> join(peerStore, node("n1", "b"), LONG_TTL));
        assertTrue(e.getMessage().startsWith("node id n1 is already registered by a live member"), e.getMessage());
        MetadataStore.Versioned record = store.get(Membership.PREFIX + "n1").orElseThrow();
        assertEquals(m1.lease().id(), record.leaseId(), "the first registration stands");
        assertEquals("a", NodeProtos.decode(record.value()).zone());
    }

    @Test
    void theIdIsFreeAgainAfterItsHolderLeft() {
        Membership first = join(store, node("n1", "a"), LONG_TTL);
        first.close();
        Membership second = join(peerStore, node("n1", "b"), LONG_TTL);
        assertEquals("b", second.node("n1").orElseThrow().zone());
    }

    @Test
    void anUnleasedLeftoverRecordIsReplaced() {
        store.put(Membership.PREFIX + "n1", NodeProtos.encode(node("n1", "old")), MetadataStore.ABSENT);
        Membership m1 = join(store, node("n1", "a"), LONG_TTL);
        assertEquals(m1.lease().id(), store.get(Membership.PREFIX + "n1").orElseThrow().leaseId());
        assertEquals("a", m1.node("n1").orElseThrow().zone());
    }

    @Test
    void capacityUpdatesReachOtherMembers() {
        Membership m1 = join(store, node("n1", "a"), LONG_TTL);
        Membership m2 = join(peerStore, node("n2", "b"), LONG_TTL);
        Recorder recorder = new Recorder();
        m1.addListener(recorder);
        NodeDescriptor updated = m2.updateCapacity(7L << 30);
        assertEquals(7L << 30, updated.freeBytes());
        assertEquals(updated, m2.self());
        m2.updateCapacity(6L << 30);
        Await.until(DEADLINE, "m1 to see n2's new free space",
                () -> m1.node("n2").map(NodeDescriptor::freeBytes).orElse(0L) == 6L << 30);
        Await.until(DEADLINE, "both updates", () -> recorder.calls.stream().filter(c -> c.startsWith("update n2"))
                .count() == 2);
        assertTrue(recorder.calls.contains("update n2 " + (50L << 30) + "->" + (7L << 30)), recorder.calls.toString());
        m2.updateApiAddress("127.0.0.3:7420");
        Await.until(DEADLINE, "m1 to see n2's management API address",
                () -> m1.node("n2").map(NodeDescriptor::apiAddress).orElse("").equals("127.0.0.3:7420"));
        assertEquals(6L << 30, m1.node("n2").orElseThrow().freeBytes(), "the address update keeps the capacity");
        assertThrows(IllegalArgumentException.class, () -> m2.updateCapacity(-1));
        assertThrows(IllegalArgumentException.class, () -> m2.updateCapacity(101L << 30));
    }

    @Test
    void noEventIsLostBetweenListAndWatch() throws Exception {
        int nodes = 40;
        ExecutorService writer = Executors.newSingleThreadExecutor();
        Recorder recorder = new Recorder();
        try {
            // Records written straight to the store while the observer joins: some before its list,
            // some between its list and its watch, some after.
            Future<?> churn = writer.submit(() -> {
                for (int i = 0; i < nodes; i++) {
                    String key = Membership.PREFIX + "x" + i;
                    long revision = store.put(key, NodeProtos.encode(node("x" + i, "z" + i % 3)), MetadataStore.ABSENT);
                    if (i % 2 == 0) {
                        store.delete(key, revision);
                    }
                }
            });
            Await.until(DEADLINE, "the churn to start", () -> !store.list(Membership.PREFIX).isEmpty());
            Membership observer = join(peerStore, node("obs", "a"), LONG_TTL);
            observer.addListener(recorder);
            churn.get(DEADLINE.toSeconds(), TimeUnit.SECONDS);
            List<String> expected = new ArrayList<>();
            for (MetadataStore.Versioned record : store.list(Membership.PREFIX)) {
                expected.add(record.key().substring(Membership.PREFIX.length()));
            }
            assertEquals(nodes / 2 + 1, expected.size());
            Await.until(DEADLINE, "the view to match the store", () -> ids(observer.liveNodes()).equals(expected));
            Await.until(DEADLINE, "the listener to match the store",
                    () -> new HashSet<>(expected).equals(new HashSet<>(recorder.live)));
            for (int i = 0; i < nodes; i += 2) {
                assertFalse(observer.isAlive("x" + i), "x" + i + " was deleted");
            }
        } finally {
            writer.shutdownNow();
        }
        assertEquals(List.of(), recorder.violations);
    }

    @Test
    void changesInsideTheListWatchWindowAreNeitherLostNorRepeated() {
        String x = Membership.PREFIX + "x";
        store.put(x + "1", NodeProtos.encode(node("x1", "a")), MetadataStore.ABSENT);
        WindowStore window = new WindowStore(peerStore);
        window.beforeList = () -> { // after the revision was read, before the list
            long r2 = store.put(x + "2", NodeProtos.encode(node("x2", "a")), MetadataStore.ABSENT);
            store.delete(x + "2", r2); // replayed after the list, which shows x2 again: must not look like a leave
            store.put(x + "2", NodeProtos.encode(node("x2", "a")), MetadataStore.ABSENT);
            long r3 = store.put(x + "3", NodeProtos.encode(node("x3", "a")), MetadataStore.ABSENT);
            store.delete(x + "3", r3);
        };
        window.beforeWatch = () -> { // after the list, before the watch
            store.delete(x + "1", MetadataStore.ANY);
            store.put(x + "2", NodeProtos.encode(node("x2", "b")), MetadataStore.ANY);
            store.put(x + "4", NodeProtos.encode(node("x4", "a")), MetadataStore.ABSENT);
        };
        Membership observer = join(window, node("obs", "a"), LONG_TTL);
        Recorder recorder = new Recorder();
        observer.addListener(recorder);
        Await.until(DEADLINE, "the view after the window", () -> ids(observer.liveNodes())
                .equals(List.of("obs", "x2", "x4")) && observer.node("x2").orElseThrow().zone().equals("b"));
        Await.until(DEADLINE, "the listener after the window",
                () -> recorder.live.equals(Set.of("obs", "x2", "x4")));
        assertFalse(recorder.calls.contains("leave x2"), recorder.calls.toString());
        assertEquals(List.of(), recorder.violations);
    }

    @Test
    void invalidRecordsUnderThePrefixAreIgnored() {
        store.put(Membership.PREFIX + "junk", "not a record".getBytes(StandardCharsets.UTF_8), MetadataStore.ABSENT);
        store.put(Membership.PREFIX + "liar", NodeProtos.encode(node("other", "a")), MetadataStore.ABSENT);
        Membership m1 = join(store, node("n1", "a"), LONG_TTL);
        store.put(Membership.PREFIX + "junk2", new byte[] {(byte) 0xff}, MetadataStore.ABSENT);
        Membership m2 = join(peerStore, node("n2", "a"), LONG_TTL);
        assertTrue(m1.awaitNode("n2", DEADLINE).isPresent());
        assertEquals(List.of("n1", "n2"), ids(m1.liveNodes()));
        assertEquals(List.of("n1", "n2"), ids(m2.liveNodes()));
    }

    @Test
    void awaitNodeGivesUpAtItsDeadline() {
        Membership m1 = join(store, node("n1", "a"), LONG_TTL);
        assertEquals(Optional.empty(), m1.awaitNode("nobody", Duration.ofMillis(50)));
        assertEquals(Optional.of(node("n1", "a")), m1.awaitNode("n1", Duration.ZERO));
    }

    @Test
    void absenceIsTimedWithTheInjectedClock() {
        MutableClock clock = new MutableClock(Instant.parse("2030-01-01T00:00:00Z"));
        Membership m1 = Membership.join(store, node("n1", "a"), LONG_TTL, clock);
        memberships.add(m1);
        Membership m2 = join(peerStore, node("n2", "b"), LONG_TTL);
        assertTrue(m1.awaitNode("n2", DEADLINE).isPresent());
        assertEquals(Duration.ZERO, m1.absentFor("n2"));
        clock.advance(Duration.ofMinutes(3));
        m2.close();
        Await.until(DEADLINE, "n2 to leave", () -> !m1.isAlive("n2"));
        clock.advance(Duration.ofMinutes(5));
        assertEquals(Duration.ofMinutes(5), m1.absentFor("n2"));
        assertEquals(Duration.ofMinutes(8), m1.absentFor("never-seen"), "unknown nodes: since the view started");
        assertEquals(Duration.ZERO, m1.absentFor("n1"));
    }

    @Test
    void joinRejectsBadArguments() {
        assertThrows(IllegalArgumentException.class, () -> Membership.join(store, node("n1", "a"), Duration.ZERO));
        assertThrows(IllegalArgumentException.class, () -> Membership.join(store, null, LONG_TTL));
        assertTrue(store.list(Membership.PREFIX).isEmpty());
    }

    /** Forwards to a store, running a hook right before the membership lists and right before it watches. */
    private static final class WindowStore implements MetadataStore {
        private final MetadataStore delegate;
        volatile Runnable beforeList = () -> {};
        volatile Runnable beforeWatch = () -> {};

        WindowStore(MetadataStore delegate) {
            this.delegate = delegate;
        }

        @Override
        public java.util.concurrent.CompletableFuture<Optional<Versioned>> getAsync(String key) {
            return delegate.getAsync(key);
        }

        @Override
        public java.util.concurrent.CompletableFuture<List<Versioned>> listAsync(String prefix) {
            beforeList.run();
            return delegate.listAsync(prefix);
        }

        @Override
        public java.util.concurrent.CompletableFuture<Long> putAsync(String key, byte[] value, long expected,
                                                                     long leaseId) {
            return delegate.putAsync(key, value, expected, leaseId);
        }

        @Override
        public java.util.concurrent.CompletableFuture<Boolean> deleteAsync(String key, long expected) {
            return delegate.deleteAsync(key, expected);
        }

        @Override
        public AutoCloseable watch(String prefix, long fromRevision, WatchListener listener) {
            beforeWatch.run();
            return delegate.watch(prefix, fromRevision, listener);
        }

        @Override
        public java.util.concurrent.CompletableFuture<Lease> grantLeaseAsync(Duration ttl) {
            return delegate.grantLeaseAsync(ttl);
        }

        @Override
        public java.util.concurrent.CompletableFuture<Long> currentRevisionAsync() {
            return delegate.currentRevisionAsync();
        }

        @Override
        public void close() {}
    }

    /** A clock only the test moves. */
    static final class MutableClock extends Clock {
        private final AtomicLong millis;

        MutableClock(Instant start) {
            millis = new AtomicLong(start.toEpochMilli());
        }

        void advance(Duration duration) {
            millis.addAndGet(duration.toMillis());
        }

        @Override
        public ZoneOffset getZone() { return ZoneOffset.UTC; }

        @Override
        public Clock withZone(java.time.ZoneId zone) { throw new UnsupportedOperationException(); }

        @Override
        public Instant instant() { return Instant.ofEpochMilli(millis.get()); }
    }
}
