package dev.stowage.engine.frontend.fuse;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A frontend's side of the fd keeper ({@link FuseFdKeeper}): hands it each export's FUSE
 * connection, asks what it holds, takes connections back, and watches it, so that a keeper that
 * restarted (and so holds nothing) is handed every export again. Without a keeper socket every
 * call answers that nothing is held, and nothing is watched.
 *
 * <p>A failure to reach the keeper only costs its protection (a crash of this process would then
 * fail the volumes' I/O); it never fails an export.
 *
 * <p>Threading: thread-safe; the watch runs on a daemon thread of its own until {@link #close()}.
 */
final class FuseKeeperLink implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(FuseKeeperLink.class);
    /** How often the keeper is asked whether it still holds every export (it loses all when it restarts). */
    static final long CHECK_SECONDS = 5;
    /**
     * How often the keeper's socket file is looked at: a keeper that starts binds a new one, so a
     * changed file is a restarted keeper, asked at once instead of at the next regular check. That
     * narrows the time in which a crash of this process would fail its pods' I/O because the new
     * keeper holds nothing yet, from up to 5 s to about 1 s, for a stat(2) a second.
     */
    static final long SOCKET_LOOK_MILLIS = 1000;

    private final Path socket;
    private final FuseFdKeeperClient client;
    private final Supplier<List<FuseExport>> exports;
    private final ScheduledExecutorService watch;
    // The keeper's socket file as last found answering, and when it was last asked (watch thread only).
    private Object socketSeen;
    private long lastCheck;

    /**
     * A link to the keeper at {@code socket} (null: no keeper), which {@code exports} lists the
     * current exports to: those are handed again to a keeper that does not hold them.
     */
    FuseKeeperLink(Path socket, Supplier<List<FuseExport>> exports) {
        this.socket = socket;
        this.client = socket == null ? null : new FuseFdKeeperClient(socket);
        this.exports = exports;
        if (socket == null) {
            this.watch = null;
        } else {
            this.watch = Executors.newSingleThreadScheduledExecutor(r -> {
                Thread t = new Thread(r, "fuse-keeper-check");
                t.setDaemon(true);
                return t;
            });
            watch.scheduleWithFixedDelay(this::look, SOCKET_LOOK_MILLIS, SOCKET_LOOK_MILLIS, TimeUnit.MILLISECONDS);
        }
    }

    /**
     * The fds of {@code volumeId}'s connection, taken back from the keeper, which then holds them no
     * more; empty without a keeper, when it holds none, or when it cannot be reached.
     */
    Optional<List<Integer>> take(String volumeId) {
        if (client == null) {
            return Optional.empty();
        }
        try {
            return client.take(FuseFrontend.fileName(volumeId));
        } catch (IOException e) {
            log.warn("volume {}: cannot ask the fd keeper for its FUSE connection: {}", volumeId, e.getMessage());
            return Optional.empty();
        }
    }

    /** Has the keeper hold the session's fds (replacing an earlier process's); false if it does not. */
    boolean keep(String volumeId, FuseSession session) {
        if (client == null) {
            return false;
        }
        try {
            client.hold(FuseFrontend.fileName(volumeId), session.fds());
            return true;
        } catch (IOException e) {
            log.warn("volume {}: the fd keeper does not hold its FUSE connection, so it would not survive a restart"
                    + " of this process: {}", volumeId, e.getMessage());
            return false;
        }
    }

    /** Whether the keeper holds {@code volumeId}'s connection, so that its export can outlive this process. */
    boolean holds(String volumeId) {
        if (client == null) {
            return false;
        }
        try {
            return client.list().contains(FuseFrontend.fileName(volumeId));
        } catch (IOException e) {
            log.warn("volume {}: cannot ask the fd keeper whether it holds the FUSE connection: {}", volumeId,
                    e.getMessage());
            return false;
        }
    }

    /** Has the keeper let go of what it holds for {@code volumeId}. */
    void release(String volumeId) {
        if (client == null) {
            return;
        }
        try {
            client.drop(FuseFrontend.fileName(volumeId));
        } catch (IOException e) {
            log.warn("volume {}: the fd keeper may still hold its ended FUSE connection: {}", volumeId, e.getMessage());
        }
    }

    /** Checks the keeper when its socket file changed, and every {@link #CHECK_SECONDS} anyway. */
    private void look() {
        Object file;
        try {
            file = Files.readAttributes(socket, BasicFileAttributes.class).fileKey();
        } catch (IOException e) {
            file = null; // no keeper listening right now
        }
        long now = System.nanoTime();
        boolean changed = file != null && !file.equals(socketSeen);
        if (changed || now - lastCheck >= TimeUnit.SECONDS.toNanos(CHECK_SECONDS)) {
            lastCheck = now;
            if (check() && file != null) {
                socketSeen = file; // else looked at again next time
            }
        }
    }

    /**
     * Hands the keeper again every export it does not hold: a keeper that restarted holds nothing,
     * and the next crash of this process would fail those volumes' I/O. Returns whether the keeper
     * answered (or nothing was to be held).
     */
    private boolean check() {
        List<FuseExport> all = exports.get();
        if (all.isEmpty()) {
            return true;
        }
        List<String> held;
        try {
            held = client.list();
        } catch (IOException e) {
            log.debug("fd keeper not reachable: {}", e.getMessage());
            return false;
        }
        for (FuseExport export : all) {
            if (!held.contains(FuseFrontend.fileName(export.volumeId())) && export.keepAgain()) {
                log.info("volume {}: the fd keeper did not hold its FUSE connection (did it restart?); it does again",
                        export.volumeId());
            }
        }
        return true;
    }

    /** Stops the watch; what the keeper holds stays held. */
    @Override
    public void close() {
        if (watch != null) {
            watch.shutdownNow();
        }
    }
}
