package dev.stowage.engine.frontend.loop;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A loop device (/dev/loopN) over a file, managed with the real {@code losetup} (util-linux).
 * Sector size is 4096 bytes.
 *
 * <p>Direct I/O: when asked for, the device is attached with {@code --direct-io=on} and
 * {@code losetup --list} is checked; if the kernel refused it (the backing file system cannot do
 * O_DIRECT at that alignment) the device stays in buffered mode, which is logged and reported by
 * {@link #directIo()}.
 *
 * <p>Threading: instances are thread-safe; {@link #detach} is idempotent. Errors of the tool are
 * IOExceptions whose message holds the command line and the tool's standard error.
 */
public final class LoopDevice {
    private static final Logger log = LoggerFactory.getLogger(LoopDevice.class);
    private static final Duration TIMEOUT = Duration.ofSeconds(30);
    private static final long RELEASE_TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(10);

    private final Path device;
    private final Path backingFile;
    private final boolean directIo;
    private boolean detached;

    private LoopDevice(Path device, Path backingFile, boolean directIo) {
        this.device = device;
        this.backingFile = backingFile;
        this.directIo = directIo;
    }

    /**
     * Attaches the first free loop device to {@code file}. Blocks until losetup returns (it opens
     * the file, which for a FUSE file needs the FUSE server running).
     */
    public static LoopDevice attach(Path file, boolean directIo, boolean readOnly) throws IOException {
        List<String> cmd = new ArrayList<>(List.of("losetup", "--find", "--show"));
        if (directIo) {
            cmd.add("--direct-io=on");
        }
        if (readOnly) {
            cmd.add("--read-only");
        }
        cmd.addAll(List.of("--sector-size", "4096", file.toString()));
        String out = Tool.run(TIMEOUT, cmd).strip();
        if (!out.startsWith("/dev/loop")) {
            throw new IOException("losetup printed no device for " + file + ": '" + out + "'");
        }
        Path device = Path.of(out);
        boolean dio = false;
        try {
            dio = list().stream().anyMatch(e -> e.device.equals(device) && e.directIo);
        } catch (IOException e) {
            detachQuietly(device);
            throw e;
        }
        if (directIo && !dio) {
            log.warn("kernel refused direct I/O for {} on {}; using buffered I/O", device, file);
        }
        return new LoopDevice(device, file, dio);
    }

    public Path device() {
        return device;
    }

    public Path backingFile() {
        return backingFile;
    }

    /** Whether the device really does direct I/O on its backing file. */
    public boolean directIo() {
        return directIo;
    }

    /** Re-reads the backing file's size (losetup --set-capacity), after the file grew. */
    public synchronized void refreshSize() throws IOException {
        if (detached) {
            throw new IOException("loop device " + device + " is detached");
        }
        Tool.run(TIMEOUT, List.of("losetup", "--set-capacity", device.toString()));
    }

    /**
     * Detaches the device (losetup -d) and waits until the kernel let go of the backing file, so
     * that the file's file system can be unmounted afterwards. Idempotent.
     */
    public synchronized void detach() throws IOException {
        if (detached) {
            return;
        }
        Tool.run(TIMEOUT, List.of("losetup", "-d", device.toString()));
        detached = true;
        awaitReleased(device, backingFile);
    }

    /** Loop devices whose backing file is {@code file} (by path, without touching the file). */
    public static List<Path> devicesBackedBy(Path file) throws IOException {
        String wanted = file.toAbsolutePath().normalize().toString();
        List<Path> result = new ArrayList<>();
        for (Entry e : list()) {
            if (e.backingFile.equals(wanted) || e.backingFile.equals(wanted + " (deleted)")) {
                result.add(e.device);
            }
        }
        return result;
    }

    /**
     * Detaches every loop device backed by {@code file}; for a file on a dead FUSE mount too,
     * since the devices are found through the kernel's record of the path, not by stat.
     *
     * <p>A device still in use (after a crash: the file system an orchestrator staged on it is
     * mounted until it unstages the volume) cannot go now. The kernel then marks it to detach itself
     * when its last user lets go (autoclear), and it is not waited for: the file system on it already
     * fails every I/O, and waiting would only hold up the caller (a restarting node took 10 s per
     * such volume). Returns the devices left to the kernel that way.
     */
    public static List<Path> detachAll(Path file) throws IOException {
        List<Path> deferred = new ArrayList<>();
        for (Path device : devicesBackedBy(file)) {
            Tool.run(TIMEOUT, List.of("losetup", "-d", device.toString()));
            if (detachDeferred(device, file)) {
                log.info("stale loop device {} on {} is still in use (a file system mounted on it?):"
                        + " the kernel detaches it when its last user lets go", device, file);
                deferred.add(device);
            } else {
                log.info("detached stale loop device {} from {}", device, file);
                awaitReleased(device, file);
            }
        }
        return deferred;
    }

    /** Whether {@code losetup -d} left {@code device} bound to {@code file} with autoclear set, as it does to a device in use. */
    private static boolean detachDeferred(Path device, Path file) {
        Path sys = Path.of("/sys/block", device.getFileName().toString(), "loop");
        String backing = readQuietly(sys.resolve("backing_file"));
        String autoclear = readQuietly(sys.resolve("autoclear"));
        return backing != null && backing.strip().startsWith(file.toAbsolutePath().normalize().toString())
                && autoclear != null && autoclear.strip().equals("1");
    }

    private static void awaitReleased(Path device, Path file) throws IOException {
        long deadline = System.nanoTime() + RELEASE_TIMEOUT_NANOS;
        Path sysBacking = Path.of("/sys/block", device.getFileName().toString(), "loop", "backing_file");
        String wanted = file.toAbsolutePath().normalize().toString();
        while (true) {
            String current = readQuietly(sysBacking);
            if (current == null || !current.strip().startsWith(wanted)) {
                return;
            }
            if (System.nanoTime() > deadline) {
                throw new IOException(device + " still holds " + file + " after losetup -d (still open by someone?)");
            }
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(10));
        }
    }

    private static String readQuietly(Path p) {
        try {
            return Files.readString(p);
        } catch (IOException e) {
            return null;
        }
    }

    private static void detachQuietly(Path device) {
        try {
            Tool.run(TIMEOUT, List.of("losetup", "-d", device.toString()));
        } catch (IOException e) {
            log.warn("detaching {} failed: {}", device, e.getMessage());
        }
    }

    private record Entry(Path device, boolean directIo, String backingFile) {
    }

    /** Parses {@code losetup --list --raw}: fields separated by spaces, bytes escaped as \xNN. */
    private static List<Entry> list() throws IOException {
        String out = Tool.run(TIMEOUT, List.of("losetup", "--list", "--raw", "--noheadings",
                "--output", "NAME,DIO,BACK-FILE"));
        List<Entry> entries = new ArrayList<>();
        for (String line : out.split("\n")) {
            String[] f = line.strip().split(" ", 3);
            if (f.length == 3) {
                entries.add(new Entry(Path.of(f[0]), f[1].equals("1"), unescape(f[2])));
            }
        }
        return entries;
    }

    static String unescape(String s) {
        if (!s.contains("\\x")) {
            return s;
        }
        java.io.ByteArrayOutputStream b = new java.io.ByteArrayOutputStream();
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\\' && i + 3 < s.length() && s.charAt(i + 1) == 'x') {
                b.write(Integer.parseInt(s.substring(i + 2, i + 4), 16));
                i += 3;
            } else {
                b.writeBytes(String.valueOf(c).getBytes(java.nio.charset.StandardCharsets.UTF_8));
            }
        }
        return b.toString(java.nio.charset.StandardCharsets.UTF_8);
    }

    @Override
    public String toString() {
        return device + " on " + backingFile + (directIo ? " (direct I/O)" : " (buffered)");
    }
}
