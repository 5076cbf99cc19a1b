package dev.stowage.csi.mount;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * In-memory {@link Mounter} for unit tests: remembers mounts and filesystems, never touches the host's
 * mount table (paths themselves are real, created by the code under test). A test can make the next call
 * of one operation fail, as the real tools would.
 */
public final class FakeMounter implements Mounter {
    /** One mount: what is mounted where, how. */
    public record Mount(Path source, String fsType, List<String> options, boolean bind, boolean readOnly) {}

    private final Map<Path, Mount> mounts = new HashMap<>();
    private final Map<Path, String> filesystems = new HashMap<>();
    private final Map<Path, Long> deviceSizes = new HashMap<>();
    private final Map<String, MountException> failures = new HashMap<>();
    public final List<String> calls = new ArrayList<>();
    public final List<Path> formatted = new ArrayList<>();
    public final List<Path> resized = new ArrayList<>();

    /** The next call of {@code operation} (e.g. "mount", "format") fails with {@code message}. */
    public synchronized void failNext(String operation, String message) {
        failures.put(operation, new MountException(message));
    }

    public synchronized void setFilesystem(Path device, String fsType) {
        filesystems.put(device, fsType);
    }

    public synchronized void setDeviceSize(Path device, long bytes) {
        deviceSizes.put(device, bytes);
    }

    public synchronized Optional<Mount> mountAt(Path target) {
        return Optional.ofNullable(mounts.get(target.normalize()));
    }

    public synchronized int mountCount() {
        return mounts.size();
    }

    private void enter(String operation) {
        calls.add(operation);
        MountException failure = failures.remove(operation);
        if (failure != null) {
            throw failure;
        }
    }

    @Override
    public synchronized boolean isMountPoint(Path path) {
        return mounts.containsKey(path.normalize());
    }

    @Override
    public synchronized boolean isMountOf(Path path, Path device) {
        Mount m = mounts.get(path.normalize());
        return m != null && !m.bind() && m.source().equals(device);
    }

    @Override
    public synchronized void mount(Path source, Path target, String fsType, List<String> options) {
        enter("mount");
        if (mounts.containsKey(target.normalize())) {
            throw new MountException(target + " is already a mount point");
        }
        if (!fsType.equals(filesystems.get(source))) {
            throw new MountException("mount: wrong fs type, bad option, bad superblock on " + source);
        }
        mounts.put(target.normalize(), new Mount(source, fsType, List.copyOf(options), false,
                options.contains("ro")));
    }

    @Override
    public synchronized void bindMount(Path source, Path target, boolean readOnly) {
        enter("bindMount");
        Mount underneath = mounts.get(source.normalize());
        String fsType = underneath == null ? "" : underneath.fsType();
        mounts.put(target.normalize(), new Mount(source, fsType, List.of(), true, readOnly));
    }

    @Override
    public synchronized void unmount(Path target) {
        enter("unmount");
        if (mounts.remove(target.normalize()) == null) {
            throw new MountException("umount: " + target + ": not mounted");
        }
    }

    @Override
    public synchronized void format(Path device, String fsType) {
        enter("format");
        if (filesystems.containsKey(device)) {
            throw new MountException("refusing to format " + device + ": it holds " + filesystems.get(device));
        }
        filesystems.put(device, fsType);
        formatted.add(device);
    }

    @Override
    public synchronized Optional<String> probeFilesystem(Path device) {
        enter("probeFilesystem");
        return Optional.ofNullable(filesystems.get(device));
    }

    @Override
    public synchronized void resizeFilesystem(Path device, Path mountPath, String fsType) {
        enter("resizeFilesystem");
        resized.add(mountPath);
    }

    @Override
    public synchronized FilesystemStats stats(Path path) {
        enter("stats");
        if (!mounts.containsKey(path.normalize())) {
            throw new MountException("stat: cannot read file system information for " + path);
        }
        return new FilesystemStats(1000L << 20, 900L << 20, 100L << 20, 65536, 65000, 536);
    }

    @Override
    public synchronized long blockDeviceSize(Path device) {
        enter("blockDeviceSize");
        Mount mount = mounts.get(device.normalize());
        Path real = mount != null && mount.bind() ? mount.source() : device;
        return deviceSizes.getOrDefault(real, 0L);
    }
}
