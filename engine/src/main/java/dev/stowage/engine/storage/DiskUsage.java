package dev.stowage.engine.storage;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import jnr.ffi.LibraryLoader;
import jnr.ffi.Memory;
import jnr.ffi.Platform;
import jnr.ffi.Pointer;
import jnr.ffi.Runtime;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Bytes a (sparse) file really occupies on disk: {@code st_blocks * 512} from stat(2). Java's file
 * attribute views do not expose st_blocks, so this calls libc through jnr-ffi. On platforms where
 * the {@code struct stat} layout is not known, it falls back to the file's logical size.
 */
final class DiskUsage {
    private static final Logger LOG = LoggerFactory.getLogger(DiskUsage.class);

    /** Offset of st_blocks in struct stat: 64 on both x86_64 and aarch64 Linux (glibc). */
    private static final int ST_BLOCKS_OFFSET = 64;
    private static final int STAT_SIZE = 256;

    public interface LibC {
        int stat(String path, Pointer buf);
    }

    private static final LibC LIBC = load();

    private DiskUsage() {}

    private static LibC load() {
        try {
            Platform p = Platform.getNativePlatform();
            if (p.getOS() != Platform.OS.LINUX
                    || (p.getCPU() != Platform.CPU.X86_64 && p.getCPU() != Platform.CPU.AARCH64)) {
                LOG.warn("allocated bytes are reported as logical sizes on {} {}", p.getOS(), p.getCPU());
                return null;
            }
            return LibraryLoader.create(LibC.class).load("c");
        } catch (RuntimeException | LinkageError e) {
            LOG.warn("stat(2) unavailable through jnr-ffi, reporting logical sizes: {}", e.toString());
            return null;
        }
    }

    /** Bytes allocated on disk for {@code file}. */
    static long allocatedBytes(Path file) throws IOException {
        if (LIBC == null) {
            return Files.size(file);
        }
        Pointer buf = Memory.allocate(Runtime.getRuntime(LIBC), STAT_SIZE);
        if (LIBC.stat(file.toString(), buf) != 0) {
            if (!Files.exists(file)) {
                throw new NoSuchFileException(file.toString());
            }
            throw new IOException("stat failed for " + file + ": errno "
                    + Runtime.getRuntime(LIBC).getLastError());
        }
        return buf.getLong(ST_BLOCKS_OFFSET) * 512L;
    }
}
