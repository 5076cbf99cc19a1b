package dev.stowage.engine.frontend.fuse;

import static dev.stowage.engine.frontend.fuse.FuseProtocol.*;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.concurrent.CompletableFuture;
import jnr.ffi.Pointer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One server thread of a FUSE session on the io_uring channel (FUSE over io_uring, Linux 6.14+):
 * the thread owns one ring entry of one queue. It registers a header and a payload buffer with
 * the kernel (FUSE_IO_URING_CMD_REGISTER), and from then on each completion is a request already
 * copied into those buffers; the reply goes back in the same buffers, committed together with the
 * wait for the next request (FUSE_IO_URING_CMD_COMMIT_AND_FETCH): one system call per request
 * where /dev/fuse needs a read and a write.
 *
 * <p>Queues: the kernel keeps one queue per possible CPU and puts a request in the queue of the
 * CPU its sender runs on; a session starts workers for every queue (the ring is used only once
 * each queue has an entry). Workers are not pinned to their queue's CPU: measured on 2 cores,
 * pinning cost a tenth of the 4 KiB random write rate (docs/benchmarks.md), as a busy CPU then
 * keeps its queue's requests waiting while the other CPU idles.
 *
 * <p>Buffers: the header buffer (struct fuse_uring_req_header: the in/out header, the opcode's
 * argument struct and the entry's in/out word) and the payload buffer (WRITE data in, reply
 * body out) are direct buffers owned by this worker; the kernel copies into and out of them only
 * while this thread is inside io_uring_enter.
 *
 * <p>Lifecycle: the worker ends when the connection ends (the kernel completes the entry with
 * ENOTCONN or ECONNABORTED after an unmount or an abort) or on an unexpected error, which is
 * logged; {@link #registered()} completes once the kernel took the entry, or exceptionally.
 */
final class FuseRingWorker implements Runnable {
    private static final Logger log = LoggerFactory.getLogger(FuseRingWorker.class);
    private static final int ENTRIES = 4;
    private static final int MIN_PAYLOAD = 8192; // FUSE_MIN_READ_BUFFER
    private static final int ECANCELED = 125;
    private static final int ECONNABORTED = 103;

    private final FuseSession session;
    private final int fuseFd;
    private final int qid;
    private final ByteBuffer header;
    private final ByteBuffer payload;
    private final ByteBuffer iov;
    private final FuseHandler handler;
    private final CompletableFuture<Void> registered = new CompletableFuture<>();
    private long commitId;
    private boolean replied;

    FuseRingWorker(FuseSession session, int fuseFd, int qid) {
        this.session = session;
        this.fuseFd = fuseFd;
        this.qid = qid;
        this.header = ByteBuffer.allocateDirect(PAGE_SIZE).order(ByteOrder.nativeOrder());
        this.payload = ByteBuffer.allocateDirect(Math.max(MIN_PAYLOAD, session.maxWrite())).order(ByteOrder.nativeOrder());
        this.iov = ByteBuffer.allocateDirect(32).order(ByteOrder.nativeOrder());
        iov.putLong(0, Native.pointer(header).address());
        iov.putLong(8, URING_HEADER);
        iov.putLong(16, Native.pointer(payload).address());
        iov.putLong(24, payload.capacity());
        this.handler = new FuseHandler(session, header.slice(URING_OP_IN, URING_ENT_IN_OUT - URING_OP_IN),
                payload, payload, this::reply);
    }

    /** Completes when the kernel accepted this worker's entry; exceptionally if it refused it. */
    CompletableFuture<Void> registered() {
        return registered;
    }

    @Override
    public void run() {
        try (IoUring ring = IoUring.create(ENTRIES)) {
            prepare(ring, URING_CMD_REGISTER);
            ring.queue();
            ring.submit();
            if (!ring.hasCompletion()) {
                registered.complete(null); // the kernel holds the entry until a request comes
            }
            int command = URING_CMD_REGISTER;
            while (true) {
                ring.submitAndWait();
                int result = ring.takeCompletion();
                if (result == -Native.EINTR || result == -Native.EAGAIN) {
                    prepare(ring, command); // not taken: the same command once more
                    ring.queue();
                    continue;
                }
                if (result < 0) {
                    ended(command, -result);
                    return;
                }
                registered.complete(null);
                serve();
                command = URING_CMD_COMMIT_AND_FETCH;
                prepare(ring, command);
                ring.queue();
            }
        } catch (IOException | RuntimeException e) {
            registered.completeExceptionally(e);
            log.warn("volume {}: FUSE ring worker of queue {} failed: {}", session.volumeId(), qid, e.toString());
        }
    }

    /** Handles the request the kernel put in the buffers and leaves its reply there. */
    private void serve() {
        commitId = header.getLong(URING_ENT_IN_OUT + 8);
        int dataLength = header.getInt(URING_ENT_IN_OUT + 16);
        int opcode = header.getInt(4);
        long unique = header.getLong(8);
        replied = false;
        handler.handle(opcode, unique, dataLength);
        if (!replied) {
            reply(unique, Native.ENOSYS, 0); // every ring request needs a commit to free its entry
        }
    }

    private void reply(long unique, int errno, int bodyLength) {
        int length = errno == 0 ? bodyLength : 0;
        header.putInt(0, OUT_HEADER + length);
        header.putInt(4, -errno);
        header.putLong(8, unique);
        header.putInt(URING_ENT_IN_OUT + 16, length);
        replied = true;
    }

    private void prepare(IoUring ring, int command) {
        Pointer sqe = ring.nextSqe();
        sqe.putByte(0, (byte) IoUring.OP_URING_CMD);
        sqe.putInt(4, fuseFd);
        sqe.putInt(8, command);
        if (command == URING_CMD_REGISTER) {
            sqe.putLong(16, Native.pointer(iov).address());
            sqe.putInt(24, 2);
        }
        sqe.putLong(IoUring.SQE_CMD + 8, command == URING_CMD_REGISTER ? 0 : commitId);
        sqe.putShort(IoUring.SQE_CMD + 16, (short) qid);
    }

    private void ended(int command, int errno) {
        boolean normal = errno == Native.ENOTCONN || errno == ECONNABORTED || errno == Native.ENODEV
                || errno == ECANCELED;
        IOException failure = new IOException((command == URING_CMD_REGISTER ? "registering" : "committing")
                + " a FUSE ring entry of queue " + qid + " failed: " + Native.describe(errno));
        registered.completeExceptionally(failure);
        if (!normal) {
            log.warn("volume {}: {}", session.volumeId(), failure.getMessage());
        }
    }
}
