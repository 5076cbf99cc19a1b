package dev.stowage.csi.mount;

import java.io.RandomAccessFile;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The real mount path on a loop device: format, mount, read-only bind, stats, online grow, raw-block bind.
 * Needs root and loop devices; everything it mounts or attaches is undone in {@link #cleanUp()}, also on failure.
 */
@Tag("root")
class LinuxMounterRootTest {
    @TempDir
    Path dir;
    private final LinuxMounter mounter = new LinuxMounter(Duration.ofSeconds(60));
    private final CommandRunner runner = new CommandRunner(Duration.ofSeconds(30));
    private Path image;
    private Path loop;
    private Path staging;
    private Path target;
    private Path blockTarget;

    @AfterEach
    void cleanUp() {
        for (Path p : new Path[] {blockTarget, target, staging}) {
            if (p != null && mounter.isMountPoint(p)) {
                runner.run(List.of("umount", "-l", p.toString()));
            }
        }
        if (loop != null) {
            runner.run(List.of("losetup", "-d", loop.toString()));
        }
    }

    private void attachLoop(long bytes) throws Exception {
        image = dir.resolve("disk.img");
        try (RandomAccessFile file = new RandomAccessFile(image.toFile(), "rw")) {
            file.setLength(bytes);
        }
        loop = Path.of(runner.runChecked(List.of("losetup", "--find", "--show", image.toString())).stdout());
    }

    @Test
    void formatsMountsBindsReadOnlyAndGrowsOnline() throws Exception {
        attachLoop(64L << 20);
        staging = Files.createDirectories(dir.resolve("staging"));
        target = Files.createDirectories(dir.resolve("target"));

        assertEquals(Optional.empty(), mounter.probeFilesystem(loop));
        mounter.format(loop, "ext4");
        assertEquals(Optional.of("ext4"), mounter.probeFilesystem(loop));
        mounter.mount(loop, staging, "ext4", List.of("noatime"));
        assertTrue(mounter.isMountPoint(staging));
        assertTrue(mounter.isMountOf(staging, loop));
        assertFalse(mounter.isMountOf(staging, Path.of("/dev/null")), "another device");
        assertFalse(mounter.isMountOf(dir, loop), "not a mount point");
        Files.writeString(staging.resolve("data"), "kept");

        mounter.bindMount(staging, target, true);
        assertTrue(mounter.isMountPoint(target));
        assertEquals("kept", Files.readString(target.resolve("data")));
        assertThrows(FileSystemException.class,
                () -> Files.writeString(target.resolve("other"), "x"));

        mounter.unmount(target);
        mounter.unmount(staging);
        assertFalse(mounter.isMountPoint(staging));
        assertThrows(MountException.class, () -> mounter.unmount(staging));
    }

    /**
     * Online grow is tested with xfs: growing a mounted ext4 needs CAP_SYS_RESOURCE, which the node plugin
     * has in a privileged pod but the development sandbox does not.
     */
    @Test
    void growsAMountedXfsFilesystemOnline() throws Exception {
        attachLoop(320L << 20);
        staging = Files.createDirectories(dir.resolve("staging"));
        mounter.format(loop, "xfs");
        assertEquals(Optional.of("xfs"), mounter.probeFilesystem(loop));
        mounter.mount(loop, staging, "xfs", List.of());
        long before = mounter.stats(staging).totalBytes();
        try (RandomAccessFile file = new RandomAccessFile(image.toFile(), "rw")) {
            file.setLength(400L << 20);
        }
        runner.runChecked(List.of("losetup", "-c", loop.toString()));
        assertEquals(400L << 20, mounter.blockDeviceSize(loop));
        mounter.resizeFilesystem(loop, staging, "xfs");
        FilesystemStats after = mounter.stats(staging);
        assertTrue(after.totalBytes() > before, before + " -> " + after.totalBytes());
        assertTrue(after.totalInodes() > 0);
        mounter.unmount(staging);
    }

    @Test
    void bindsARawDeviceOntoAFile() throws Exception {
        attachLoop(16L << 20);
        blockTarget = Files.createFile(dir.resolve("block"));
        mounter.bindMount(loop, blockTarget, false);
        assertTrue(mounter.isMountPoint(blockTarget));
        assertEquals(16L << 20, mounter.blockDeviceSize(blockTarget));
        mounter.unmount(blockTarget);
        assertFalse(mounter.isMountPoint(blockTarget));
    }
}
