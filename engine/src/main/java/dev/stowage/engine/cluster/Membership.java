package dev.stowage.engine.cluster;

import dev.stowage.engine.cluster.MetadataStore.Lease;
import dev.stowage.engine.cluster.MetadataStore.Versioned;
import dev.stowage.engine.cluster.MetadataStore.WatchEvent;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;

/**
 * This node's membership of the cluster and its view of the other members.
 *
 * <p>{@link #join} registers the node's {@link NodeDescriptor} under {@code /stowage/nodes/<id>}
 * bound to a lease that the store keeps alive; the key disappears when the lease expires (the node
 * died or lost the store for longer than the TTL) or when {@link #close()} revokes it. A node is
 * <em>live</em> exactly while its key exists: there is no other liveness signal. A node that sees
 * its own key expire while it runs registers again under a new lease ({@link #rejoin}); to the
 * others that is a leave followed by a join, as if it had restarted.
 *
 * <p>The view: {@code join} reads the store's revision, lists {@code /stowage/nodes/}, and watches
 * the prefix from that revision onwards, so no change is missed between the list and the watch.
 * Events the list already reflects are recognised by each key's revision and skipped. Changes that
 * happened while the list was being read may still reach listeners (e.g. the join and leave of a
 * node that came and went meanwhile): listeners see real history, never a change twice.
 *
 * <p>Threading: thread-safe. Listeners run on one membership-owned thread, one call at a time, in
 * revision order; a listener must not block for long. {@link #liveNodes()}, {@link #isAlive} and
 * friends read the view the watch maintains, which lags the store by the watch's delivery delay.
 *
 * <p>Time: the injected {@link Clock} only dates departures ({@link #absentFor}); lease expiry runs
 * on the store's clock.
 *
 * <p>Errors: {@link IllegalStateException} when the id is already registered by a live lease, or
 * when this node's registration is gone (its lease expired); store failures pass through as the
 * store reports them (e.g. {@code StowageException} UNAVAILABLE from etcd).
 */
public final class Membership implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(Membership.class);
    /** The key prefix of node records. */
    public static final String PREFIX = "/stowage/nodes/";
    private static final int ATTEMPTS = 5;

    /** Changes of membership, as seen by this node's watch. Every method defaults to doing nothing. */
    public interface Listener {
        /** {@code node} registered (or was live when the listener was added). */
        default void onJoin(NodeDescriptor node) {}

        /** {@code node} (as last seen) is gone: its lease expired or it left. */
        default void onLeave(NodeDescriptor node) {}

        /** A live node changed its record, e.g. its free capacity. */
        default void onUpdate(NodeDescriptor previous, NodeDescriptor current) {}
    }

    private final MetadataStore store;
    private final Duration leaseTtl;
    /** The lease of the current registration; replaced when the node joins again. */
    private volatile Lease lease;
    private final Clock clock;
    private final String key;
    private final ExecutorService events;
    private final Instant startedAt;

    private final ReentrantLock lock = new ReentrantLock();
    private final Condition changed = lock.newCondition();
    // Guarded by lock.
    private final Map<String, Member> view = new TreeMap<>();
    private final Map<String, Instant> departedAt = new HashMap<>();
    private final List<Registration> listeners = new CopyOnWriteArrayList<>();
    // Guarded by registrationLock.
    private final Object registrationLock = new Object();
    private NodeDescriptor self;
    private long selfRevision;
    private volatile AutoCloseable watch;
    private final java.util.concurrent.atomic.AtomicBoolean rejoining = new java.util.concurrent.atomic.AtomicBoolean();
    private volatile boolean closed;

    private record Member(NodeDescriptor node, long modRevision) {}

    private Membership(MetadataStore store, Lease lease, Duration leaseTtl, Clock clock, NodeDescriptor self,
                       long selfRevision) {
        this.store = store;
        this.lease = lease;
        this.leaseTtl = leaseTtl;
        this.clock = clock;
        this.key = PREFIX + self.id();
        this.self = self;
        this.selfRevision = selfRevision;
        this.startedAt = clock.instant();
        this.events = Executors.newSingleThreadExecutor(runnable -> {
            Thread thread = new Thread(runnable, "stowage-membership-" + self.id());
            thread.setDaemon(true);
            return thread;
        });
    }

    /** {@link #join(MetadataStore, NodeDescriptor, Duration, Clock)} with the system clock. */
    public static Membership join(MetadataStore store, NodeDescriptor self, Duration leaseTtl) {
        return join(store, self, leaseTtl, Clock.systemUTC());
    }

    /**
     * Registers {@code self} under a new lease of {@code leaseTtl} and starts watching the members.
     * Returns once the registration is durable and the view holds every live node (this one included).
     *
     * @throws IllegalStateException when a live lease already holds {@code /stowage/nodes/<id>}: another
     *         process runs with this id, or this node's previous run died less than a TTL ago
     */
    public static Membership join(MetadataStore store, NodeDescriptor self, Duration leaseTtl, Clock clock) {
        if (store == null || self == null || clock == null) {
            throw new IllegalArgumentException("store, self and clock: required");
        }
        if (leaseTtl == null || leaseTtl.isNegative() || leaseTtl.isZero()) {
            throw new IllegalArgumentException("leaseTtl: must be positive, was " + leaseTtl);
        }
        Lease lease = Futures.join(store.grantLeaseAsync(leaseTtl));
        Membership membership = null;
        try {
            long revision = register(store, self, lease, leaseTtl);
            membership = new Membership(store, lease, leaseTtl, clock, self, revision);
            membership.startView();
            log.info("node {} joined the cluster at {} (labels {}, lease {}, ttl {})", self.id(), self.address(),
                    self.labels(), Long.toHexString(lease.id()), leaseTtl);
            return membership;
        } catch (RuntimeException e) {
            if (membership != null) {
                membership.close();
            } else {
                closeQuietly(lease);
            }
            throw e;
        }
    }

    /** Puts the node's record under {@code lease}; returns its revision. */
    private static long register(MetadataStore store, NodeDescriptor self, Lease lease, Duration ttl) {
        String key = PREFIX + self.id();
        byte[] value = NodeProtos.encode(self);
        long expected = MetadataStore.ABSENT;
        for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
            try {
                return Futures.join(store.putAsync(key, value, expected, lease.id()));
            } catch (RevisionMismatchException e) {
                Optional<Versioned> existing = store.get(key);
                if (existing.isEmpty()) {
                    expected = MetadataStore.ABSENT; // it expired meanwhile
                } else if (existing.get().leaseId() != 0) {
                    throw new IllegalStateException("node id " + self.id() + " is already registered by a live member"
                            + " (" + describe(existing.get()) + ", lease " + Long.toHexString(existing.get().leaseId())
                            + "); refusing to join twice. If that node died, its registration expires within its"
                            + " lease TTL (this node asked for " + ttl + ")");
                } else {
                    log.warn("replacing unleased leftover record {} for node {}", key, self.id());
                    expected = existing.get().modRevision();
                }
            }
        }
        throw new IllegalStateException("node id " + self.id() + ": registration kept racing with other writers of "
                + key + "; giving up after " + ATTEMPTS + " attempts");
    }

    private static String describe(Versioned record) {
        try {
            return "address " + NodeProtos.decode(record.value()).address();
        } catch (IllegalArgumentException e) {
            return "unreadable record";
        }
    }

    /**
     * Lists the members and watches from the revision read before the list. Called by {@link #join}
     * and again whenever the watch ends by itself ({@link ViewWatch#onEnded}); the list replaces the
     * view, and listeners hear of every difference as the joins, leaves and updates they missed.
     */
    private void startView() {
        for (int attempt = 0; ; attempt++) {
            long before = Futures.join(store.currentRevisionAsync());
            List<Versioned> listed = store.list(PREFIX);
            lock.lock();
            try {
                Map<String, Member> fresh = new TreeMap<>();
                for (Versioned record : listed) {
                    NodeDescriptor node = decode(record.key(), record.value(), record.modRevision());
                    if (node != null) {
                        fresh.put(node.id(), new Member(node, record.modRevision()));
                    }
                }
                for (Member gone : List.copyOf(view.values())) {
                    if (!fresh.containsKey(gone.node().id())) {
                        applyLeave(gone.node().id(), gone, before);
                    }
                }
                fresh.forEach((id, member) -> applyPut(id, member, view.get(id)));
                changed.signalAll();
            } finally {
                lock.unlock();
            }
            try {
                AutoCloseable started = store.watch(PREFIX, before + 1, new ViewWatch());
                watch = started;
                if (closed) {
                    closeWatch(started);
                }
                return;
            } catch (CompactedRevisionException e) {
                if (attempt + 1 >= ATTEMPTS) {
                    throw e;
                }
                log.debug("membership watch from revision {} was compacted; listing again", before + 1);
            }
        }
    }

    /** The membership's watch on the node records. */
    private final class ViewWatch implements MetadataStore.WatchListener {
        @Override
        public void onEvent(WatchEvent event) {
            Membership.this.onEvent(event);
        }

        @Override
        public void onEnded(Throwable cause) {
            if (!closed) {
                log.warn("node {}: the membership watch ended ({}); listing the members again", self().id(),
                        cause.toString());
                restartView();
            }
        }
    }

    /**
     * Lists and watches again on a thread of its own, retrying with a growing pause while the store
     * cannot be reached, until it succeeds or the membership closes. Meanwhile the view is frozen
     * as last seen.
     */
    private void restartView() {
        inBackground("relist", "listing the members again", null, () -> {
            startView();
            log.info("node {}: membership view listed again; {} live nodes", self().id(), liveNodes().size());
        }, () -> {});
    }

    /**
     * Runs {@code attempt} on a daemon thread of its own until it returns or the membership closes;
     * a failure is retried after a pause growing from 200 ms to 5 s, except one of type
     * {@code refusal} (when not null), which is logged as final. Runs {@code after} when the thread ends.
     */
    private void inBackground(String name, String what, Class<? extends RuntimeException> refusal,
                              Runnable attempt, Runnable after) {
        Thread thread = new Thread(() -> {
            long pauseMillis = 200;
            try {
                while (!closed) {
                    try {
                        attempt.run();
                        return;
                    } catch (RuntimeException e) {
                        if (refusal != null && refusal.isInstance(e)) {
                            log.error("node {}: {} is refused: {}", self().id(), what, e.getMessage());
                            return;
                        }
                        log.warn("node {}: {} failed ({}); retrying in {} ms", self().id(), what, e.toString(),
                                pauseMillis);
                    }
                    Thread.sleep(pauseMillis);
                    pauseMillis = Math.min(pauseMillis * 2, 5_000);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } finally {
                after.run();
            }
        }, "stowage-membership-" + name + "-" + self().id());
        thread.setDaemon(true);
        thread.start();
    }

    /** Store watch thread: applies one change to the view and tells the listeners. */
    private void onEvent(WatchEvent event) {
        if (closed || !event.key().startsWith(PREFIX)) {
            return;
        }
        String id = event.key().substring(PREFIX.length());
        lock.lock();
        try {
            Member known = view.get(id);
            if (known != null && known.modRevision() >= event.modRevision()) {
                return; // the list already showed this change or a later one
            }
            if (event.type() == WatchEvent.Type.DELETE) {
                departedAt.put(id, clock.instant());
                if (known != null) {
                    applyLeave(id, known, event.modRevision());
                }
            } else {
                NodeDescriptor node = decode(event.key(), event.value(), event.modRevision());
                if (node == null) {
                    return;
                }
                applyPut(id, new Member(node, event.modRevision()), known);
            }
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** Under lock: {@code known} left (at or before {@code revision}). */
    private void applyLeave(String id, Member known, long revision) {
        departedAt.put(id, clock.instant());
        view.remove(id);
        log.info("node {} left the cluster (revision {})", id, revision);
        if (id.equals(self.id()) && !closed) {
            log.error("this node's registration {} is gone (its lease expired); other nodes consider it dead"
                    + " until it joins again", key);
            rejoin();
        }
        dispatch(listener -> listener.onLeave(known.node()));
    }

    /**
     * This node's registration expired while the process lived on (a partition from the store, or
     * a stall, longer than the lease TTL): registers again under a new lease, on a thread of its
     * own, retrying with a growing pause until it succeeds or the membership closes. Other nodes
     * see a leave and then a join, as for a restart, so this node's replicas are resynced (only
     * what they missed) instead of waiting for an operator to restart the process. Gives up if
     * another live member has taken the id meanwhile.
     */
    private void rejoin() {
        if (rejoining.compareAndSet(false, true)) {
            inBackground("rejoin", "joining again", IllegalStateException.class, this::rejoinOnce,
                    () -> rejoining.set(false));
        }
    }

    private void rejoinOnce() {
        Lease fresh = Futures.join(store.grantLeaseAsync(leaseTtl));
        try {
            synchronized (registrationLock) {
                if (closed) {
                    closeQuietly(fresh);
                    return;
                }
                long revision = register(store, self, fresh, leaseTtl);
                Lease old = lease;
                lease = fresh;
                selfRevision = revision;
                log.warn("node {} joined the cluster again under lease {} (its previous lease {} expired)", self.id(),
                        Long.toHexString(fresh.id()), Long.toHexString(old.id()));
                try {
                    old.close(); // ends its keep-alive; etcd no longer knows it, so the revoke may fail
                } catch (RuntimeException e) {
                    log.debug("revoking expired lease {}: {}", Long.toHexString(old.id()), e.toString());
                }
            }
        } catch (RuntimeException e) {
            closeQuietly(fresh);
            throw e;
        }
    }

    /** Under lock: {@code member} is the record of node {@code id}, which was {@code known} before. */
    private void applyPut(String id, Member member, Member known) {
        view.put(id, member);
        NodeDescriptor node = member.node();
        if (known == null) {
            departedAt.remove(id);
            log.info("node {} joined the cluster at {} (labels {}, revision {})", id, node.address(), node.labels(),
                    member.modRevision());
            dispatch(listener -> listener.onJoin(node));
        } else if (!known.node().equals(node)) {
            dispatch(listener -> listener.onUpdate(known.node(), node));
        }
    }

    private static NodeDescriptor decode(String key, byte[] value, long revision) {
        try {
            NodeDescriptor node = NodeProtos.decode(value);
            if (!key.equals(PREFIX + node.id())) {
                throw new IllegalArgumentException("id: record names node " + node.id());
            }
            return node;
        } catch (IllegalArgumentException e) {
            log.warn("ignoring invalid node record {} at revision {}: {}", key, revision, e.getMessage());
            return null;
        }
    }

    /** Under lock: queues a call of every current listener, in event order. */
    private void dispatch(Consumer<Listener> call) {
        List<Registration> targets = List.copyOf(listeners);
        if (targets.isEmpty()) {
            return;
        }
        submit(() -> targets.forEach(registration -> registration.call(call)));
    }

    private void submit(Runnable task) {
        try {
            events.execute(task);
        } catch (RejectedExecutionException e) {
            // closed: listeners get nothing more
        }
    }

    // ---- the view

    /** The live nodes, in id order. */
    public List<NodeDescriptor> liveNodes() {
        lock.lock();
        try {
            List<NodeDescriptor> nodes = new ArrayList<>(view.size());
            view.values().forEach(member -> nodes.add(member.node()));
            return nodes;
        } finally {
            lock.unlock();
        }
    }

    /** The live node {@code id}, if it is live. */
    public Optional<NodeDescriptor> node(String id) {
        lock.lock();
        try {
            Member member = view.get(id);
            return member == null ? Optional.empty() : Optional.of(member.node());
        } finally {
            lock.unlock();
        }
    }

    public boolean isAlive(String id) {
        return node(id).isPresent();
    }

    /**
     * How long node {@code id} has been away by the injected clock: zero while it is live; since its
     * departure when this view saw it leave; otherwise since this view started (a lower bound).
     * Meant for decisions such as replacing a replica whose node stays away too long.
     */
    public Duration absentFor(String id) {
        lock.lock();
        try {
            if (view.containsKey(id)) {
                return Duration.ZERO;
            }
            Instant since = departedAt.getOrDefault(id, startedAt);
            Duration away = Duration.between(since, clock.instant());
            return away.isNegative() ? Duration.ZERO : away;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Waits until node {@code id} is live in this view, at most {@code timeout}; returns it, or empty
     * when the timeout passed first. Blocks the caller; do not call from a listener.
     */
    public Optional<NodeDescriptor> awaitNode(String id, Duration timeout) {
        long remaining = timeout.toNanos();
        lock.lock();
        try {
            while (!view.containsKey(id)) {
                if (remaining <= 0 || closed) {
                    return Optional.empty();
                }
                remaining = changed.awaitNanos(remaining);
            }
            return Optional.of(view.get(id).node());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted waiting for node " + id, e);
        } finally {
            lock.unlock();
        }
    }

    /**
     * Adds a listener. It first gets {@link Listener#onJoin} for every node live now, then every later
     * change, with nothing missed or repeated in between. Close the handle to remove it.
     */
    public AutoCloseable addListener(Listener listener) {
        if (listener == null) {
            throw new IllegalArgumentException("listener: required");
        }
        Registration registration = new Registration(listener);
        lock.lock();
        try {
            List<NodeDescriptor> current = liveNodes();
            listeners.add(registration);
            submit(() -> current.forEach(node -> registration.call(l -> l.onJoin(node))));
        } finally {
            lock.unlock();
        }
        return registration;
    }

    private final class Registration implements AutoCloseable {
        private final Listener listener;
        private volatile boolean removed;

        Registration(Listener listener) {
            this.listener = listener;
        }

        void call(Consumer<Listener> call) {
            if (removed) {
                return;
            }
            try {
                call.accept(listener);
            } catch (RuntimeException e) {
                log.warn("membership listener failed", e);
            }
        }

        @Override
        public void close() {
            removed = true;
            listeners.remove(this);
        }
    }

    // ---- this node

    /** This node as last registered. */
    public NodeDescriptor self() {
        synchronized (registrationLock) {
            return self;
        }
    }

    /** The lease this node's registration is bound to. Closing it ends the membership in the cluster. */
    public Lease lease() { return lease; }

    /**
     * Publishes a new free capacity by compare-and-set on this node's record; returns the record as
     * written. Blocks until the store has made it durable.
     *
     * @throws IllegalStateException when this node's registration is gone (its lease expired or was
     *         revoked, or the membership is closed)
     */
    public NodeDescriptor updateCapacity(long freeBytes) {
        return update(d -> d.withFreeBytes(freeBytes));
    }

    /**
     * Publishes the address of this node's management API, once it listens (its port may be chosen
     * by the system, so it is known only after the node joined). As {@link #updateCapacity}.
     */
    public NodeDescriptor updateApiAddress(String apiAddress) {
        return update(d -> d.withApiAddress(apiAddress));
    }

    private NodeDescriptor update(java.util.function.UnaryOperator<NodeDescriptor> change) {
        synchronized (registrationLock) {
            if (closed) {
                throw new IllegalStateException("membership of node " + self.id() + " is closed");
            }
            NodeDescriptor next = change.apply(self);
            byte[] value = NodeProtos.encode(next);
            for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
                try {
                    selfRevision = Futures.join(store.putAsync(key, value, selfRevision, lease.id()));
                    self = next;
                    return next;
                } catch (RevisionMismatchException e) {
                    Optional<Versioned> current = store.get(key);
                    if (current.isEmpty() || current.get().leaseId() != lease.id()) {
                        throw lost(e);
                    }
                    selfRevision = current.get().modRevision(); // rewritten under our lease: take it over
                } catch (IllegalArgumentException e) {
                    throw lost(e); // the store no longer knows the lease
                }
            }
            throw new IllegalStateException("node " + self.id() + ": record update kept racing on " + key);
        }
    }

    private IllegalStateException lost(RuntimeException cause) {
        return new IllegalStateException("node " + self.id() + " is no longer registered under " + key
                + " (its lease expired or was revoked); it registers again by itself unless the membership"
                + " is closed", cause);
    }

    /**
     * Leaves the cluster: revokes the lease (deleting this node's record, which other members see as
     * its departure), stops the watch and the listener thread. Idempotent. If the store cannot be
     * reached, the record still disappears when the lease expires.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        Lease current;
        synchronized (registrationLock) { // a rejoin in progress either saw closed or swapped the lease first
            current = lease;
        }
        closeQuietly(current);
        AutoCloseable w = watch;
        if (w != null) {
            closeWatch(w);
        }
        events.shutdown();
        try {
            if (!events.awaitTermination(10, TimeUnit.SECONDS)) {
                log.warn("membership listeners of node {} still busy after 10 s; interrupting", self.id());
                events.shutdownNow();
            }
        } catch (InterruptedException e) {
            events.shutdownNow();
            Thread.currentThread().interrupt();
        }
        lock.lock();
        try {
            changed.signalAll();
        } finally {
            lock.unlock();
        }
        log.info("node {} left the cluster", self.id());
    }

    private void closeWatch(AutoCloseable w) {
        try {
            w.close();
        } catch (Exception e) {
            log.warn("closing the membership watch of node {}: {}", self().id(), e.toString());
        }
    }

    private static void closeQuietly(Lease lease) {
        try {
            lease.close();
        } catch (RuntimeException e) {
            log.warn("revoking membership lease {} failed ({}); it expires after its TTL", Long.toHexString(lease.id()),
                    e.toString());
        }
    }
}
