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

    /**
     * The one loop device already attached to {@code file}, taken over as it is (after a restart
     * of the process that attached it); empty if none or several are.
     */
    public static java.util.Optional<LoopDevice> existing(Path file) throws IOException {
        List<Entry> on = list().stream().filter(e -> e.isBackedBy(file)).toList();
        if (on.size() != 1) {
            return java.util.Optional.empty();
        }
        return java.util.Optional.of(new LoopDevice(on.get(0).device, file, on.get(0).directIo));
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
        List<Path> result = new ArrayList<>();
        for (Entry e : list()) {
            if (e.isBackedBy(file)) {
                result.add(e.device);
            }
        }
        return result;
    }

    /**
     * Detaches the loop devices left on {@code file} by a dead process that no mount refers to, and
     * leaves the others attached, recorded in {@code record}; returns how many it found, detached or
     * left. The devices looked at are
     * those backed by {@code file} and those {@code record} holds from earlier calls. A mount refers
     * to a device when it holds the file system on it, or when it is a bind mount of its device node
     * (a raw block volume published into a pod).
     *
     * <p>Why not detach those too: a bind mount of {@code /dev/loopN} names the device by number
     * and does not keep it open. Once detached, the number goes to the next volume attached on this
     * host, and a pod still holding the old publication (after a kill -9 of the node, until the
     * orchestrator unpublishes it) would read and write that other volume. Left attached to a dead
     * FUSE file, the device fails every I/O instead; a later call, once the mounts are gone, detaches it.
     *
     * <p>Why the record: once the dead FUSE mount is detached the kernel names these devices' file
     * "/", so the path no longer finds them. The record keeps each one's name and its backing file
     * system's device number, which no other device can have while this one holds that file system.
     */
    public static int detachUnreferenced(Path file, Path record) throws IOException {
        java.util.Set<String> recorded = new java.util.HashSet<>();
        if (Files.exists(record)) {
            for (String line : Files.readAllLines(record)) {
                recorded.add(line.strip());
            }
        }
        List<Entry> kept = new ArrayList<>();
        int found = 0;
        for (Entry e : list()) {
            if (e.isBackedBy(file) || recorded.contains(e.device + " " + e.backingDevice)) {
                found++;
                if (isReferencedByMount(e.device)) {
                    kept.add(e);
                } else {
                    detachStale(e.device, file);
                }
            }
        }
        if (kept.isEmpty()) {
            Files.deleteIfExists(record);
            return found;
        }
        StringBuilder lines = new StringBuilder();
        for (Entry e : kept) {
            lines.append(e.device).append(' ').append(e.backingDevice).append('\n');
        }
        Path temp = record.resolveSibling(record.getFileName() + ".tmp");
        Files.writeString(temp, lines.toString());
        Files.move(temp, record, java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        log.info("stale loop devices {} of {} stay attached while mounts refer to them",
                kept.stream().map(Entry::device).toList(), file);
        return found;
    }

    /**
     * Whether a mount in this process's mount table holds the file system on {@code device} or is a
     * bind mount of its device node (a mount of devtmpfs whose root is the node's name).
     */
    static boolean isReferencedByMount(Path device) throws IOException {
        String name = device.getFileName().toString();
        String number = readQuietly(Path.of("/sys/block", name, "dev"));
        for (String line : Files.readAllLines(Path.of("/proc/self/mountinfo"))) {
            String[] f = line.split(" ");
            int dash = line.indexOf(" - ");
            String fsType = dash < 0 ? "" : line.substring(dash + 3).split(" ", 2)[0];
            if (f.length > 4 && ((number != null && f[2].equals(number.strip()))
                    || (fsType.equals("devtmpfs") && f[3].equals("/" + name)))) {
                return true;
            }
        }
        return false;
    }

    /**
     * {@code losetup -d} of a device left by a dead process, waiting for the kernel to let go of the
     * file unless it deferred the detach because a process still has the device open.
     */
    private static void detachStale(Path device, Path file) throws IOException {
        Tool.run(TIMEOUT, List.of("losetup", "-d", device.toString()));
        if (detachDeferred(device, file)) {
            log.info("stale loop device {} on {} is still open: the kernel detaches it when its last"
                    + " user lets go", device, file);
            return;
        }
        log.info("detached stale loop device {} from {}", device, file);
        awaitReleased(device, file);
    }

    /** Whether {@code losetup -d} left {@code device} bound to {@code file} with autoclear set, as it does to a device in use. */
    private static boolean detachDeferred(Path device, Path file) {
        String autoclear = readQuietly(sysLoop(device).resolve("autoclear"));
        return stillBacks(device, file) && autoclear != null && autoclear.strip().equals("1");
    }

    /** Whether the kernel still has {@code device} bound to {@code file}, by its record of the path. */
    private static boolean stillBacks(Path device, Path file) {
        String backing = readQuietly(sysLoop(device).resolve("backing_file"));
        return backing != null && backing.strip().startsWith(file.toAbsolutePath().normalize().toString());
    }

    private static Path sysLoop(Path device) {
        return Path.of("/sys/block", device.getFileName().toString(), "loop");
    }

    private static void awaitReleased(Path device, Path file) throws IOException {
        long deadline = System.nanoTime() + RELEASE_TIMEOUT_NANOS;
        while (true) {
            if (!stillBacks(device, file)) {
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

    private record Entry(Path device, boolean directIo, String backingDevice, String backingFile) {
        boolean isBackedBy(Path file) {
            String wanted = file.toAbsolutePath().normalize().toString();
            return backingFile.equals(wanted) || backingFile.equals(wanted + " (deleted)");
        }
    }

    /** Parses {@code losetup --list --raw}: fields separated by spaces, bytes escaped as \xNN. */
    private static List<Entry> list() throws IOException {
        String out = Tool.run(TIMEOUT, List.of("losetup", "--list", "--raw", "--noheadings",
                "--output", "NAME,DIO,BACK-MAJ:MIN,BACK-FILE"));
        List<Entry> entries = new ArrayList<>();
        for (String line : out.split("\n")) {
            String[] f = line.strip().split(" ", 4);
            if (f.length == 4) {
                entries.add(new Entry(Path.of(f[0]), f[1].equals("1"), unescape(f[2]).strip(), unescape(f[3])));
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
