package dev.stowage.engine.storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;

/**
 * Small files replaced whole and durably: the new content goes to a temporary sibling
 * ({@code <name>.tmp}), is forced, renamed over the target, and the directory is forced. A crash
 * leaves the old content or the new one, never a mix; a leftover temporary file is harmless.
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

    /** Makes the directory's entries (a creation, a rename, a removal) durable. */
    public static void fsyncDirectory(Path dir) throws IOException {
        try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
            ch.force(true);
        }
    }
}
