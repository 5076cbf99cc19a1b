package dev.stowage.csi.server;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.StowageException;

/**
 * Per-object try-locks for CSI calls: a second call on the same volume (or snapshot, or path) while one
 * is in progress fails at once with ABORTED, as the CSI spec asks, instead of queueing behind it.
 *
 * <p>Threading: thread-safe. A lock is not reentrant and is owned by the call, not the thread: release it
 * with {@link Held#close()} (try-with-resources) on the thread that finishes the call.
 */
public final class VolumeLocks {
    private final Set<String> held = ConcurrentHashMap.newKeySet();

    /** A held lock; closing it releases it (once). */
    public interface Held extends AutoCloseable {
        @Override
        void close();
    }

    /** Locks volume {@code volumeId} or throws ABORTED "operation in progress for volume X". */
    public Held volume(String volumeId) {
        return acquire("volume", volumeId);
    }

    /** Locks the snapshot named or identified by {@code key}. */
    public Held snapshot(String key) {
        return acquire("snapshot", key);
    }

    /** Locks a node path (staging or target path). */
    public Held path(String path) {
        return acquire("path", path);
    }

    private Held acquire(String kind, String id) {
        String key = kind + '\0' + id;
        if (!held.add(key)) {
            throw new StowageException(ErrorCode.ABORTED, "operation in progress for " + kind + " " + id);
        }
        return new Held() {
            private boolean released;

            @Override
            public synchronized void close() {
                if (!released) {
                    released = true;
                    held.remove(key);
                }
            }
        };
    }

    /** True if any lock is held (for tests and diagnostics). */
    public boolean anyHeld() {
        return !held.isEmpty();
    }
}
