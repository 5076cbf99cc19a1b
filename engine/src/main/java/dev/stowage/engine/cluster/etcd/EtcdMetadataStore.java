package dev.stowage.engine.cluster.etcd;

import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.StowageException;
import dev.stowage.engine.cluster.CompactedRevisionException;
import dev.stowage.engine.cluster.Futures;
import dev.stowage.engine.cluster.MetadataStore;
import dev.stowage.engine.cluster.RevisionMismatchException;
import io.etcd.jetcd.ByteSequence;
import io.etcd.jetcd.Client;
import io.etcd.jetcd.KV;
import io.etcd.jetcd.KeyValue;
import io.etcd.jetcd.Watch;
import io.etcd.jetcd.common.exception.CompactedException;
import io.etcd.jetcd.kv.GetResponse;
import io.etcd.jetcd.kv.TxnResponse;
import io.etcd.jetcd.lease.LeaseKeepAliveResponse;
import io.etcd.jetcd.op.Cmp;
import io.etcd.jetcd.op.CmpTarget;
import io.etcd.jetcd.op.Op;
import io.etcd.jetcd.options.DeleteOption;
import io.etcd.jetcd.options.GetOption;
import io.etcd.jetcd.options.PutOption;
import io.etcd.jetcd.options.WatchOption;
import io.etcd.jetcd.support.CloseableClient;
import io.etcd.jetcd.watch.WatchResponse;
import io.grpc.stub.StreamObserver;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A {@link MetadataStore} in etcd v3, through jetcd. Every key is stored under {@code keyPrefix}
 * (which callers never see), so several stores, or tests, can share one etcd.
 *
 * <p>Compare-and-set is an etcd transaction: a revision compares the key's mod revision,
 * {@link #ABSENT} compares its version with 0, and the else branch reads the key so that
 * {@link RevisionMismatchException} carries the revision actually found. {@link #ANY} is a plain
 * put or delete. Revisions are etcd's (cluster-wide, shared by every prefix).
 *
 * <p>Durability: etcd's: a completed change is committed by a quorum of members.
 *
 * <p>Leases are granted with the TTL rounded up to whole seconds (etcd may raise it to its minimum)
 * and kept alive by jetcd's keep-alive stream until closed, which revokes them. Closing the store
 * revokes the leases it still holds.
 *
 * <p>Watches start at the requested revision, or at the revision current when {@link #watch} is
 * called, so no change after the call is missed; a start revision that etcd has compacted is
 * refused with {@link CompactedRevisionException} (whose compacted revision is then a lower bound:
 * etcd does not report it on reads). Events reach listeners on one store-owned thread, in revision
 * order.
 *
 * <p>Errors: futures fail with {@link RevisionMismatchException}, {@link IllegalArgumentException}
 * (for example a lease that does not exist), {@link StowageException} with
 * {@link ErrorCode#UNAVAILABLE} when etcd cannot be reached or does not answer within the request
 * timeout, and {@link IllegalStateException} otherwise.
 *
 * <p>Threading: thread-safe. Futures complete on jetcd's threads: do not block in dependent stages.
 */
public final class EtcdMetadataStore implements MetadataStore {
    private static final Logger log = LoggerFactory.getLogger(EtcdMetadataStore.class);
    /** Default bound on every request, after which it fails as UNAVAILABLE. */
    public static final Duration DEFAULT_REQUEST_TIMEOUT = Duration.ofSeconds(10);
    private static final int MAX_RESPONSE_BYTES = 128 << 20;
    private static final ByteSequence NUL = ByteSequence.from(new byte[] {0});

    private final Client client;
    private final KV kv;
    private final String keyPrefix;
    private final Duration requestTimeout;
    private final EtcdErrors errors;
    private final ExecutorService dispatcher;
    private final Set<EtcdLease> leases = ConcurrentHashMap.newKeySet();
    private final Set<EtcdWatch> watches = ConcurrentHashMap.newKeySet();
    private volatile boolean closed;

    private EtcdMetadataStore(Client client, String keyPrefix, Duration requestTimeout, String endpoints) {
        this.client = client;
        this.kv = client.getKVClient();
        this.keyPrefix = keyPrefix;
        this.requestTimeout = requestTimeout;
        this.errors = new EtcdErrors(endpoints);
        this.dispatcher = Executors.newSingleThreadExecutor(runnable -> {
            Thread thread = new Thread(runnable, "stowage-etcd-watch");
            thread.setDaemon(true);
            return thread;
        });
    }

    /** {@link #connect(List, String, Duration)} with {@link #DEFAULT_REQUEST_TIMEOUT}. */
    public static EtcdMetadataStore connect(List<URI> endpoints, String keyPrefix) {
        return connect(endpoints, keyPrefix, DEFAULT_REQUEST_TIMEOUT);
    }

    /**
     * Connects to etcd at {@code endpoints} (e.g. {@code http://10.0.0.1:2379}) and checks that it
     * answers, storing every key under {@code keyPrefix} (e.g. {@code /stowage}).
     *
     * @throws IllegalArgumentException when an argument is missing or malformed
     * @throws StowageException UNAVAILABLE when etcd does not answer within {@code requestTimeout}
     */
    public static EtcdMetadataStore connect(List<URI> endpoints, String keyPrefix, Duration requestTimeout) {
        if (endpoints == null || endpoints.isEmpty()) {
            throw new IllegalArgumentException("endpoints: at least one etcd endpoint is required");
        }
        if (keyPrefix == null) {
            throw new IllegalArgumentException("keyPrefix: required (may be empty)");
        }
        if (requestTimeout == null || requestTimeout.isNegative() || requestTimeout.isZero()) {
            throw new IllegalArgumentException("requestTimeout: must be positive, was " + requestTimeout);
        }
        for (URI endpoint : endpoints) {
            if (endpoint.getHost() == null || endpoint.getPort() < 0) {
                throw new IllegalArgumentException("endpoints: " + endpoint + " lacks a host or port");
            }
        }
        Client client = Client.builder()
                .endpoints(endpoints)
                .connectTimeout(requestTimeout)
                .maxInboundMessageSize(MAX_RESPONSE_BYTES)
                .build();
        EtcdMetadataStore store = new EtcdMetadataStore(client, keyPrefix, requestTimeout, endpoints.toString());
        try {
            long revision = Futures.join(store.currentRevisionAsync());
            log.info("connected to etcd {} (key prefix '{}', request timeout {}) at revision {}", endpoints,
                    keyPrefix, requestTimeout, revision);
            return store;
        } catch (RuntimeException e) {
            store.close();
            throw e;
        }
    }

    // ---- reads

    @Override
    public CompletableFuture<Optional<Versioned>> getAsync(String key) {
        checkKey(key);
        return call("get " + key, kv.get(full(key)))
                .thenApply(r -> r.getKvs().isEmpty() ? Optional.empty() : Optional.of(toVersioned(r.getKvs().get(0))));
    }

    @Override
    public CompletableFuture<List<Versioned>> listAsync(String prefix) {
        if (prefix == null) {
            throw new IllegalArgumentException("prefix: required");
        }
        GetOption.Builder option = GetOption.builder()
                .withSortField(GetOption.SortTarget.KEY)
                .withSortOrder(GetOption.SortOrder.ASCEND);
        ByteSequence start = rangeStart(prefix, option::isPrefix, option::withRange);
        return call("list " + prefix, kv.get(start, option.build())).thenApply(r -> {
            List<Versioned> result = new ArrayList<>(r.getKvs().size());
            r.getKvs().forEach(entry -> result.add(toVersioned(entry)));
            return result;
        });
    }

    @Override
    public CompletableFuture<Long> currentRevisionAsync() {
        ByteSequence probe = keyPrefix.isEmpty() ? NUL : full("");
        return call("read revision", kv.get(probe, GetOption.builder().withCountOnly(true).build()))
                .thenApply(r -> r.getHeader().getRevision());
    }

    // ---- changes

    @Override
    public CompletableFuture<Long> putAsync(String key, byte[] value, long expectedRevision, long leaseId) {
        checkKey(key);
        checkExpected(expectedRevision);
        if (value == null) {
            throw new IllegalArgumentException("value: required");
        }
        ByteSequence k = full(key);
        ByteSequence v = ByteSequence.from(value);
        PutOption option = leaseId == 0 ? PutOption.DEFAULT : PutOption.builder().withLeaseId(leaseId).build();
        String what = "put " + key;
        CompletableFuture<Long> result;
        if (expectedRevision == ANY) {
            result = kv.put(k, v, option).thenApply(r -> r.getHeader().getRevision());
        } else {
            result = kv.txn().If(compare(k, expectedRevision)).Then(Op.put(k, v, option))
                    .Else(Op.get(k, GetOption.DEFAULT)).commit()
                    .thenApply(r -> {
                        requireSucceeded(r, key, expectedRevision);
                        return r.getHeader().getRevision();
                    });
        }
        if (leaseId != 0) {
            result = result.exceptionallyCompose(t -> EtcdErrors.isNotFound(t)
                    ? CompletableFuture.failedFuture(new IllegalArgumentException(
                            "lease " + leaseId + " does not exist (expired or revoked)"))
                    : CompletableFuture.failedFuture(t));
        }
        return call(what, result);
    }

    @Override
    public CompletableFuture<Boolean> deleteAsync(String key, long expectedRevision) {
        checkKey(key);
        checkExpected(expectedRevision);
        ByteSequence k = full(key);
        if (expectedRevision == ANY) {
            return call("delete " + key, kv.delete(k)).thenApply(r -> r.getDeleted() > 0);
        }
        return call("delete " + key, kv.txn().If(compare(k, expectedRevision)).Then(Op.delete(k, DeleteOption.DEFAULT))
                .Else(Op.get(k, GetOption.DEFAULT)).commit()
                .thenApply(r -> {
                    requireSucceeded(r, key, expectedRevision);
                    return r.getDeleteResponses().get(0).getDeleted() > 0;
                }));
    }

    private static Cmp compare(ByteSequence key, long expectedRevision) {
        return expectedRevision == ABSENT
                ? new Cmp(key, Cmp.Op.EQUAL, CmpTarget.version(0))
                : new Cmp(key, Cmp.Op.EQUAL, CmpTarget.modRevision(expectedRevision));
    }

    private static void requireSucceeded(TxnResponse response, String key, long expectedRevision) {
        if (response.isSucceeded()) {
            return;
        }
        List<GetResponse> reads = response.getGetResponses();
        long actual = reads.isEmpty() || reads.get(0).getKvs().isEmpty() ? 0 : reads.get(0).getKvs().get(0).getModRevision();
        throw new RevisionMismatchException(key, expectedRevision, actual);
    }

    // ---- watches

    @Override
    public AutoCloseable watch(String prefix, long fromRevision, WatchListener listener) {
        if (prefix == null) {
            throw new IllegalArgumentException("prefix: required");
        }
        if (fromRevision < 0) {
            throw new IllegalArgumentException("fromRevision: must be 0 (now) or a revision, was " + fromRevision);
        }
        if (listener == null) {
            throw new IllegalArgumentException("listener: required");
        }
        checkOpen();
        long current = Futures.join(currentRevisionAsync());
        long start = fromRevision == 0 ? current + 1 : fromRevision;
        if (start <= current) {
            requireNotCompacted(start);
        }
        WatchOption.Builder option = WatchOption.builder().withRevision(start);
        ByteSequence key = rangeStart(prefix, option::isPrefix, option::withRange);
        EtcdWatch handle = new EtcdWatch(prefix, listener);
        handle.watcher = client.getWatchClient().watch(key, option.build(),
                Watch.listener(handle::onResponse, handle::onError, handle::onCompleted));
        watches.add(handle);
        return handle;
    }

    /** etcd reports a compacted start revision only asynchronously; a read at that revision tells now. */
    private void requireNotCompacted(long revision) {
        ByteSequence probe = keyPrefix.isEmpty() ? NUL : full("");
        try {
            Futures.join(kv.get(probe, GetOption.builder().withRevision(revision).withCountOnly(true).build())
                    .orTimeout(requestTimeout.toMillis(), TimeUnit.MILLISECONDS));
        } catch (RuntimeException e) {
            if (EtcdErrors.statusCode(e) == io.grpc.Status.Code.OUT_OF_RANGE) {
                throw new CompactedRevisionException(revision, revision);
            }
            throw errors.translate("watch from revision " + revision, e);
        }
    }

    /** One watch: forwards jetcd's events to the listener on the store's dispatcher thread. */
    private final class EtcdWatch implements AutoCloseable {
        private final String prefix;
        private final WatchListener listener;
        private volatile Watch.Watcher watcher;
        private volatile boolean stopped;

        EtcdWatch(String prefix, WatchListener listener) {
            this.prefix = prefix;
            this.listener = listener;
        }

        void onResponse(WatchResponse response) {
            for (io.etcd.jetcd.watch.WatchEvent event : response.getEvents()) {
                WatchEvent.Type type = switch (event.getEventType()) {
                    case PUT -> WatchEvent.Type.PUT;
                    case DELETE -> WatchEvent.Type.DELETE;
                    default -> null;
                };
                if (type == null) {
                    continue;
                }
                KeyValue kv = event.getKeyValue();
                WatchEvent mapped = new WatchEvent(type, strip(kv.getKey()),
                        type == WatchEvent.Type.PUT ? kv.getValue().getBytes() : null, kv.getModRevision());
                try {
                    dispatcher.execute(() -> deliver(mapped));
                } catch (RejectedExecutionException e) {
                    return; // store closing
                }
            }
        }

        private void deliver(WatchEvent event) {
            if (stopped) {
                return;
            }
            try {
                listener.onEvent(event);
            } catch (RuntimeException e) {
                log.warn("watch listener on prefix '{}' failed on {} of {} at revision {}", prefix, event.type(),
                        event.key(), event.modRevision(), e);
            }
        }

        void onError(Throwable error) {
            if (stopped || closed) {
                return;
            }
            if (error instanceof CompactedException compacted) {
                log.warn("etcd watch on prefix '{}' ended: history up to revision {} was compacted before it caught"
                        + " up; its listener lists again", prefix, compacted.getCompactedRevision());
            } else {
                log.warn("etcd watch on prefix '{}' ended; its listener lists again", prefix, error);
            }
            ended(error);
        }

        void onCompleted() {
            if (!stopped && !closed) {
                log.warn("etcd watch on prefix '{}' completed by the server; its listener lists again", prefix);
                ended(new IllegalStateException("etcd completed the watch on prefix '" + prefix + "'"));
            }
        }

        /** Tells the listener once, after the events already queued for it. */
        private void ended(Throwable cause) {
            watches.remove(this);
            try {
                dispatcher.execute(() -> {
                    if (stopped) {
                        return;
                    }
                    stopped = true;
                    Watch.Watcher w = watcher;
                    if (w != null) {
                        w.close(); // jetcd may still be retrying it; the listener starts a new one
                    }
                    try {
                        listener.onEnded(cause);
                    } catch (RuntimeException e) {
                        log.warn("watch listener on prefix '{}' failed when told its watch ended", prefix, e);
                    }
                });
            } catch (RejectedExecutionException e) {
                // store closing
            }
        }

        @Override
        public void close() {
            stopped = true;
            watches.remove(this);
            Watch.Watcher w = watcher;
            if (w != null) {
                w.close();
            }
        }
    }

    // ---- leases

    @Override
    public CompletableFuture<Lease> grantLeaseAsync(Duration ttl) {
        if (ttl == null || ttl.isNegative() || ttl.isZero()) {
            throw new IllegalArgumentException("ttl: must be positive, was " + ttl);
        }
        checkOpen();
        long seconds = Math.max(1, (ttl.toMillis() + 999) / 1000);
        io.etcd.jetcd.Lease leaseClient = client.getLeaseClient();
        return call("grant lease", leaseClient.grant(seconds)).thenApply(granted -> {
            EtcdLease lease = new EtcdLease(granted.getID());
            lease.keepAlive = leaseClient.keepAlive(granted.getID(), lease);
            leases.add(lease);
            return lease;
        });
    }

    /**
     * A lease kept alive by jetcd's keep-alive stream. {@link #stopKeepAlive()} ends the stream
     * without revoking, as the death of its holder would: etcd then expires it after its TTL.
     */
    final class EtcdLease implements Lease, StreamObserver<LeaseKeepAliveResponse> {
        private final long id;
        private final AtomicBoolean revoked = new AtomicBoolean();
        private volatile CloseableClient keepAlive;

        EtcdLease(long id) {
            this.id = id;
        }

        @Override
        public long id() { return id; }

        void stopKeepAlive() {
            CloseableClient stream = keepAlive;
            if (stream != null) {
                stream.close();
            }
        }

        @Override
        public void onNext(LeaseKeepAliveResponse response) {
            if (response.getTTL() <= 0 && !revoked.get()) {
                log.warn("etcd lease {} has expired; its keys are gone", id);
            }
        }

        @Override
        public void onError(Throwable error) {
            if (!revoked.get() && !closed) {
                log.warn("keep-alive of etcd lease {} failed; the lease expires unless renewed: {}", id, error.toString());
            }
        }

        @Override
        public void onCompleted() {}

        /** Revokes the lease, deleting its keys; returns when etcd has. An expired lease is ignored. */
        @Override
        public void close() {
            if (!revoked.compareAndSet(false, true)) {
                return;
            }
            stopKeepAlive();
            leases.remove(this);
            try {
                Futures.join(call("revoke lease " + id, client.getLeaseClient().revoke(id)
                        .exceptionally(t -> {
                            if (EtcdErrors.isNotFound(t)) {
                                return null;
                            }
                            throw Futures.unwrap(t);
                        })));
            } catch (StowageException e) {
                log.warn("could not revoke etcd lease {} ({}); it expires after its TTL", id, e.getMessage());
                throw e;
            }
        }
    }

    // ---- plumbing

    private <T> CompletableFuture<T> call(String what, CompletableFuture<T> request) {
        if (closed) {
            request.cancel(false);
            return CompletableFuture.failedFuture(new IllegalStateException("etcd metadata store is closed (" + what + ")"));
        }
        return request.orTimeout(requestTimeout.toMillis(), TimeUnit.MILLISECONDS)
                .handle((value, failure) -> {
                    if (failure != null) {
                        throw errors.translate(what, failure);
                    }
                    return value;
                });
    }

    private ByteSequence full(String key) {
        return ByteSequence.from(keyPrefix + key, StandardCharsets.UTF_8);
    }

    private String strip(ByteSequence key) {
        return key.toString(StandardCharsets.UTF_8).substring(keyPrefix.length());
    }

    /**
     * The range start for every key under {@code prefix}; with an empty full prefix, the whole
     * keyspace ("\0" to "\0" in etcd's terms).
     */
    private ByteSequence rangeStart(String prefix, java.util.function.Function<Boolean, ?> isPrefix,
                                    java.util.function.Function<ByteSequence, ?> withRange) {
        ByteSequence start = full(prefix);
        if (start.isEmpty()) {
            withRange.apply(NUL);
            return NUL;
        }
        isPrefix.apply(true);
        return start;
    }

    private Versioned toVersioned(KeyValue kv) {
        return new Versioned(strip(kv.getKey()), kv.getValue().getBytes(), kv.getCreateRevision(),
                kv.getModRevision(), kv.getLease());
    }

    private static void checkKey(String key) {
        if (key == null || key.isEmpty()) {
            throw new IllegalArgumentException("key: required");
        }
    }

    private static void checkExpected(long expectedRevision) {
        if (expectedRevision < ANY) {
            throw new IllegalArgumentException("expectedRevision: must be a revision, ABSENT (0) or ANY (-1), was "
                    + expectedRevision);
        }
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("etcd metadata store is closed");
        }
    }

    /** Revokes the leases this store still holds (best effort), ends its watches and disconnects. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        for (EtcdLease lease : List.copyOf(leases)) {
            try {
                lease.close();
            } catch (RuntimeException e) {
                log.warn("closing etcd metadata store: lease {} not revoked: {}", lease.id(), e.getMessage());
            }
        }
        closed = true;
        for (EtcdWatch watch : List.copyOf(watches)) {
            watch.close();
        }
        client.close();
        dispatcher.shutdown();
        try {
            if (!dispatcher.awaitTermination(10, TimeUnit.SECONDS)) {
                dispatcher.shutdownNow();
            }
        } catch (InterruptedException e) {
            dispatcher.shutdownNow();
            Thread.currentThread().interrupt();
        }
    }
}
