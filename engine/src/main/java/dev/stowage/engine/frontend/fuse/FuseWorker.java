package dev.stowage.engine.frontend.fuse;

import static dev.stowage.engine.frontend.fuse.FuseProtocol.*;

import dev.stowage.engine.block.BlockTarget;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import jnr.ffi.Pointer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One server thread of a FUSE session: reads a request from its own /dev/fuse fd, handles it and
 * writes the reply to the same fd, until the connection goes away (ENODEV).
 *
 * <p>Buffers: one direct request buffer (max_write plus header room) and one direct reply buffer
 * (max_read plus the reply header), both owned by this worker and reused for every request.
 * WRITE payloads are handed to the target as a slice of the request buffer and READ data is read
 * by the target straight into the reply buffer: no copy and no allocation per request. A target
 * that completes writes in the background gets small WRITEs as a {@link BackgroundWrite}: copied
 * out of the request buffer and answered by whichever thread completes them, so that this worker
 * reads the next request at once instead of waiting for the replicas. Not when the write is the
 * only request being handled: at queue depth 1 there is no next request to read meanwhile, and a
 * worker that answers the write itself then polls for the flush that usually follows (see
 * {@link #nextRequest}), which a write answered from elsewhere would leave to a sleeping worker.
 *
 * <p>Errors: any failure of the target (IOException, including ChecksumMismatchException) or of
 * the handling itself becomes EIO for that one request; the thread keeps serving.
 */
final class FuseWorker implements Runnable {
    private static final Logger log = LoggerFactory.getLogger(FuseWorker.class);
    private static final LibC LIBC = Native.LIBC;

    private final FuseSession session;
    private final BlockTarget target;
    private final int fd;
    private final ByteBuffer in;
    private final ByteBuffer out;
    private final Pointer inPtr;
    private final Pointer outPtr;
    /** Whether the request being handled still counts as busy (until its reply is about to go out). */
    private boolean counted;
    /** Whether this worker holds the session's polling role (its fd then non-blocking). */
    private boolean polling;

    FuseWorker(FuseSession session, int fd) {
        this.session = session;
        this.target = session.target();
        this.fd = fd;
        this.in = ByteBuffer.allocateDirect(session.maxWrite() + PAGE_SIZE).order(ByteOrder.nativeOrder());
        this.out = ByteBuffer.allocateDirect(session.maxWrite() + OUT_HEADER).order(ByteOrder.nativeOrder());
        this.inPtr = Native.pointer(in);
        this.outPtr = Native.pointer(out);
    }

    @Override
    public void run() {
        try {
            // A connection taken over from the fd keeper shares its file's flags with the fd of the
            // process that died, which may have died polling.
            setNonBlocking(false);
            while (true) {
                long n = nextRequest();
                if (n < 0) {
                    int errno = Native.errno();
                    if (errno == Native.EINTR || errno == Native.EAGAIN || errno == Native.ENOENT) {
                        continue; // interrupted, or the request vanished before we got it
                    }
                    if (errno != Native.ENODEV) {
                        log.warn("volume {}: reading /dev/fuse failed: {}", session.volumeId(), Native.describe(errno));
                    }
                    return; // ENODEV: unmounted or aborted
                }
                if (session.leaving()) {
                    continue; // unanswered: the next process gets it again (FUSE_NOTIFY_RESEND)
                }
                if (n < IN_HEADER) {
                    log.warn("volume {}: short FUSE request of {} bytes ignored", session.volumeId(), n);
                    continue;
                }
                session.requestStarted();
                counted = true;
                try {
                    handle((int) n);
                } finally {
                    uncount();
                }
            }
        } finally {
            if (polling) {
                session.givePollingRoleBack();
            }
            session.workerExited();
        }
    }

    /**
     * Reads the next request. At low load one worker of the session polls: having answered a
     * request while no other worker was busy, it reads its fd without blocking for up to
     * {@link FuseSession#pollNanos}, so that the next request (at queue depth 1, the flush that
     * follows a write, or the next write) is taken without the kernel waking a sleeping thread,
     * which on a VM means waking an idle vCPU through the hypervisor. When nothing came, or once
     * others are busy too (requests then come in parallel and the sleepers are woken anyway), it
     * gives the role up and blocks like the rest.
     */
    private long nextRequest() {
        long window = session.pollNanos();
        if (window <= 0) {
            return LIBC.read(fd, inPtr, in.capacity());
        }
        boolean alone = session.idle();
        if (polling && !alone) {
            stopPolling(); // others are busy: requests come in parallel and the sleepers take them
        } else if (!polling && alone && session.takePollingRole()) {
            polling = setNonBlocking(true);
            if (!polling) {
                session.givePollingRoleBack();
            }
        }
        if (polling) {
            long deadline = System.nanoTime() + window;
            do {
                long n = LIBC.read(fd, inPtr, in.capacity());
                if (n >= 0 || Native.errno() != Native.EAGAIN) {
                    return n;
                }
            } while (System.nanoTime() - deadline < 0);
            stopPolling();
        }
        return LIBC.read(fd, inPtr, in.capacity());
    }

    private void stopPolling() {
        if (setNonBlocking(false)) { // else it keeps polling and tries again after the next request
            polling = false;
            session.givePollingRoleBack();
        }
    }

    private boolean setNonBlocking(boolean on) {
        int flags = LIBC.fcntl(fd, Native.F_GETFL, 0);
        if (flags < 0) {
            return false;
        }
        return LIBC.fcntl(fd, Native.F_SETFL, on ? flags | Native.O_NONBLOCK : flags & ~Native.O_NONBLOCK) == 0;
    }

    private void handle(int length) {
        int opcode = in.getInt(4);
        long unique = in.getLong(8);
        try {
            switch (opcode) {
                case INIT -> init(unique);
                case READ -> read(unique);
                case WRITE -> write(unique, length);
                case GETATTR -> replyAttr(unique);
                case SETATTR -> setattr(unique);
                case OPEN -> open(unique);
                case FSYNC, FLUSH -> {
                    target.flush();
                    reply(unique, 0, 0);
                }
                case RELEASE, ACCESS, DESTROY -> reply(unique, 0, 0);
                case STATFS -> statfs(unique);
                case LOOKUP -> reply(unique, Native.ENOENT, 0);
                case GETXATTR, LISTXATTR, SETXATTR, REMOVEXATTR -> reply(unique, Native.ENOSYS, 0);
                case FORGET, BATCH_FORGET, INTERRUPT -> {
                    // no reply: FORGET has none, and requests finish quickly enough to ignore INTERRUPT
                }
                default -> reply(unique, Native.ENOSYS, 0);
            }
        } catch (IOException | RuntimeException e) {
            session.countError();
            log.warn("volume {}: FUSE opcode {} failed, answering EIO: {}", session.volumeId(), opcode, e.toString());
            log.debug("volume {}: failure detail", session.volumeId(), e);
            reply(unique, Native.EIO, 0);
        }
    }

    private void init(long unique) {
        int major = in.getInt(IN_HEADER);
        int minor = in.getInt(IN_HEADER + 4);
        int maxReadahead = in.getInt(IN_HEADER + 8);
        int offered = in.getInt(IN_HEADER + 12);
        if (major > KERNEL_VERSION) {
            // kernel speaks a newer major: answer with ours and wait for a second INIT
            out.putInt(OUT_HEADER, KERNEL_VERSION);
            out.putInt(OUT_HEADER + 4, MAX_MINOR);
            reply(unique, 0, 8);
            return;
        }
        if (major < KERNEL_VERSION) {
            log.error("volume {}: kernel FUSE protocol {}.{} too old", session.volumeId(), major, minor);
            reply(unique, Native.EPROTO, 0);
            session.initDone(false, major, minor, 0);
            return;
        }
        int agreedMinor = Math.min(minor, MAX_MINOR);
        int wanted = ASYNC_READ | BIG_WRITES | ASYNC_DIO | PARALLEL_DIROPS | MAX_PAGES;
        int flags = wanted & offered;
        int base = OUT_HEADER;
        for (int i = 0; i < INIT_OUT; i += 8) {
            out.putLong(base + i, 0);
        }
        out.putInt(base, KERNEL_VERSION);
        out.putInt(base + 4, agreedMinor);
        out.putInt(base + 8, maxReadahead);
        out.putInt(base + 12, flags);
        out.putShort(base + 16, (short) session.maxBackground());
        out.putShort(base + 18, (short) (session.maxBackground() * 3 / 4));
        out.putInt(base + 20, session.maxWrite());
        out.putInt(base + 24, 1); // time_gran: nanoseconds
        out.putShort(base + 28, (short) (session.maxWrite() / PAGE_SIZE));
        reply(unique, 0, agreedMinor < 23 ? INIT_OUT_COMPAT_22 : INIT_OUT);
        session.initDone(true, major, agreedMinor, flags);
    }

    private void read(long unique) throws IOException {
        long offset = in.getLong(IN_HEADER + 8);
        int size = in.getInt(IN_HEADER + 16);
        if (offset < 0 || size < 0 || size > out.capacity() - OUT_HEADER) {
            reply(unique, Native.EINVAL, 0);
            return;
        }
        long volumeSize = target.sizeBytes();
        int n = (int) Math.max(0, Math.min(size, volumeSize - offset)); // short read at the end
        if (n > 0) {
            ByteBuffer dst = out.duplicate().position(OUT_HEADER).limit(OUT_HEADER + n);
            target.read(offset, dst);
        }
        reply(unique, 0, n);
    }

    private void write(long unique, int length) throws IOException {
        long offset = in.getLong(IN_HEADER + 8);
        int size = in.getInt(IN_HEADER + 16);
        int dataStart = IN_HEADER + WRITE_IN;
        if (offset < 0 || size < 0 || dataStart + size > length) {
            reply(unique, Native.EINVAL, 0);
            return;
        }
        if (session.readOnly()) {
            reply(unique, Native.EROFS, 0);
            return;
        }
        if (offset + size > target.sizeBytes()) {
            reply(unique, Native.EFBIG, 0); // the volume never grows through a write
            return;
        }
        ByteBuffer src = in.duplicate().position(dataStart).limit(dataStart + size);
        if (size <= BackgroundWrite.MAX_BYTES && target.writesInBackground() && !session.handlingAlone()) {
            BackgroundWrite w = session.backgroundWrite();
            target.writeAsync(offset, w.start(fd, unique, src), w); // w answers, maybe already did
            return;
        }
        target.write(offset, src);
        out.putInt(OUT_HEADER, size);
        out.putInt(OUT_HEADER + 4, 0);
        reply(unique, 0, WRITE_OUT);
    }

    private void setattr(long unique) {
        int valid = in.getInt(IN_HEADER);
        long size = in.getLong(IN_HEADER + 16);
        if ((valid & FATTR_SIZE) != 0 && size != target.sizeBytes()) {
            reply(unique, session.readOnly() ? Native.EROFS : Native.EINVAL, 0);
            return;
        }
        replyAttr(unique); // mode, owner and time changes are accepted and forgotten
    }

    private void open(long unique) {
        int flags = in.getInt(IN_HEADER);
        if (session.readOnly() && (flags & 3) != 0) {
            reply(unique, Native.EROFS, 0);
            return;
        }
        out.putLong(OUT_HEADER, 0); // fh: one file, no per-open state
        out.putInt(OUT_HEADER + 8, FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES);
        out.putInt(OUT_HEADER + 12, 0);
        reply(unique, 0, OPEN_OUT);
    }

    private void replyAttr(long unique) {
        int b = OUT_HEADER;
        long size = target.sizeBytes();
        long now = session.startEpochSecond();
        out.putLong(b, FuseSession.ATTR_VALID_SECONDS);
        out.putInt(b + 8, 0);
        out.putInt(b + 12, 0);
        int a = b + 16;
        out.putLong(a, ROOT_ID);
        out.putLong(a + 8, size);
        out.putLong(a + 16, (size + 511) / 512);
        out.putLong(a + 24, now);
        out.putLong(a + 32, now);
        out.putLong(a + 40, now);
        out.putInt(a + 48, 0);
        out.putInt(a + 52, 0);
        out.putInt(a + 56, 0);
        out.putInt(a + 60, S_IFREG | (session.readOnly() ? 0400 : 0600));
        out.putInt(a + 64, 1); // nlink
        out.putInt(a + 68, 0); // uid
        out.putInt(a + 72, 0); // gid
        out.putInt(a + 76, 0); // rdev
        out.putInt(a + 80, PAGE_SIZE); // blksize
        out.putInt(a + 84, 0);
        reply(unique, 0, ATTR_OUT);
    }

    private void statfs(long unique) {
        int b = OUT_HEADER;
        for (int i = 0; i < STATFS_OUT; i += 8) {
            out.putLong(b + i, 0);
        }
        out.putLong(b, target.sizeBytes() / PAGE_SIZE); // blocks
        out.putLong(b + 24, 1); // files
        out.putInt(b + 40, PAGE_SIZE); // bsize
        out.putInt(b + 44, 255); // namelen
        out.putInt(b + 48, PAGE_SIZE); // frsize
        reply(unique, 0, STATFS_OUT);
    }

    private void uncount() {
        if (counted) {
            counted = false;
            session.requestDone();
        }
    }

    /** Writes the reply header for {@code unique} and sends it with {@code bodyLength} body bytes. */
    private void reply(long unique, int errno, int bodyLength) {
        if (errno != 0 && session.leaving()) {
            return; // most likely the target closing under a process that is going away: let it be resent
        }
        uncount(); // before the reply lets the next request come: that one may then find itself alone
        int len = OUT_HEADER + (errno == 0 ? bodyLength : 0);
        out.putInt(0, len);
        out.putInt(4, -errno);
        out.putLong(8, unique);
        long n = LIBC.write(fd, outPtr, len);
        if (n < 0) {
            int e = Native.errno();
            if (e != Native.ENOENT && e != Native.ENODEV) { // ENOENT: request was interrupted
                log.warn("volume {}: writing FUSE reply failed: {}", session.volumeId(), Native.describe(e));
            }
        }
    }
}
