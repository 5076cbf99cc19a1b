package dev.stowage.engine.storage;

import static dev.stowage.engine.storage.StorageTestSupport.pattern;
import static dev.stowage.engine.storage.StorageTestSupport.read;
import static dev.stowage.engine.storage.StorageTestSupport.write;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import jnr.ffi.LibraryLoader;
import jnr.ffi.Memory;
import jnr.ffi.Pointer;
import jnr.ffi.Runtime;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Writes that a flush is expected to follow start their writeback at once
 * ({@link LayeredReplicaStore#EAGER_WRITEBACK_WRITES}): observed in the kernel's page cache
 * (cachestat) and in which writes the store chooses.
 */
class EagerWritebackTest {
    private static final int BS = ReplicaStore.BLOCK_SIZE;

    @TempDir
    Path dir;

    /** cachestat(2), Linux 6.5 and later: dirty and under-writeback page counts of a file. */
    public interface Syscalls {
        int syscall(long number, int fd, Pointer range, Pointer stat, int flags);
    }

    private static final long SYS_CACHESTAT = 451; // x86_64 and arm64 alike

    @Test
    void startedWritebackCleansThePageWhileAnUnstartedOneStaysDirty() throws Exception {
        assumeTrue("amd64".equals(System.getProperty("os.arch")) || "aarch64".equals(System.getProperty("os.arch")),
                "cachestat's number is known for x86_64 and arm64 only");
        Syscalls sys = LibraryLoader.create(Syscalls.class).load("c");
        try (FileChannel c = FileChannel.open(dir.resolve("f"), StandardOpenOption.CREATE_NEW,
                StandardOpenOption.WRITE, StandardOpenOption.READ)) {
            long far = 1 << 20; // own 4 KiB writes, far apart: never in one page-cache folio
            c.write(ByteBuffer.wrap(pattern(1, BS)), 0);
            c.write(ByteBuffer.wrap(pattern(1, BS)), far);
            c.force(false);
            int fd = PageCacheAdvice.descriptor(c);
            assumeTrue(fd >= 0, "no descriptor reachable: nothing to advise");
            assumeTrue(dirtyPages(sys, fd, 0) >= 0, "no cachestat(2) in this kernel");

            c.write(ByteBuffer.wrap(pattern(2, BS)), 0);
            c.write(ByteBuffer.wrap(pattern(3, BS)), far);
            assertEquals(1, dirtyPages(sys, fd, 0), "an overwritten page is dirty");
            assertEquals(1, dirtyPages(sys, fd, far));

            assertTrue(PageCacheAdvice.startWriteback(fd, 0, BS), "the kernel takes sync_file_range");
            long deadline = System.nanoTime() + 5_000_000_000L;
            while (dirtyPages(sys, fd, 0) != 0 && System.nanoTime() < deadline) {
                Thread.sleep(1);
            }
            assertEquals(0, dirtyPages(sys, fd, 0), "the started page was written back");
            // the kernel's own writeback waits dirty_expire_centisecs (30 s by default) for it
            assertEquals(1, dirtyPages(sys, fd, far), "the page nobody started stays dirty");
        }
    }

    @Test
    void onlyTheFirstWritesAfterAFlushStartTheirWriteback() throws IOException {
        try (FileStoragePool pool = FileStoragePool.open(dir)) {
            LayeredReplicaStore vol = (LayeredReplicaStore) pool.create("v", 1 << 20);
            Layer head = vol.head();
            try (FileChannel c = FileChannel.open(head.path(), StandardOpenOption.READ)) {
                assumeTrue(PageCacheAdvice.descriptor(c) >= 0, "no descriptor reachable: nothing to start");
            }
            int eager = LayeredReplicaStore.EAGER_WRITEBACK_WRITES;
            for (int i = 0; i < eager + 2; i++) {
                write(vol, (long) i * BS, pattern(i, BS));
            }
            assertEquals(0, head.writebacksStarted(), "no flush yet: nothing expected to follow the writes");

            vol.flush();
            for (int i = 0; i < eager + 2; i++) {
                write(vol, (long) i * BS + 100, pattern(10 + i, 100)); // partial blocks count alike
            }
            assertEquals(eager, head.writebacksStarted(), "the first writes after the flush, no more");

            vol.flush();
            write(vol, 0, pattern(20, BS));
            assertEquals(eager + 1, head.writebacksStarted());
            assertArrayEquals(pattern(20, BS), read(vol, 0, BS));
            byte[] expected = pattern(eager + 1, BS);
            System.arraycopy(pattern(10 + eager + 1, 100), 0, expected, 100, 100);
            assertArrayEquals(expected, read(vol, (long) (eager + 1) * BS, BS), "the data is what was written");
        }
    }

    /** Dirty pages in [offset, offset + 4 KiB), or -1 if the kernel has no cachestat. */
    private static long dirtyPages(Syscalls sys, int fd, long offset) {
        Runtime rt = Runtime.getSystemRuntime();
        Pointer range = Memory.allocateDirect(rt, 16);
        range.putLong(0, offset);
        range.putLong(8, BS);
        Pointer stat = Memory.allocateDirect(rt, 40);
        if (sys.syscall(SYS_CACHESTAT, fd, range, stat, 0) != 0) {
            return -1;
        }
        return stat.getLong(8) + stat.getLong(16); // dirty + under writeback
    }
}
