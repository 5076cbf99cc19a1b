package dev.stowage.engine.frontend.fuse;

import dev.stowage.engine.block.BlockTarget;
import dev.stowage.engine.frontend.Frontend;
import dev.stowage.engine.frontend.loop.LoopDevice;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Exports a {@link BlockTarget} as one file served over the raw FUSE kernel protocol, with a loop
 * device on top whose path ({@code /dev/loopN}) is the volume's block device.
 *
 * <p>Layout: the mount point of volume {@code v} is the empty regular file
 * {@code <runDirectory>/<v>} and the FUSE file system is mounted directly on it with a regular
 * file as its root ({@code rootmode=100000}). The root inode is the volume, so the kernel never
 * sends LOOKUP or directory operations, the loop device's backing path is the mount point itself
 * and a leftover from a crashed process is found by that one path in the mount table and in the
 * loop device list. A directory holding one file would add a LOOKUP round trip and a second name
 * for nothing.
 *
 * <p>Data path: the file is opened with FOPEN_DIRECT_IO (so the loop device's O_DIRECT is
 * accepted and no page cache sits between the loop device and the target) and
 * FOPEN_PARALLEL_DIRECT_WRITES; the connection negotiates 1 MiB requests (max_pages), async
 * direct I/O and a deep background queue; {@link FuseFrontendConfig#threadsPerVolume()} threads
 * each serve their own cloned /dev/fuse fd. Writes go to the target as they arrive; FSYNC and
 * FLUSH (an fsync or flush of the loop device, a close of the file) call {@link BlockTarget#flush()},
 * so durability is exactly the target's: nothing is buffered here.
 *
 * <p>Errors: a failing target read, write or flush is answered with EIO for that request only,
 * which the loop device passes up as an I/O error; the server keeps serving.
 *
 * <p>Threading: thread-safe. Exports of different volumes proceed in parallel; exporting a volume
 * that is already exported by this instance fails. Requires root (mount, losetup).
 */
public final class FuseFrontend implements Frontend {
    private static final Logger log = LoggerFactory.getLogger(FuseFrontend.class);

    private static final String KEPT_LOOPS = ".kept-loops";

    private final FuseFrontendConfig config;
    private final FuseKeeperLink keeper;
    private final Map<String, FuseExport> exports = new HashMap<>();
    private final Set<String> busy = new HashSet<>();
    private boolean closed;

    public FuseFrontend(FuseFrontendConfig config) {
        this.config = Objects.requireNonNull(config, "config");
        this.keeper = new FuseKeeperLink(config.fdKeeperSocket(), this::currentExports);
        log.info("FUSE frontend: run directory {}, {} threads per volume, max write {} bytes, max background {}",
                config.runDirectory(), config.threadsPerVolume(), config.maxWriteBytes(), config.maxBackground());
    }

    public FuseFrontendConfig config() {
        return config;
    }

    /** Where the FUSE file of {@code volumeId} is mounted (whether or not it is exported now). */
    public Path mountpointOf(String volumeId) {
        return config.runDirectory().resolve(fileName(volumeId));
    }

    @Override
    public Export export(String volumeId, BlockTarget target, ExportOptions options) throws IOException {
        Objects.requireNonNull(target, "target");
        Objects.requireNonNull(options, "options");
        Path mountpoint = mountpointOf(volumeId);
        reserve(volumeId);
        FuseExport export;
        try {
            Files.createDirectories(config.runDirectory());
            removeLeftovers(volumeId, mountpoint);
            Files.createFile(mountpoint, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
            FuseSession session = null;
            LoopDevice loop;
            try {
                session = new FuseSession(volumeId, mountpoint, target, config.maxWriteBytes(),
                        config.maxBackground(), config.pollMicros(), options.readOnly());
                session.start(config.threadsPerVolume());
                loop = LoopDevice.attach(mountpoint, options.directIo(), options.readOnly());
            } catch (IOException | RuntimeException | Error e) {
                if (session != null) {
                    session.close();
                }
                Files.deleteIfExists(mountpoint);
                throw e;
            }
            export = new FuseExport(this, volumeId, mountpoint, session, loop);
            if (!register(volumeId, export)) {
                export.close();
                throw new IOException("FUSE frontend was closed while volume " + volumeId + " was being exported");
            }
            keeper.keep(volumeId, session);
            log.info("volume {}: exported as {} over FUSE file {} ({} bytes, {} threads, {}{})", volumeId,
                    loop.device(), mountpoint, target.sizeBytes(), config.threadsPerVolume(),
                    loop.directIo() ? "direct I/O" : "buffered I/O", options.readOnly() ? ", read-only" : "");
            return export;
        } finally {
            synchronized (this) {
                busy.remove(volumeId);
            }
        }
    }

    /**
     * Takes over the export of a node process that died: the fd keeper still holds its FUSE
     * connection, the mount and its one loop device are in place. The fds come back from the
     * keeper, the kernel sends again what the dead process had not answered, and the loop device
     * stays what pods opened. Empty (and nothing changed) without a keeper or a live connection.
     */
    @Override
    public Optional<Export> resume(String volumeId, BlockTarget target, ExportOptions options) throws IOException {
        Objects.requireNonNull(target, "target");
        if (config.fdKeeperSocket() == null) {
            return Optional.empty();
        }
        Path mountpoint = mountpointOf(volumeId);
        reserve(volumeId);
        try {
            Optional<List<Integer>> fds = keeper.take(volumeId);
            if (fds.isEmpty()) {
                return Optional.empty();
            }
            Optional<LoopDevice> loop = FuseMounts.deviceOf(mountpoint).isPresent()
                    ? LoopDevice.existing(mountpoint) : Optional.empty();
            if (loop.isEmpty()) {
                fds.get().forEach(Native.LIBC::close);
                log.info("volume {}: the fd keeper held a FUSE connection, but its mount or loop device is gone",
                        volumeId);
                return Optional.empty();
            }
            FuseSession session = new FuseSession(volumeId, mountpoint, target, config.maxWriteBytes(),
                    config.maxBackground(), config.pollMicros(), options.readOnly());
            session.resume(fds.get());
            FuseExport export = new FuseExport(this, volumeId, mountpoint, session, loop.get());
            if (!register(volumeId, export)) {
                export.close();
                throw new IOException("FUSE frontend was closed while volume " + volumeId + " was being resumed");
            }
            keeper.keep(volumeId, session);
            log.info("volume {}: resumed the export an earlier process left as {} over FUSE file {} ({} threads)",
                    volumeId, loop.get().device(), mountpoint, session.fds().size());
            return Optional.of(export);
        } finally {
            synchronized (this) {
                busy.remove(volumeId);
            }
        }
    }

    /** The exports of this process now (for the keeper link's check). */
    private synchronized List<FuseExport> currentExports() {
        return new ArrayList<>(exports.values());
    }

    /** This frontend's link to the fd keeper (one that holds nothing without a keeper socket). */
    FuseKeeperLink keeper() {
        return keeper;
    }

    @Override
    public void cleanupStale(String volumeId) throws IOException {
        Path mountpoint = mountpointOf(volumeId);
        synchronized (this) {
            if (exports.containsKey(volumeId) || busy.contains(volumeId)) {
                throw new IOException("volume " + volumeId + " is exported by this process; close that export instead");
            }
            busy.add(volumeId);
        }
        try {
            keeper.release(volumeId);
            removeLeftovers(volumeId, mountpoint);
        } finally {
            synchronized (this) {
                busy.remove(volumeId);
            }
        }
    }

    /**
     * Detaches the loop devices on the mount point that no mount refers to (the others stay attached
     * to the dead file until the volume's export here is closed, see
     * {@link LoopDevice#detachUnreferenced}), aborts and lazily unmounts a dead mount, deletes the
     * file. The mount point is then free for a new export, whatever old mounts still use.
     */
    private static void removeLeftovers(String volumeId, Path mountpoint) throws IOException {
        boolean found = LoopDevice.detachUnreferenced(mountpoint, keptLoopsRecord(mountpoint)) > 0;
        for (int i = 0; i < 16; i++) {
            Optional<String> device = FuseMounts.deviceOf(mountpoint);
            if (device.isEmpty()) {
                break;
            }
            found = true;
            FuseMounts.abortConnection(device.get());
            FuseMounts.unmount(mountpoint);
        }
        if (FuseMounts.isMounted(mountpoint)) {
            throw new IOException("could not unmount stale FUSE mount " + mountpoint);
        }
        if (Files.exists(mountpoint, LinkOption.NOFOLLOW_LINKS)) {
            if (Files.isDirectory(mountpoint, LinkOption.NOFOLLOW_LINKS)) {
                throw new FileAlreadyExistsException(mountpoint.toString(), null, "is a directory, not a mount point file");
            }
            Files.delete(mountpoint);
            found = true;
        }
        if (found) {
            log.info("volume {}: removed stale FUSE export at {}", volumeId, mountpoint);
        }
    }

    /** Where the loop devices kept for the dead exports of a volume are recorded (see {@link LoopDevice#detachUnreferenced}). */
    static Path keptLoopsRecord(Path mountpoint) {
        return mountpoint.resolveSibling(mountpoint.getFileName() + KEPT_LOOPS);
    }

    private synchronized void reserve(String volumeId) throws IOException {
        if (closed) {
            throw new IOException("FUSE frontend is closed");
        }
        if (exports.containsKey(volumeId) || !busy.add(volumeId)) {
            throw new IOException("volume " + volumeId + " is already exported (or being exported) here");
        }
    }

    /** Records a finished export; false if the frontend was closed meanwhile. */
    private synchronized boolean register(String volumeId, FuseExport export) {
        if (closed) {
            return false;
        }
        exports.put(volumeId, export);
        return true;
    }

    synchronized void removed(FuseExport export) {
        exports.remove(export.volumeId(), export);
    }

    @Override
    public void close() {
        keeper.close();
        List<FuseExport> all;
        synchronized (this) {
            closed = true;
            all = new ArrayList<>(exports.values());
        }
        for (FuseExport e : all) {
            try {
                e.close();
            } catch (IOException | RuntimeException ex) {
                log.error("volume {}: teardown of FUSE export failed: {}", e.volumeId(), ex.toString());
            }
        }
    }

    /** The volumes with a mount point file or a kept-device record in the run directory. */
    @Override
    public Set<String> leftovers() throws IOException {
        Set<String> ids = new java.util.TreeSet<>();
        if (!Files.isDirectory(config.runDirectory())) {
            return ids;
        }
        try (var entries = Files.list(config.runDirectory())) {
            for (Path p : (Iterable<Path>) entries::iterator) {
                String name = p.getFileName().toString();
                if (name.endsWith(".tmp")) {
                    continue;
                }
                String id = volumeIdOf(name.endsWith(KEPT_LOOPS) ? name.substring(0, name.length() - KEPT_LOOPS.length()) : name);
                if (id != null) {
                    ids.add(id);
                }
            }
        }
        return ids;
    }

    /** The volume id a {@link #fileName} came from, or null if {@code name} is not one. */
    static String volumeIdOf(String name) {
        java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
        for (int i = 0; i < name.length(); i++) {
            char c = name.charAt(i);
            if (c == '%' && i + 2 < name.length()) {
                try {
                    bytes.write(Integer.parseInt(name.substring(i + 1, i + 3), 16));
                } catch (NumberFormatException e) {
                    return null;
                }
                i += 2;
            } else if (c < 128) {
                bytes.write(c);
            } else {
                return null;
            }
        }
        String id = bytes.toString(StandardCharsets.UTF_8);
        try {
            return fileName(id).equals(name) ? id : null;
        } catch (IllegalArgumentException e) {
            return null;
        }
    }

    /**
     * Maps a volume id to a file name: [A-Za-z0-9._-] stay, every other byte becomes %XX, so two
     * ids never share a name.
     */
    static String fileName(String volumeId) {
        Objects.requireNonNull(volumeId, "volumeId");
        if (volumeId.isEmpty() || volumeId.equals(".") || volumeId.equals("..")) {
            throw new IllegalArgumentException("volumeId '" + volumeId + "' cannot name a mount point");
        }
        StringBuilder b = new StringBuilder();
        for (byte x : volumeId.getBytes(StandardCharsets.UTF_8)) {
            char c = (char) (x & 0xff);
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_'
                    || c == '-') {
                b.append(c);
            } else {
                b.append('%').append(String.format("%02X", x & 0xff));
            }
        }
        if (b.length() > 240) {
            throw new IllegalArgumentException("volumeId is too long for a mount point name: " + volumeId.length());
        }
        return b.toString();
    }
}
