package dev.stowage.csi.mount;

import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/**
 * What the CSI node service needs from the host to mount volumes. Implementations run the real tools
 * ({@link LinuxMounter}) or record calls in memory (tests).
 *
 * <p>Threading: implementations are thread-safe; callers serialise operations on one path or device
 * themselves (the CSI server holds a per-volume lock).
 *
 * <p>Errors: every method throws {@link MountException} with the failing command's stderr when the
 * host refuses; none leaves a half-made mount behind on failure.
 */
public interface Mounter {

    /** True if {@code path} is the target of a mount (of any kind, bind mounts included). */
    boolean isMountPoint(Path path);

    /**
     * True if {@code path} is the target of a mount of the file system on the block device
     * {@code device} (compared by device number, so another name of the same device counts).
     */
    boolean isMountOf(Path path, Path device);

    /**
     * Mounts {@code source} (a block device) at the existing directory {@code target} as {@code fsType}
     * with {@code options} (e.g. {@code ro}, {@code noatime}); an empty list means the defaults.
     */
    void mount(Path source, Path target, String fsType, List<String> options);

    /**
     * Bind-mounts {@code source} (a directory or a device) onto the existing {@code target} (a directory
     * or a file), then remounts it read-only when {@code readOnly}. If the read-only remount fails the
     * bind mount is undone.
     */
    void bindMount(Path source, Path target, boolean readOnly);

    /** Unmounts {@code target}; a path that is not a mount point is an error. */
    void unmount(Path target);

    /**
     * Creates a filesystem of {@code fsType} (ext4 or xfs) on {@code device}. Callers must have checked
     * with {@link #probeFilesystem} that the device holds no filesystem: this overwrites.
     */
    void format(Path device, String fsType);

    /** The filesystem type on {@code device} (e.g. {@code ext4}), or empty when it holds none. */
    Optional<String> probeFilesystem(Path device);

    /** Grows the filesystem of type {@code fsType} on {@code device}, mounted at {@code mountPath}, to fill the device. */
    void resizeFilesystem(Path device, Path mountPath, String fsType);

    /** Usage of the filesystem mounted at {@code path}. */
    FilesystemStats stats(Path path);

    /** Size in bytes of the block device at {@code device} (or of the device bind-mounted there). */
    long blockDeviceSize(Path device);
}
