package dev.stowage.engine.frontend.fuse;

import static dev.stowage.engine.frontend.fuse.FuseProtocol.*;

import dev.stowage.engine.block.BlockTarget;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What a FUSE server thread does with one request, whichever channel carried it: /dev/fuse
 * ({@link FuseWorker}) or an io_uring entry ({@link FuseRingWorker}). The channel hands over
 * three views of its own buffers and sends the reply.
 *
 * <p>Buffers: {@code args} holds the opcode's fixed argument struct (fuse_write_in, ...) at 0,
 * {@code data} a WRITE's payload at 0, and the reply body is built at 0 of {@code body}. WRITE
 * payloads are handed to the target as a slice of {@code data} and READ data is read by the
 * target straight into {@code body}: no copy and no allocation per request. The views belong
 * to one thread and are reused for every request.
 *
 * <p>Errors: any failure of the target (IOException, including ChecksumMismatchException) or of
 * the handling itself becomes EIO for that one request; the thread keeps serving.
 */
final class FuseHandler {
    private static final Logger log = LoggerFactory.getLogger(FuseHandler.class);

    /** Sends the reply header and {@code bodyLength} bytes of the body view. */
    interface Channel {
        void reply(long unique, int errno, int bodyLength);
    }

    private final FuseSession session;
    private final BlockTarget target;
    private final ByteBuffer args;
    private final ByteBuffer data;
    private final ByteBuffer body;
    private final Channel channel;

    FuseHandler(FuseSession session, ByteBuffer args, ByteBuffer data, ByteBuffer body, Channel channel) {
        this.session = session;
        this.target = session.target();
        this.args = args.order(ByteOrder.nativeOrder());
        this.data = data.order(ByteOrder.nativeOrder());
        this.body = body.order(ByteOrder.nativeOrder());
        this.channel = channel;
    }

    /** Handles one request whose payload (after the argument struct) is {@code dataLength} bytes. */
    void handle(int opcode, long unique, int dataLength) {
        try {
            switch (opcode) {
                case INIT -> init(unique);
                case READ -> read(unique);
                case WRITE -> write(unique, dataLength);
                case GETATTR -> replyAttr(unique);
                case SETATTR -> setattr(unique);
                case OPEN -> open(unique);
                case FSYNC, FLUSH -> {
                    target.flush();
                    channel.reply(unique, 0, 0);
                }
                case RELEASE, ACCESS, DESTROY -> channel.reply(unique, 0, 0);
                case STATFS -> statfs(unique);
                case LOOKUP -> channel.reply(unique, Native.ENOENT, 0);
                case GETXATTR, LISTXATTR, SETXATTR, REMOVEXATTR -> channel.reply(unique, Native.ENOSYS, 0);
                case FORGET, BATCH_FORGET, INTERRUPT -> {
                    // no reply: FORGET has none, and requests finish quickly enough to ignore INTERRUPT
                }
                default -> channel.reply(unique, Native.ENOSYS, 0);
            }
        } catch (IOException | RuntimeException e) {
            session.countError();
            log.warn("volume {}: FUSE opcode {} failed, answering EIO: {}", session.volumeId(), opcode, e.toString());
            log.debug("volume {}: failure detail", session.volumeId(), e);
            channel.reply(unique, Native.EIO, 0);
        }
    }

    private void init(long unique) {
        int major = args.getInt(0);
        int minor = args.getInt(4);
        int maxReadahead = args.getInt(8);
        int offered = args.getInt(12);
        if (major > KERNEL_VERSION) {
            // kernel speaks a newer major: answer with ours and wait for a second INIT
            body.putInt(0, KERNEL_VERSION);
            body.putInt(4, MAX_MINOR);
            channel.reply(unique, 0, 8);
            return;
        }
        if (major < KERNEL_VERSION) {
            log.error("volume {}: kernel FUSE protocol {}.{} too old", session.volumeId(), major, minor);
            channel.reply(unique, Native.EPROTO, 0);
            session.initDone(false, major, minor, 0, false);
            return;
        }
        int agreedMinor = Math.min(minor, MAX_MINOR);
        int wanted = ASYNC_READ | BIG_WRITES | ASYNC_DIO | PARALLEL_DIROPS | MAX_PAGES;
        int flags = wanted & offered;
        int flags2 = 0;
        int offered2 = (offered & INIT_EXT) != 0 ? args.getInt(16) : 0;
        if (session.wantsRing() && (offered2 & OVER_IO_URING) != 0) {
            flags |= INIT_EXT;
            flags2 = OVER_IO_URING;
        }
        int base = 0;
        for (int i = 0; i < INIT_OUT; i += 8) {
            body.putLong(base + i, 0);
        }
        body.putInt(base, KERNEL_VERSION);
        body.putInt(base + 4, agreedMinor);
        body.putInt(base + 8, maxReadahead);
        body.putInt(base + 12, flags);
        body.putShort(base + 16, (short) session.maxBackground());
        body.putShort(base + 18, (short) (session.maxBackground() * 3 / 4));
        body.putInt(base + 20, session.maxWrite());
        body.putInt(base + 24, 1); // time_gran: nanoseconds
        body.putShort(base + 28, (short) (session.maxWrite() / PAGE_SIZE));
        body.putInt(base + 32, flags2);
        channel.reply(unique, 0, agreedMinor < 23 ? INIT_OUT_COMPAT_22 : INIT_OUT);
        session.initDone(true, major, agreedMinor, flags, flags2 != 0);
    }

    private void read(long unique) throws IOException {
        long offset = args.getLong(8);
        int size = args.getInt(16);
        if (offset < 0 || size < 0 || size > body.capacity()) {
            channel.reply(unique, Native.EINVAL, 0);
            return;
        }
        long volumeSize = target.sizeBytes();
        int n = (int) Math.max(0, Math.min(size, volumeSize - offset)); // short read at the end
        if (n > 0) {
            ByteBuffer dst = body.duplicate().position(0).limit(n);
            target.read(offset, dst);
        }
        channel.reply(unique, 0, n);
    }

    private void write(long unique, int dataLength) throws IOException {
        long offset = args.getLong(8);
        int size = args.getInt(16);
        if (offset < 0 || size < 0 || size > dataLength) {
            channel.reply(unique, Native.EINVAL, 0);
            return;
        }
        if (session.readOnly()) {
            channel.reply(unique, Native.EROFS, 0);
            return;
        }
        if (offset + size > target.sizeBytes()) {
            channel.reply(unique, Native.EFBIG, 0); // the volume never grows through a write
            return;
        }
        ByteBuffer src = data.duplicate().position(0).limit(size);
        target.write(offset, src);
        body.putInt(0, size);
        body.putInt(4, 0);
        channel.reply(unique, 0, WRITE_OUT);
    }

    private void setattr(long unique) {
        int valid = args.getInt(0);
        long size = args.getLong(16);
        if ((valid & FATTR_SIZE) != 0 && size != target.sizeBytes()) {
            channel.reply(unique, session.readOnly() ? Native.EROFS : Native.EINVAL, 0);
            return;
        }
        replyAttr(unique); // mode, owner and time changes are accepted and forgotten
    }

    private void open(long unique) {
        int flags = args.getInt(0);
        if (session.readOnly() && (flags & 3) != 0) {
            channel.reply(unique, Native.EROFS, 0);
            return;
        }
        body.putLong(0, 0); // fh: one file, no per-open state
        body.putInt(8, FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES);
        body.putInt(12, 0);
        channel.reply(unique, 0, OPEN_OUT);
    }

    private void replyAttr(long unique) {
        int b = 0;
        long size = target.sizeBytes();
        long now = session.startEpochSecond();
        body.putLong(b, FuseSession.ATTR_VALID_SECONDS);
        body.putInt(b + 8, 0);
        body.putInt(b + 12, 0);
        int a = b + 16;
        body.putLong(a, ROOT_ID);
        body.putLong(a + 8, size);
        body.putLong(a + 16, (size + 511) / 512);
        body.putLong(a + 24, now);
        body.putLong(a + 32, now);
        body.putLong(a + 40, now);
        body.putInt(a + 48, 0);
        body.putInt(a + 52, 0);
        body.putInt(a + 56, 0);
        body.putInt(a + 60, S_IFREG | (session.readOnly() ? 0400 : 0600));
        body.putInt(a + 64, 1); // nlink
        body.putInt(a + 68, 0); // uid
        body.putInt(a + 72, 0); // gid
        body.putInt(a + 76, 0); // rdev
        body.putInt(a + 80, PAGE_SIZE); // blksize
        body.putInt(a + 84, 0);
        channel.reply(unique, 0, ATTR_OUT);
    }

    private void statfs(long unique) {
        int b = 0;
        for (int i = 0; i < STATFS_OUT; i += 8) {
            body.putLong(b + i, 0);
        }
        body.putLong(b, target.sizeBytes() / PAGE_SIZE); // blocks
        body.putLong(b + 24, 1); // files
        body.putInt(b + 40, PAGE_SIZE); // bsize
        body.putInt(b + 44, 255); // namelen
        body.putInt(b + 48, PAGE_SIZE); // frsize
        channel.reply(unique, 0, STATFS_OUT);
    }
}
