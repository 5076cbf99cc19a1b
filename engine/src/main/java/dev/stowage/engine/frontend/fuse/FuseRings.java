package dev.stowage.engine.frontend.fuse;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * What the host offers for FUSE over io_uring: whether the fuse module lets connections use it
 * ({@code enable_uring}, off by default, writable by root) and how many queues the kernel makes
 * (one per possible CPU).
 */
final class FuseRings {
    private static final Path ENABLE = Path.of("/sys/module/fuse/parameters/enable_uring");
    private static final Path POSSIBLE_CPUS = Path.of("/sys/devices/system/cpu/possible");

    private FuseRings() {
    }

    /** Whether the fuse module accepts io_uring connections now (its parameter reads "Y"). */
    static boolean enabled() {
        try {
            return Files.readString(ENABLE).trim().equals("Y");
        } catch (IOException e) {
            return false; // no such parameter: a kernel without CONFIG_FUSE_IO_URING
        }
    }

    /**
     * Turns the fuse module's io_uring switch on (root only). A host-wide setting: it lets any FUSE
     * server on the host ask for io_uring, and changes nothing for servers that do not.
     */
    static boolean enable() {
        try {
            Files.writeString(ENABLE, "Y");
        } catch (IOException e) {
            return false;
        }
        return enabled();
    }

    /** Queues of an io_uring FUSE connection: one per possible CPU ("0-1" in the cpu list is 2). */
    static int queueCount() {
        try {
            return parseCpuList(Files.readString(POSSIBLE_CPUS));
        } catch (IOException | RuntimeException e) {
            return Runtime.getRuntime().availableProcessors();
        }
    }

    /** One more than the highest CPU number of a kernel cpu list such as "0-3,8,10-11". */
    static int parseCpuList(String list) {
        int highest = -1;
        for (String part : list.trim().split(",")) {
            String last = part.contains("-") ? part.substring(part.indexOf('-') + 1) : part;
            highest = Math.max(highest, Integer.parseInt(last.trim()));
        }
        if (highest < 0) {
            throw new IllegalArgumentException("empty cpu list");
        }
        return highest + 1;
    }
}
