package dev.stowage.csi.mount;

import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Runs the real tools on image files in a temp dir: everything here works without root (mkfs and blkid
 * accept regular files; nothing is mounted).
 */
class LinuxMounterTest {
    @TempDir
    Path dir;

    @Test
    void readsMountPointsFromMountinfoWithEscapes() throws Exception {
        Path withSpace = Files.createDirectories(dir.resolve("my dir"));
        Path plain = Files.createDirectories(dir.resolve("plain"));
        Path mountInfo = dir.resolve("mountinfo");
        Files.writeString(mountInfo, String.join("\n",
                "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
                "97 22 7:3 / " + withSpace.toString().replace(" ", "\\040") + " rw,relatime shared:50 - ext4 /dev/loop3 rw",
                ""));
        LinuxMounter mounter = new LinuxMounter(Duration.ofSeconds(30), mountInfo);
        assertTrue(mounter.isMountPoint(withSpace));
        assertTrue(mounter.isMountPoint(withSpace.resolve("../my dir")));
        assertFalse(mounter.isMountPoint(plain));
        assertFalse(mounter.isMountPoint(dir.resolve("missing")));
        assertTrue(mounter.isMountPoint(Path.of("/")));
    }

    @Test
    void decodesDeviceNumbersAsMountinfoWritesThem() {
        assertEquals("7:1", LinuxMounter.deviceNumber(0x701L));
        assertEquals("259:0", LinuxMounter.deviceNumber(0x10300L));
        // minor numbers past 255 and majors past 4095 use glibc's split encoding
        assertEquals("7:300", LinuxMounter.deviceNumber((300L & 0xff) | (7L << 8) | ((300L & ~0xffL) << 12)));
        assertEquals("5000:2", LinuxMounter.deviceNumber(2L | ((5000L & 0xfff) << 8) | ((5000L & ~0xfffL) << 32)));
    }

    @Test
    void theRealMountTableKnowsTheRoot() {
        assertTrue(new LinuxMounter().isMountPoint(Path.of("/")));
    }

    @Test
    void probesFormatsOnlyBlankImagesAndNeverReformats() throws Exception {
        Path image = dir.resolve("disk.img");
        try (RandomAccessFile file = new RandomAccessFile(image.toFile(), "rw")) {
            file.setLength(32L << 20);
        }
        LinuxMounter mounter = new LinuxMounter(Duration.ofSeconds(60));
        assertEquals(Optional.empty(), mounter.probeFilesystem(image));
        mounter.format(image, "ext4");
        assertEquals(Optional.of("ext4"), mounter.probeFilesystem(image));
        // mkfs.xfs without -f refuses to overwrite an existing filesystem, and says why.
        MountException e = assertThrows(MountException.class, () -> mounter.format(image, "xfs"));
        assertTrue(e.getMessage().startsWith("mkfs.xfs -q " + image + " failed with exit status"), e.getMessage());
        assertEquals(Optional.of("ext4"), mounter.probeFilesystem(image));
        assertThrows(MountException.class, () -> mounter.format(image, "btrfs"));
    }

    @Test
    void reportsStatsOfAFilesystem() {
        FilesystemStats stats = new LinuxMounter().stats(dir);
        assertTrue(stats.totalBytes() > 0);
        assertTrue(stats.availableBytes() <= stats.totalBytes());
        assertTrue(stats.usedBytes() >= 0 && stats.usedBytes() <= stats.totalBytes());
    }

    @Test
    void failedCommandsCarryTheirStderr() {
        MountException e = assertThrows(MountException.class,
                () -> new LinuxMounter().stats(dir.resolve("missing")));
        assertTrue(e.getMessage().contains("failed with exit status 1"), e.getMessage());
        assertTrue(e.getMessage().contains("No such file or directory"), e.getMessage());
    }

    @Test
    void commandsThatOutliveTheirDeadlineAreKilled() {
        CommandRunner runner = new CommandRunner(Duration.ofMillis(200));
        MountException e = assertThrows(MountException.class, () -> runner.run(List.of("sleep", "30")));
        assertTrue(e.getMessage().contains("did not finish"), e.getMessage());
    }

    @Test
    void parsesBlkidExportOutput() {
        assertEquals(Map.of("TYPE", "xfs", "UUID", "1-2"), LinuxMounter.parseExport("UUID=1-2\nTYPE=xfs\n"));
        assertEquals("/a b", LinuxMounter.unescape("/a\\040b"));
        assertEquals("/a\\b", LinuxMounter.unescape("/a\\b"));
    }
}
