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
 * A FUSE WRITE that its worker handed to a target which completes writes in the background
 * ({@link BlockTarget#writesInBackground}): the worker copies the data here and goes back for the
 * next request, and whichever thread completes the write (a replication event loop, usually)
 * answers the kernel from here. The reply goes to the fd the request was read from: a cloned
 * /dev/fuse fd finds its requests by id in its own queue only.
 *
 * <p>Objects are pooled by the session and reused; one serves one write at a time. The session
 * counts each as busy from {@link #start} until its reply was written, so that it closes its fds
 * only after every reply (a reply written to a closed fd number could land in a file that reused it).
 */
final class BackgroundWrite implements BlockTarget.WriteCompletion {
    private static final Logger log = LoggerFactory.getLogger(BackgroundWrite.class);
    /**
     * Largest write served in the background. Smaller ones are what a parked worker costs most
     * against (random 4 KiB writes); bigger ones would need big pooled buffers, and their own
     * transfer already outweighs a worker's wake-up.
     */
    static final int MAX_BYTES = 64 << 10;

    private final FuseSession session;
    private final ByteBuffer data = ByteBuffer.allocateDirect(MAX_BYTES);
    private final ByteBuffer reply = ByteBuffer.allocateDirect(OUT_HEADER + WRITE_OUT).order(ByteOrder.nativeOrder());
    private final Pointer replyPtr = Native.pointer(reply);
    private int fd;
    private long unique;
    private int size;

    BackgroundWrite(FuseSession session) {
        this.session = session;
    }

    /** Copies {@code src} (at most {@link #MAX_BYTES}) for request {@code unique} read from {@code fd}; returns the copy. */
    ByteBuffer start(int fd, long unique, ByteBuffer src) {
        this.fd = fd;
        this.unique = unique;
        this.size = src.remaining();
        data.clear();
        data.put(src).flip();
        session.requestStarted();
        return data;
    }

    @Override
    public void completed(IOException failure) {
        try {
            if (failure != null) {
                session.countError();
                log.warn("volume {}: FUSE write of {} bytes failed, answering EIO: {}", session.volumeId(), size,
                        failure.toString());
                log.debug("volume {}: failure detail", session.volumeId(), failure);
            }
            if (failure == null || !session.leaving()) { // a leaving process lets a failed write be resent
                answer(failure == null ? 0 : Native.EIO);
            }
        } finally {
            session.giveBack(this);
            session.requestDone();
        }
    }

    private void answer(int errno) {
        int len = OUT_HEADER + (errno == 0 ? WRITE_OUT : 0);
        reply.putInt(0, len);
        reply.putInt(4, -errno);
        reply.putLong(8, unique);
        reply.putInt(OUT_HEADER, size);
        reply.putInt(OUT_HEADER + 4, 0);
        if (Native.LIBC.write(fd, replyPtr, len) < 0) {
            int e = Native.errno();
            if (e != Native.ENOENT && e != Native.ENODEV) { // ENOENT: the request was interrupted
                log.warn("volume {}: writing FUSE reply failed: {}", session.volumeId(), Native.describe(e));
            }
        }
    }
}
