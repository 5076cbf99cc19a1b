package dev.stowage.engine.storage;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The readahead advice on layer files, observed through the page cache (mincore). */
class PageCacheAdviceTest {
    private static final int MIB = 1 << 20;

    @TempDir
    Path dir;

    @Test
    void aColdReadOfAnAdvisedFileCachesOnlyThePagesItAsksFor() throws IOException {
        Path file = dir.resolve("f");
        try (FileChannel w = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE,
                StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate(MIB);
            for (int i = 0; i < 8; i++) {
                w.write(b.clear(), (long) i * MIB);
            }
            w.force(true);
        }
        // Control: without the advice a cold 4 KiB read makes the kernel read ahead.
        boolean readAhead = coldReadThenCached(file, false);
        assumeTrue(readAhead, "this file system does not read ahead (or cannot drop its cache), nothing to turn off");
        assertFalse(coldReadThenCached(file, true), "with the advice only the page read is cached");
    }

    @Test
    void layerFilesAreAdvised() throws IOException {
        try (FileChannel c = FileChannel.open(dir.resolve("g"), StandardOpenOption.CREATE_NEW,
                StandardOpenOption.WRITE, StandardOpenOption.READ)) {
            assertTrue(PageCacheAdvice.random(c), "the kernel takes the advice on a plain file");
        }
    }

    /** Drops the file's cache, reads 4 KiB at 0, and tells whether [4 KiB, 16 KiB) got cached (an initial readahead window is at least 16 KiB). */
    private static boolean coldReadThenCached(Path file, boolean advise) throws IOException {
        try (FileChannel c = FileChannel.open(file, StandardOpenOption.READ)) {
            assertTrue(PageCacheAdvice.dropCache(c, 0, 0), "dropping the cache");
            var probe = c.map(FileChannel.MapMode.READ_ONLY, 4096, 3 * 4096);
            assertFalse(probe.isLoaded(), "cold after dropping the cache");
            if (advise) {
                assertTrue(PageCacheAdvice.random(c));
            }
            c.read(ByteBuffer.allocate(4096), 0);
            return probe.isLoaded();
        }
    }
}
