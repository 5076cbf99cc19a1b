package dev.stowage.engine.cluster;

import dev.stowage.engine.cluster.MetadataStore.WatchEvent;
import dev.stowage.engine.cluster.MetadataStore.WatchListener;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.locks.Lock;

/**
 * The embedded store's watches: a bounded history of recent events, for watches that start in the
 * past, and the registered watchers.
 *
 * <p>Threading: {@link #publish} and {@link #register} must be called under the store's write lock,
 * which orders them; listeners are called on {@code dispatcher}, which must be a single thread, so
 * every listener sees its events one at a time, in revision order, with no gap or duplicate between
 * the replayed history and the live events.
 */
final class WatchHub {
    private static final Logger log = LoggerFactory.getLogger(WatchHub.class);

    private final Executor dispatcher;
    private final int maxHistory;
    private final ArrayDeque<WatchEvent> history = new ArrayDeque<>();
    private final List<Watcher> watchers = new ArrayList<>();
    private final Lock storeLock;
    private long compactedRevision;

    /**
     * {@code compactedRevision}: the newest revision whose events are not in the history;
     * {@code storeLock}: the store's write lock, taken to unregister a closed watcher.
     */
    WatchHub(Executor dispatcher, int maxHistory, long compactedRevision, Lock storeLock) {
        this.dispatcher = dispatcher;
        this.storeLock = storeLock;
        this.maxHistory = maxHistory;
        this.compactedRevision = compactedRevision;
    }

    void publish(WatchEvent event) {
        history.addLast(event);
        if (history.size() > maxHistory) {
            compactedRevision = history.removeFirst().modRevision();
        }
        for (Watcher watcher : watchers) {
            if (event.key().startsWith(watcher.prefix)) {
                deliver(watcher, event);
            }
        }
    }

    /**
     * Registers a watcher for events with revision {@code >= fromRevision} and queues the ones
     * already in the history.
     *
     * @throws CompactedRevisionException when events at {@code fromRevision} are no longer kept
     */
    AutoCloseable register(String prefix, long fromRevision, WatchListener listener) {
        if (fromRevision <= compactedRevision) {
            throw new CompactedRevisionException(fromRevision, compactedRevision);
        }
        Watcher watcher = new Watcher(prefix, listener);
        for (WatchEvent event : history) {
            if (event.modRevision() >= fromRevision && event.key().startsWith(prefix)) {
                deliver(watcher, event);
            }
        }
        watchers.add(watcher);
        return watcher;
    }

    private void deliver(Watcher watcher, WatchEvent event) {
        try {
            dispatcher.execute(() -> watcher.deliver(event));
        } catch (RejectedExecutionException e) {
            // the store is closing: watches end with it
        }
    }

    private final class Watcher implements AutoCloseable {
        private final String prefix;
        private final WatchListener listener;
        private volatile boolean closed;

        Watcher(String prefix, WatchListener listener) {
            this.prefix = prefix;
            this.listener = listener;
        }

        void deliver(WatchEvent event) {
            if (closed) {
                return;
            }
            byte[] value = event.value() == null ? null : event.value().clone();
            try {
                listener.onEvent(new WatchEvent(event.type(), event.key(), value, event.modRevision()));
            } catch (RuntimeException e) {
                log.warn("watch listener on prefix '{}' failed on {} of {} at revision {}", prefix, event.type(),
                        event.key(), event.modRevision(), e);
            }
        }

        @Override
        public void close() {
            closed = true;
            storeLock.lock();
            try {
                watchers.remove(this);
            } finally {
                storeLock.unlock();
            }
        }
    }

}
