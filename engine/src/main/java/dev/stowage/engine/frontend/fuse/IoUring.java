package dev.stowage.engine.frontend.fuse;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import jnr.ffi.Pointer;

/**
 * The smallest io_uring this frontend needs: one thread's ring of 128-byte SQEs
 * (IORING_SETUP_SQE128, room for a FUSE command) that carries one IORING_OP_URING_CMD at a time,
 * with the rings mapped into this process and read and written through jnr-ffi.
 *
 * <p>Memory ordering: every exchange with the kernel goes through {@code io_uring_enter}, a
 * system call, so the SQE and the SQ tail are written before the kernel reads them and the CQE
 * is read after the kernel wrote it; no polling of the rings happens outside the call.
 *
 * <p>Threading: not thread-safe; owned by one thread, which also closes it. Layouts are those of
 * include/uapi/linux/io_uring.h (struct io_uring_params, io_uring_sqe, io_uring_cqe).
 */
final class IoUring implements AutoCloseable {
    private static final LibC LIBC = Native.LIBC;
    private static final long SYS_IO_URING_SETUP = 425;
    private static final long SYS_IO_URING_ENTER = 426;
    private static final int SETUP_SQE128 = 1 << 10;
    private static final int FEAT_SINGLE_MMAP = 1;
    private static final int ENTER_GETEVENTS = 1;
    private static final long OFF_SQ_RING = 0;
    private static final long OFF_CQ_RING = 0x8000000L;
    private static final long OFF_SQES = 0x10000000L;
    private static final int PROT_READ_WRITE = 3;
    private static final int MAP_SHARED_POPULATE = 0x01 | 0x8000;
    private static final int PARAMS_SIZE = 120;
    private static final int SQE_SIZE = 128;
    private static final int CQE_SIZE = 16;
    static final int OP_URING_CMD = 46;
    /** Offset of the command area (80 bytes with SQE128) in an SQE. */
    static final int SQE_CMD = 48;

    private final int ringFd;
    private final long ringAddress;
    private final long ringSize;
    private final long cqAddress;
    private final long cqSize;
    private final long sqesAddress;
    private final long sqesSize;
    private final Pointer ring;
    private final Pointer cq;
    private final Pointer sqes;
    private final int sqHead;
    private final int sqTail;
    private final int sqMask;
    private final int sqArray;
    private final int cqHead;
    private final int cqTail;
    private final int cqMask;
    private final int cqes;
    private int tail;

    private IoUring(int ringFd, long ringAddress, long ringSize, long cqAddress, long cqSize, long sqesAddress,
            long sqesSize, ByteBuffer params) {
        this.ringFd = ringFd;
        this.ringAddress = ringAddress;
        this.ringSize = ringSize;
        this.cqAddress = cqAddress;
        this.cqSize = cqSize;
        this.sqesAddress = sqesAddress;
        this.sqesSize = sqesSize;
        this.ring = Pointer.wrap(Native.RUNTIME, ringAddress);
        this.cq = Pointer.wrap(Native.RUNTIME, cqAddress);
        this.sqes = Pointer.wrap(Native.RUNTIME, sqesAddress);
        this.sqHead = params.getInt(40);
        this.sqTail = params.getInt(44);
        this.sqMask = ring.getInt(params.getInt(48));
        this.sqArray = params.getInt(64);
        this.cqHead = params.getInt(80);
        this.cqTail = params.getInt(84);
        this.cqMask = cq.getInt(params.getInt(88));
        this.cqes = params.getInt(100);
        this.tail = ring.getInt(sqTail);
    }

    /** Sets up a ring of {@code entries} SQEs (a power of two) and maps it. */
    static IoUring create(int entries) throws IOException {
        ByteBuffer params = ByteBuffer.allocateDirect(PARAMS_SIZE).order(ByteOrder.nativeOrder());
        params.putInt(8, SETUP_SQE128);
        int fd = (int) LIBC.syscall(SYS_IO_URING_SETUP, entries, Native.pointer(params));
        if (fd < 0) {
            throw new IOException("io_uring_setup failed: " + Native.describe(Native.errno()));
        }
        long ring = -1;
        long cq = -1;
        long sqes = -1;
        long ringSize = 0;
        long cqSize = 0;
        long sqesSize = 0;
        try {
            int sqEntries = params.getInt(0);
            int cqEntries = params.getInt(4);
            boolean singleMmap = (params.getInt(20) & FEAT_SINGLE_MMAP) != 0;
            ringSize = params.getInt(64) + 4L * sqEntries;
            cqSize = params.getInt(100) + (long) CQE_SIZE * cqEntries;
            if (singleMmap) {
                ringSize = Math.max(ringSize, cqSize);
            }
            ring = map(ringSize, fd, OFF_SQ_RING);
            if (singleMmap) {
                cq = ring;
                cqSize = 0;
            } else {
                cq = map(cqSize, fd, OFF_CQ_RING);
            }
            sqesSize = (long) SQE_SIZE * sqEntries;
            sqes = map(sqesSize, fd, OFF_SQES);
            return new IoUring(fd, ring, ringSize, cq, cqSize, sqes, sqesSize, params);
        } catch (IOException | RuntimeException e) {
            unmap(sqes, sqesSize);
            if (cq != ring) {
                unmap(cq, cqSize);
            }
            unmap(ring, ringSize);
            LIBC.close(fd);
            throw e;
        }
    }

    private static long map(long size, int fd, long offset) throws IOException {
        Pointer mapping = LIBC.mmap(null, size, PROT_READ_WRITE, MAP_SHARED_POPULATE, fd, offset);
        long address = mapping == null ? -1 : mapping.address();
        if (address == -1) {
            throw new IOException("mmap of io_uring region " + Long.toHexString(offset) + " (" + size + " bytes) failed: "
                    + Native.describe(Native.errno()));
        }
        return address;
    }

    private static void unmap(long address, long size) {
        if (address != -1 && size > 0) {
            LIBC.munmap(Pointer.wrap(Native.RUNTIME, address), size);
        }
    }

    /**
     * The next free SQE, cleared, for the caller to fill and {@link #queue}. Only one
     * SQE is outstanding at a time in this frontend, so the ring never fills.
     */
    Pointer nextSqe() {
        int index = tail & sqMask;
        long offset = (long) index * SQE_SIZE;
        for (int i = 0; i < SQE_SIZE; i += 8) {
            sqes.putLong(offset + i, 0);
        }
        return sqes.slice(offset, SQE_SIZE);
    }

    /** Hands the SQE returned by {@link #nextSqe} to the kernel's side of the ring (not yet submitted). */
    void queue() {
        int index = tail & sqMask;
        ring.putInt(sqArray + 4L * index, index);
        tail++;
        ring.putInt(sqTail, tail);
    }

    /** Submits every queued SQE the kernel has not consumed yet, without waiting. Retries on EINTR. */
    void submit() throws IOException {
        enter(0);
    }

    /** Submits what is queued and waits until at least one completion is there. Retries on EINTR. */
    void submitAndWait() throws IOException {
        while (pending() > 0 || !hasCompletion()) {
            enter(1);
        }
    }

    private int pending() {
        return tail - ring.getInt(sqHead);
    }

    private void enter(int minComplete) throws IOException {
        while (true) {
            long n = LIBC.syscall(SYS_IO_URING_ENTER, ringFd, pending(), minComplete,
                    minComplete > 0 ? ENTER_GETEVENTS : 0, null);
            if (n >= 0) {
                return;
            }
            int errno = Native.errno();
            if (errno != Native.EINTR && errno != Native.EAGAIN) {
                throw new IOException("io_uring_enter failed: " + Native.describe(errno));
            }
        }
    }

    boolean hasCompletion() {
        return cq.getInt(cqHead) != cq.getInt(cqTail);
    }

    /** The result ({@code cqe->res}) of the oldest completion, which is consumed. */
    int takeCompletion() {
        int head = cq.getInt(cqHead);
        long cqe = cqes + (long) (head & cqMask) * CQE_SIZE;
        int result = cq.getInt(cqe + 8);
        cq.putInt(cqHead, head + 1);
        return result;
    }

    @Override
    public void close() {
        unmap(sqesAddress, sqesSize);
        if (cqAddress != ringAddress) {
            unmap(cqAddress, cqSize);
        }
        unmap(ringAddress, ringSize);
        LIBC.close(ringFd);
    }
}
