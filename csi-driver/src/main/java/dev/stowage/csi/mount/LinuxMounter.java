package dev.stowage.csi.mount;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@link Mounter} that runs the host's tools: {@code mount}/{@code umount}, {@code blkid -p},
 * {@code mkfs.ext4}/{@code mkfs.xfs}, {@code resize2fs}/{@code xfs_growfs}, {@code stat -f} and
 * {@code blockdev}. Mount points are read from {@code /proc/self/mountinfo}. Needs root (or the
 * capabilities of the CSI node plugin).
 *
 * <p>Safety: {@link #format} is only ever called after {@link #probeFilesystem} found nothing; the xfs
 * formatter is run without {@code -f} so it refuses a device that holds a filesystem, and a device
 * that carries a partition table is reported as holding one ({@code ptable:<type>}).
 *
 * <p>Threading: thread-safe; every call blocks on a child process bounded by the configured timeout.
 */
public final class LinuxMounter implements Mounter {
    private static final Logger LOG = LoggerFactory.getLogger(LinuxMounter.class);
    private static final Set<String> FORMATTABLE = Set.of("ext4", "xfs");
    /** blkid's exit status when it found no signature on the device. */
    private static final int BLKID_NOTHING_FOUND = 2;

    private final CommandRunner runner;
    private final Path mountInfo;

    /** A mounter whose commands are killed after {@code timeout}. */
    public LinuxMounter(Duration timeout) {
        this(timeout, Path.of("/proc/self/mountinfo"));
    }

    /** A mounter with a two-minute command timeout (mkfs of a large volume takes a while). */
    public LinuxMounter() {
        this(Duration.ofMinutes(2));
    }

    LinuxMounter(Duration timeout, Path mountInfo) {
        this.runner = new CommandRunner(timeout);
        this.mountInfo = mountInfo;
    }

    @Override
    public boolean isMountPoint(Path path) {
        return !devicesMountedAt(path).isEmpty();
    }

    @Override
    public boolean isMountOf(Path path, Path device) {
        String wanted;
        try {
            wanted = deviceNumber((long) Files.getAttribute(device, "unix:rdev"));
        } catch (NoSuchFileException e) {
            return false;
        } catch (IOException | UnsupportedOperationException e) {
            throw new MountException("cannot stat " + device + ": " + e.getMessage(), e);
        }
        return devicesMountedAt(path).contains(wanted);
    }

    /**
     * The device numbers ("major:minor", mountinfo's third field) of the mounts at {@code path}, in
     * mount order; empty when nothing is mounted there or the path does not exist.
     */
    private List<String> devicesMountedAt(Path path) {
        Path real;
        try {
            real = path.toRealPath();
        } catch (NoSuchFileException e) {
            return List.of();
        } catch (IOException e) {
            throw new MountException("cannot resolve " + path + ": " + e.getMessage(), e);
        }
        List<String> devices = new ArrayList<>();
        try {
            for (String line : Files.readAllLines(mountInfo, StandardCharsets.UTF_8)) {
                String mountPoint = mountPointOf(line);
                if (mountPoint != null && Path.of(mountPoint).equals(real)) {
                    devices.add(line.split(" ")[2]);
                }
            }
        } catch (IOException e) {
            throw new MountException("cannot read " + mountInfo + ": " + e.getMessage(), e);
        }
        return devices;
    }

    /** "major:minor" of a device number as stat's st_rdev holds it (glibc's encoding), as mountinfo writes it. */
    static String deviceNumber(long rdev) {
        long major = ((rdev >>> 8) & 0xfffL) | ((rdev >>> 32) & 0xfffff000L);
        long minor = (rdev & 0xffL) | ((rdev >>> 12) & 0xffffff00L);
        return major + ":" + minor;
    }

    /** The fifth field of a mountinfo line, with the kernel's octal escapes (\040 etc.) decoded. */
    static String mountPointOf(String mountInfoLine) {
        String[] fields = mountInfoLine.split(" ");
        return fields.length < 5 ? null : unescape(fields[4]);
    }

    static String unescape(String field) {
        StringBuilder out = new StringBuilder(field.length());
        for (int i = 0; i < field.length(); i++) {
            char c = field.charAt(i);
            if (c == '\\' && isOctal(field, i + 1)) {
                out.append((char) Integer.parseInt(field.substring(i + 1, i + 4), 8));
                i += 3;
            } else {
                out.append(c);
            }
        }
        return out.toString();
    }

    private static boolean isOctal(String s, int from) {
        if (from + 3 > s.length()) {
            return false;
        }
        for (int i = from; i < from + 3; i++) {
            if (s.charAt(i) < '0' || s.charAt(i) > '7') {
                return false;
            }
        }
        return true;
    }

    @Override
    public void mount(Path source, Path target, String fsType, List<String> options) {
        List<String> command = new ArrayList<>(List.of("mount", "-t", fsType));
        if (!options.isEmpty()) {
            command.add("-o");
            command.add(String.join(",", options));
        }
        command.add(source.toString());
        command.add(target.toString());
        runner.runChecked(command);
        LOG.info("mounted {} ({}) at {} with options {}", source, fsType, target, options);
    }

    @Override
    public void bindMount(Path source, Path target, boolean readOnly) {
        runner.runChecked(List.of("mount", "--bind", source.toString(), target.toString()));
        if (readOnly) {
            try {
                runner.runChecked(List.of("mount", "-o", "remount,bind,ro", target.toString()));
            } catch (MountException e) {
                try {
                    unmount(target);
                } catch (MountException undo) {
                    e.addSuppressed(undo);
                }
                throw e;
            }
        }
        LOG.info("bind-mounted {} at {}{}", source, target, readOnly ? " read-only" : "");
    }

    @Override
    public void unmount(Path target) {
        runner.runChecked(List.of("umount", target.toString()));
        LOG.info("unmounted {}", target);
    }

    @Override
    public void format(Path device, String fsType) {
        if (!FORMATTABLE.contains(fsType)) {
            throw new MountException("cannot create a filesystem of type " + fsType + ": only ext4 and xfs are supported");
        }
        List<String> command = fsType.equals("ext4")
                ? List.of("mkfs.ext4", "-F", "-q", device.toString())
                : List.of("mkfs.xfs", "-q", device.toString());
        runner.runChecked(command);
        LOG.info("created an {} filesystem on {}", fsType, device);
    }

    @Override
    public Optional<String> probeFilesystem(Path device) {
        List<String> command = List.of("blkid", "-p", "-o", "export", device.toString());
        CommandRunner.Result result = runner.run(command);
        if (result.exitCode() == BLKID_NOTHING_FOUND) {
            return Optional.empty();
        }
        if (result.exitCode() != 0) {
            throw CommandRunner.failure(command, result);
        }
        Map<String, String> values = parseExport(result.stdout());
        if (values.containsKey("TYPE")) {
            return Optional.of(values.get("TYPE"));
        }
        if (values.containsKey("PTTYPE")) {
            return Optional.of("ptable:" + values.get("PTTYPE"));
        }
        // Some other signature blkid recognised (e.g. a RAID member): never treat it as blank.
        return Optional.of(values.getOrDefault("USAGE", "unknown"));
    }

    static Map<String, String> parseExport(String output) {
        Map<String, String> values = new HashMap<>();
        for (String line : output.split("\n")) {
            int eq = line.indexOf('=');
            if (eq > 0) {
                values.put(line.substring(0, eq).trim(), line.substring(eq + 1).trim());
            }
        }
        return values;
    }

    @Override
    public void resizeFilesystem(Path device, Path mountPath, String fsType) {
        switch (fsType) {
            case "ext4", "ext3", "ext2" -> runner.runChecked(List.of("resize2fs", device.toString()));
            case "xfs" -> runner.runChecked(List.of("xfs_growfs", mountPath.toString()));
            default -> throw new MountException("cannot grow a filesystem of type " + fsType);
        }
        LOG.info("grew the {} filesystem on {} mounted at {}", fsType, device, mountPath);
    }

    @Override
    public FilesystemStats stats(Path path) {
        // %S fundamental block size, %b total blocks, %f free blocks, %a blocks available to users,
        // %c total inodes, %d free inodes.
        List<String> command = List.of("stat", "-f", "-c", "%S %b %f %a %c %d", path.toString());
        String[] f = runner.runChecked(command).stdout().split("\\s+");
        if (f.length != 6) {
            throw new MountException("unexpected output of stat -f for " + path);
        }
        long blockSize = Long.parseLong(f[0]);
        long total = Long.parseLong(f[1]);
        long free = Long.parseLong(f[2]);
        long available = Long.parseLong(f[3]);
        long inodes = Long.parseLong(f[4]);
        long freeInodes = Long.parseLong(f[5]);
        return new FilesystemStats(total * blockSize, available * blockSize, (total - free) * blockSize,
                inodes, freeInodes, Math.max(0, inodes - freeInodes));
    }

    @Override
    public long blockDeviceSize(Path device) {
        String out = runner.runChecked(List.of("blockdev", "--getsize64", device.toString())).stdout();
        try {
            return Long.parseLong(out.trim());
        } catch (NumberFormatException e) {
            throw new MountException("unexpected output of blockdev --getsize64 for " + device + ": " + out);
        }
    }
}
