package dev.stowage.engine.frontend.fuse;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Mount table helpers: finding a mount in /proc/self/mountinfo, unmounting, and aborting a FUSE
 * connection through /sys/fs/fuse/connections. Stateless and thread-safe.
 */
final class FuseMounts {
    private static final Logger log = LoggerFactory.getLogger(FuseMounts.class);
    private static final Path MOUNTINFO = Path.of("/proc/self/mountinfo");
    private static final Path CONNECTIONS = Path.of("/sys/fs/fuse/connections");

    private FuseMounts() {
    }

    /** The "major:minor" of the topmost mount on {@code mountpoint}, if something is mounted there. */
    static Optional<String> deviceOf(Path mountpoint) throws IOException {
        String wanted = mountpoint.toAbsolutePath().normalize().toString();
        String found = null;
        List<String> lines = Files.readAllLines(MOUNTINFO, StandardCharsets.UTF_8);
        for (String line : lines) {
            // id parent major:minor root mountpoint options ...
            String[] f = line.split(" ", 6);
            if (f.length >= 5 && unescape(f[4]).equals(wanted)) {
                found = f[2]; // later lines are mounted on top of earlier ones
            }
        }
        return Optional.ofNullable(found);
    }

    static boolean isMounted(Path mountpoint) throws IOException {
        return deviceOf(mountpoint).isPresent();
    }

    /** mountinfo escapes space, tab, newline and backslash as three octal digits. */
    static String unescape(String s) {
        if (s.indexOf('\\') < 0) {
            return s;
        }
        StringBuilder b = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\\' && i + 3 < s.length()
                    && s.substring(i + 1, i + 4).chars().allMatch(ch -> ch >= '0' && ch <= '7')) {
                b.append((char) Integer.parseInt(s.substring(i + 1, i + 4), 8));
                i += 3;
            } else {
                b.append(c);
            }
        }
        return b.toString();
    }

    /** Unmounts {@code mountpoint}; when busy, detaches it lazily. Errors are logged, not thrown. */
    static void unmount(Path mountpoint) {
        String path = mountpoint.toString();
        if (Native.LIBC.umount2(path, 0) == 0) {
            return;
        }
        int errno = Native.errno();
        if (errno == Native.EINVAL || errno == Native.ENOENT) {
            return; // not mounted (any more)
        }
        if (Native.LIBC.umount2(path, Native.MNT_DETACH) != 0) {
            int lazyErrno = Native.errno();
            if (lazyErrno != Native.EINVAL) {
                log.warn("lazy unmount of {} failed: {}", path, Native.describe(lazyErrno));
            }
        } else {
            log.info("unmount of {} was refused ({}), detached it lazily", path, Native.describe(errno));
        }
    }

    /**
     * Aborts the FUSE connection of the mount with device {@code majorMinor}: pending and future
     * requests fail with ENOTCONN, the server's reads return ENODEV. Does nothing when the
     * connection no longer exists.
     */
    static void abortConnection(String majorMinor) {
        String[] mm = majorMinor.split(":");
        long dev = (Long.parseLong(mm[0]) << 20) | Long.parseLong(mm[1]);
        Path abort = CONNECTIONS.resolve(Long.toString(dev)).resolve("abort");
        if (!Files.exists(abort)) {
            return;
        }
        try {
            Files.writeString(abort, "1");
            log.info("aborted FUSE connection {}", dev);
        } catch (IOException e) {
            log.warn("aborting FUSE connection {} failed: {}", dev, e.toString());
        }
    }
}
