package dev.stowage.engine.storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;

/**
 * Durability for the small files around the layers. Replaced whole ({@link #replace}): the new
 * content goes to a temporary sibling ({@code <name>.tmp}), is forced, renamed over the target, and
 * the directory is forced; a crash leaves the old content or the new one, never a mix, and a
 * leftover temporary file is harmless. Or written in place and handed to the device ahead of
 * another file's flush on the same file system ({@link #writeBackWithoutFlush}), which saves a
 * device cache flush.
 *
 * <p>Threading: callers serialise replacements of one file.
 */
public final class DurableFiles {
    private DurableFiles() {
    }

    /** The temporary sibling {@link #replace} writes first. */
    public static Path temporaryOf(Path target) {
        return target.resolveSibling(target.getFileName() + ".tmp");
    }

    /** Replaces {@code target} with {@code content}'s remaining bytes; durable when this returns. */
    public static void replace(Path target, ByteBuffer content) throws IOException {
        Path tmp = temporaryOf(target);
        try {
            try (FileChannel f = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                    StandardOpenOption.TRUNCATE_EXISTING)) {
                while (content.hasRemaining()) {
                    f.write(content);
                }
                f.force(true);
            }
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(tmp);
            throw e;
        }
        fsyncDirectory(target.getParent());
    }

    /**
     * Writes {@code channel}'s dirty pages in {@code [offset, offset+length)} to the device and
     * waits for them, without a device cache flush: they become durable with the next flush of
     * that device, for example another file's fdatasync on the same file system. Returns false,
     * having done nothing, where this cannot be done here (then force the file instead).
     */
    public static boolean writeBackWithoutFlush(FileChannel channel, long offset, long length) throws IOException {
        return PageCacheAdvice.writeBackAndWait(PageCacheAdvice.descriptor(channel), offset, length);
    }

    /** Whether {@code a} and {@code b} lie on one file system (the same {@code st_dev}); false if unknown. */
    public static boolean sameFileSystem(Path a, Path b) {
        try {
            Object da = Files.getAttribute(a, "unix:dev");
            return da != null && da.equals(Files.getAttribute(b, "unix:dev"));
        } catch (IOException | UnsupportedOperationException | IllegalArgumentException e) {
            return false;
        }
    }

    /** Makes the directory's entries (a creation, a rename, a removal) durable. */
    public static void fsyncDirectory(Path dir) throws IOException {
        try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
            ch.force(true);
        }
    }
}
