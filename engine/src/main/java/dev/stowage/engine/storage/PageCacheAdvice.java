package dev.stowage.engine.storage;

import java.io.FileDescriptor;
import java.io.IOException;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import jnr.ffi.LibraryLoader;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * posix_fadvise for the layer files, whose page cache must hold small folios only; madvise to
 * drop the private copies of checksum table pages once they are written back; sync_file_range to
 * start the writeback of a write that a flush will soon wait for.
 *
 * <p>Why: ext4 walks every 4 KiB buffer of a page-cache folio on each write into it, so a 4 KiB
 * write into a 2 MiB folio costs 512 steps. Readahead builds large folios: after a cold sequential
 * read of a volume, random 4 KiB writes ran at 19,969 IOPS instead of 94,453. {@link #random}
 * turns readahead off for one open file (the kernel then caches exactly the pages a read asks
 * for, in 4 KiB folios); {@link Layer#writeData} keeps writes small for the same reason.
 *
 * <p>The advice is an optimisation only: where the descriptor or libc cannot be reached it is
 * skipped (logged once) and everything else works as before.
 */
final class PageCacheAdvice {
    private static final Logger LOG = LoggerFactory.getLogger(PageCacheAdvice.class);
    static final int POSIX_FADV_RANDOM = 1;
    static final int POSIX_FADV_DONTNEED = 4;
    static final int MADV_DONTNEED = 4;
    static final int SYNC_FILE_RANGE_WAIT_BEFORE = 1;
    static final int SYNC_FILE_RANGE_WRITE = 2;
    static final int SYNC_FILE_RANGE_WAIT_AFTER = 4;

    /** The libc calls this needs; public only because jnr-ffi implements it in another loader. */
    public interface Libc {
        int posix_fadvise(int fd, long offset, long len, int advice);

        int madvise(long address, long length, int advice);

        int sync_file_range(int fd, long offset, long nbytes, int flags);
    }

    private static final Libc LIBC;
    /** Where a direct buffer keeps its address ({@code java.nio.Buffer.address}). */
    private static final long BUFFER_ADDRESS_OFFSET;
    private static final Method GET_LONG = SunUnsafe.method("getLong", Object.class, long.class);
    private static final long CHANNEL_FD_OFFSET;
    private static final long DESCRIPTOR_FD_OFFSET;
    private static final Method GET_OBJECT = SunUnsafe.method("getObject", Object.class, long.class);
    private static final Method GET_INT = SunUnsafe.method("getInt", Object.class, long.class);

    static {
        Libc libc = null;
        long channelOffset = -1;
        long descriptorOffset = -1;
        long addressOffset = -1;
        try {
            Method fieldOffset = SunUnsafe.method("objectFieldOffset", Field.class);
            if (fieldOffset == null || GET_OBJECT == null || GET_INT == null) {
                throw new UnsupportedOperationException("sun.misc.Unsafe is not available");
            }
            // FileChannelImpl keeps its descriptor in "fd" and FileDescriptor its number in "fd"
            Class<?> impl = Class.forName("sun.nio.ch.FileChannelImpl");
            channelOffset = (long) fieldOffset.invoke(SunUnsafe.INSTANCE, impl.getDeclaredField("fd"));
            descriptorOffset = (long) fieldOffset.invoke(SunUnsafe.INSTANCE, FileDescriptor.class.getDeclaredField("fd"));
            addressOffset = (long) fieldOffset.invoke(SunUnsafe.INSTANCE, java.nio.Buffer.class.getDeclaredField("address"));
            libc = LibraryLoader.create(Libc.class).load("c");
        } catch (ReflectiveOperationException | RuntimeException | LinkageError e) {
            LOG.info("page-cache advice unavailable ({}); layer files keep the kernel's default readahead", e.toString());
            libc = null;
        }
        LIBC = libc;
        CHANNEL_FD_OFFSET = channelOffset;
        DESCRIPTOR_FD_OFFSET = descriptorOffset;
        BUFFER_ADDRESS_OFFSET = addressOffset;
    }

    private PageCacheAdvice() {
    }

    /** Turns readahead off for {@code channel}'s open file; returns whether the kernel took the advice. */
    static boolean random(FileChannel channel) {
        return advise(channel, 0, 0, POSIX_FADV_RANDOM);
    }

    /** Drops the clean cached pages of a range (tests use it to start cold). */
    static boolean dropCache(FileChannel channel, long offset, long length) {
        return advise(channel, offset, length, POSIX_FADV_DONTNEED);
    }

    /**
     * Drops the private (copy-on-write) pages of {@code length} bytes at {@code offset} of a
     * private file mapping: later reads see the file's content again. {@code offset} and
     * {@code length} are multiples of 4 KiB. Returns whether the kernel dropped them.
     */
    static boolean dropPrivatePages(MappedByteBuffer mapping, int offset, int length) {
        if (LIBC == null || GET_LONG == null) {
            return false;
        }
        try {
            long address = (long) GET_LONG.invoke(SunUnsafe.INSTANCE, mapping, BUFFER_ADDRESS_OFFSET);
            return address != 0 && LIBC.madvise(address + offset, length, MADV_DONTNEED) == 0;
        } catch (ReflectiveOperationException | RuntimeException e) {
            return false;
        }
    }

    /**
     * Starts writing back the dirty pages of a range without waiting for them (pages already being
     * written back are skipped, not waited for). {@code fd} is from {@link #descriptor}; returns
     * whether the kernel took the call.
     */
    static boolean startWriteback(int fd, long offset, long length) {
        return fd >= 0 && LIBC != null && LIBC.sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE) == 0;
    }

    /**
     * Writes the dirty pages of a range to the device and waits until it took them, without
     * flushing the device's cache: they are durable only after a later device flush on the same
     * device. Returns false, having done nothing, where the call cannot be made ({@code fd} -1, no
     * libc), so that the caller can force the file instead.
     *
     * @throws IOException if the kernel reports a failed writeback of the range
     */
    static boolean writeBackAndWait(int fd, long offset, long length) throws IOException {
        if (fd < 0 || LIBC == null) {
            return false;
        }
        if (LIBC.sync_file_range(fd, offset, length,
                SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) != 0) {
            int errno = jnr.ffi.LastError.getLastError(jnr.ffi.Runtime.getRuntime(LIBC));
            throw new IOException("sync_file_range of " + length + " bytes at " + offset + " failed: errno " + errno);
        }
        return true;
    }

    /**
     * The descriptor number of an open {@link FileChannel}, valid while it stays open, or -1 where
     * it cannot be reached (then every call here that takes one does nothing).
     */
    static int descriptor(FileChannel channel) {
        if (LIBC == null || !channel.getClass().getName().equals("sun.nio.ch.FileChannelImpl")) {
            return -1;
        }
        try {
            Object descriptor = GET_OBJECT.invoke(SunUnsafe.INSTANCE, channel, CHANNEL_FD_OFFSET);
            return (int) GET_INT.invoke(SunUnsafe.INSTANCE, descriptor, DESCRIPTOR_FD_OFFSET);
        } catch (ReflectiveOperationException | RuntimeException e) {
            return -1;
        }
    }

    private static boolean advise(FileChannel channel, long offset, long length, int advice) {
        int fd = descriptor(channel);
        return fd >= 0 && LIBC.posix_fadvise(fd, offset, length, advice) == 0;
    }
}
