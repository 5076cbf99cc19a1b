package dev.stowage.engine.frontend.fuse;

import dev.stowage.engine.frontend.Frontend;
import dev.stowage.engine.frontend.loop.LoopDevice;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A live export of the {@link FuseFrontend}: a FUSE session plus the loop device on its file.
 * Thread-safe; {@link #close} is idempotent and tears down in order: loop device, mount, server
 * threads and fds, mount point file.
 */
final class FuseExport implements Frontend.Export {
    private static final Logger log = LoggerFactory.getLogger(FuseExport.class);

    private final FuseFrontend frontend;
    private final String volumeId;
    private final Path mountpoint;
    private final FuseSession session;
    private final LoopDevice loop;
    private boolean closed;

    FuseExport(FuseFrontend frontend, String volumeId, Path mountpoint, FuseSession session, LoopDevice loop) {
        this.frontend = frontend;
        this.volumeId = volumeId;
        this.mountpoint = mountpoint;
        this.session = session;
        this.loop = loop;
    }

    @Override
    public String volumeId() {
        return volumeId;
    }

    @Override
    public Path devicePath() {
        return loop.device();
    }

    Path mountpoint() {
        return mountpoint;
    }

    LoopDevice loopDevice() {
        return loop;
    }

    /** The session's /dev/fuse fds, for tests. */
    List<Integer> fuseFds() {
        return session.fds();
    }

    /** Requests answered with EIO so far. */
    long errorCount() {
        return session.errorCount();
    }

    /**
     * Drops the kernel's cached attributes, makes it fetch the new size (a stat of the file), then
     * has the loop device re-read its capacity.
     */
    @Override
    public synchronized void refreshSize() throws IOException {
        if (closed) {
            throw new IOException("export of volume " + volumeId + " is closed");
        }
        session.invalidateAttributes();
        long size = Files.size(mountpoint);
        loop.refreshSize();
        log.info("volume {}: size of {} refreshed to {} bytes", volumeId, loop.device(), size);
    }

    /**
     * Has the fd keeper hold this export's connection again; false if it is closed or the keeper
     * refused. Synchronized with {@link #close}, so the fds handed over are still this session's.
     */
    synchronized boolean keepAgain() {
        return !closed && frontend.keeper().keep(volumeId, session);
    }

    /**
     * If the fd keeper holds this export's connection: stops answering (requests not answered yet
     * are sent again to the process that resumes the export) and leaves mount, loop device and
     * keeper as they are. Otherwise (no keeper, or it lost the connection) the connection would end
     * with this process anyway: {@link #close}, which leaves nothing behind.
     */
    @Override
    public synchronized void leave() throws IOException {
        if (closed) {
            return;
        }
        if (!frontend.keeper().holds(volumeId)) {
            close();
            return;
        }
        closed = true;
        session.leave();
        frontend.removed(this);
        log.info("volume {}: left {} over FUSE file {} to the next process", volumeId, loop.device(), mountpoint);
    }

    @Override
    public synchronized void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        IOException failure = null;
        try {
            loop.detach();
        } catch (IOException e) {
            failure = e;
        }
        session.close();
        frontend.keeper().release(volumeId);
        try {
            // Devices a dead process left on this path, kept while mounts referred to them: the
            // volume leaves this node, so its publications should be gone (CSI unpublishes first).
            LoopDevice.detachUnreferenced(mountpoint, FuseFrontend.keptLoopsRecord(mountpoint));
        } catch (IOException e) {
            failure = failure == null ? e : failure;
        }
        try {
            Files.deleteIfExists(mountpoint);
        } catch (IOException e) {
            failure = failure == null ? e : failure;
        }
        frontend.removed(this);
        if (failure != null) {
            log.error("volume {}: unexport of {} on {} incomplete: {}", volumeId, loop.device(), mountpoint,
                    failure.getMessage());
            throw failure;
        }
        log.info("volume {}: unexported {} from FUSE file {}", volumeId, loop.device(), mountpoint);
    }
}
