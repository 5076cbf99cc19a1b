package dev.stowage.engine.storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The kernel boot a pool last ran in, kept in {@code <dataDir>/boot-id}: what a crash recovery
 * needs to know whether the page cache outlived the crash.
 *
 * <p>Why: a process killed in the middle of its work leaves every page it wrote in the page
 * cache, and the kernel still writes them to disk. A power loss or a kernel crash loses them, and
 * the pages of one file can reach the disk without those of another written before them: a
 * replica's generation page without the data it names (docs/replication.md, "Power loss"). The
 * kernel draws a new random boot id at every boot ({@code /proc/sys/kernel/random/boot_id}); a
 * recovery that finds the id it recorded unchanged knows its page cache was kept.
 *
 * <p>Unknown counts as lost: a pool without the file (created before it existed) or a kernel
 * without the id.
 */
final class BootRecord {
    static final String FILE_NAME = "boot-id";
    private static final Path KERNEL_BOOT_ID = Path.of("/proc/sys/kernel/random/boot_id");

    private final Path file;
    /** What the pool recorded, and this boot's id; null where unknown. */
    private final String recorded;
    private final String current;

    private BootRecord(Path dataDir) {
        this.file = dataDir.resolve(FILE_NAME);
        this.recorded = read(file);
        this.current = read(KERNEL_BOOT_ID);
    }

    /** Reads, once, the boot the pool in {@code dataDir} recorded and this boot's id. */
    static BootRecord of(Path dataDir) {
        return new BootRecord(dataDir);
    }

    /** Whether the pool last ran in this boot of the kernel. */
    boolean sameBoot() {
        return current != null && current.equals(recorded);
    }

    /** Records this boot, durably, unless it is recorded already. */
    void record() throws IOException {
        if (current != null && !sameBoot()) {
            DurableFiles.replace(file, ByteBuffer.wrap((current + "\n").getBytes(StandardCharsets.US_ASCII)));
        }
    }

    private static String read(Path p) {
        try {
            String s = Files.readString(p, StandardCharsets.US_ASCII).trim();
            return s.isEmpty() ? null : s;
        } catch (IOException e) {
            return null;
        }
    }
}
