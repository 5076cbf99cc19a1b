package dev.stowage.engine.frontend.fuse;

import static dev.stowage.engine.frontend.fuse.FuseProtocol.*;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import jnr.ffi.Pointer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One server thread of a FUSE session on the classic channel: reads a request from its own
 * /dev/fuse fd, has a {@link FuseHandler} answer it and writes the reply to the same fd, until the
 * connection goes away (ENODEV). Over io_uring this channel still carries INIT and whatever the
 * kernel does not send through the ring (INTERRUPT, FORGET).
 *
 * <p>Buffers: one direct request buffer (max_write plus header room) and one direct reply buffer
 * (max_read plus the reply header), both owned by this worker and reused for every request.
 */
final class FuseWorker implements Runnable {
    private static final Logger log = LoggerFactory.getLogger(FuseWorker.class);
    private static final LibC LIBC = Native.LIBC;
    private static final int WRITE_DATA = IN_HEADER + WRITE_IN;

    private final FuseSession session;
    private final int fd;
    private final ByteBuffer in;
    private final ByteBuffer out;
    private final Pointer inPtr;
    private final Pointer outPtr;
    private final FuseHandler handler;

    FuseWorker(FuseSession session, int fd) {
        this.session = session;
        this.fd = fd;
        this.in = ByteBuffer.allocateDirect(session.maxWrite() + PAGE_SIZE).order(ByteOrder.nativeOrder());
        this.out = ByteBuffer.allocateDirect(session.maxWrite() + OUT_HEADER).order(ByteOrder.nativeOrder());
        this.inPtr = Native.pointer(in);
        this.outPtr = Native.pointer(out);
        this.handler = new FuseHandler(session, in.slice(IN_HEADER, in.capacity() - IN_HEADER),
                in.slice(WRITE_DATA, in.capacity() - WRITE_DATA), out.slice(OUT_HEADER, out.capacity() - OUT_HEADER),
                this::reply);
    }

    @Override
    public void run() {
        while (true) {
            long n = LIBC.read(fd, inPtr, in.capacity());
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
            if (n < IN_HEADER) {
                log.warn("volume {}: short FUSE request of {} bytes ignored", session.volumeId(), n);
                continue;
            }
            handler.handle(in.getInt(4), in.getLong(8), (int) n - WRITE_DATA);
        }
    }

    /** Writes the reply header for {@code unique} and sends it with {@code bodyLength} body bytes. */
    private void reply(long unique, int errno, int bodyLength) {
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
