package dev.stowage.engine.frontend.fuse;

import static dev.stowage.engine.frontend.fuse.FuseProtocol.*;

import dev.stowage.engine.block.BlockTarget;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import jnr.ffi.Pointer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One FUSE connection serving one volume as a single regular file: the mount, its /dev/fuse fds
 * (the session fd plus one clone per extra thread, FUSE_DEV_IOC_CLONE) and the server threads.
 *
 * <p>Threading: {@link #start} and {@link #close} are called by the owning export; the workers run
 * on their own daemon threads; {@link #invalidateAttributes} may be called from any thread.
 *
 * <p>Lifecycle: unmounting makes the kernel end the connection, which makes every worker's read
 * return ENODEV; only once all workers have exited are the fds closed (closing an fd another
 * thread is blocked on would let the number be reused under it).
 */
final class FuseSession implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(FuseSession.class);
    private static final LibC LIBC = Native.LIBC;
    /** Attributes may be cached this long; a resize invalidates them explicitly. */
    static final long ATTR_VALID_SECONDS = 60;
    private static final long INIT_TIMEOUT_SECONDS = 20;
    private static final long STOP_TIMEOUT_SECONDS = 10;

    private final String volumeId;
    private final Path mountpoint;
    private final BlockTarget target;
    private final int maxWrite;
    private final int maxBackground;
    private final long pollNanos;
    /** Held by the one worker that polls (see {@link FuseWorker}). */
    private final AtomicBoolean poller = new AtomicBoolean();
    /** Requests being handled right now: by a worker, or written in the background ({@link BackgroundWrite}). */
    private final AtomicInteger busy = new AtomicInteger();
    /** Background writes not in flight, for reuse. */
    private final java.util.concurrent.ConcurrentLinkedQueue<BackgroundWrite> spareWrites =
            new java.util.concurrent.ConcurrentLinkedQueue<>();
    private final boolean readOnly;
    private final long startEpochSecond = Instant.now().getEpochSecond();
    private final List<Integer> fds = new ArrayList<>();
    private final List<Thread> threads = new ArrayList<>();
    private final CountDownLatch initLatch = new CountDownLatch(1);
    private final AtomicLong errors = new AtomicLong();
    private final ByteBuffer notifyBuffer =
            ByteBuffer.allocateDirect(OUT_HEADER + NOTIFY_INVAL_INODE_OUT).order(ByteOrder.nativeOrder());
    private volatile boolean initOk;
    private volatile boolean leaving;
    private volatile String initSummary = "";
    private CountDownLatch exited = new CountDownLatch(0);
    private String connection; // "major:minor" of the mount, for /sys/fs/fuse/connections
    private boolean mounted;
    private boolean closed;

    FuseSession(String volumeId, Path mountpoint, BlockTarget target, int maxWrite, int maxBackground,
            int pollMicros, boolean readOnly) {
        this.volumeId = volumeId;
        this.mountpoint = mountpoint;
        this.target = target;
        this.maxWrite = maxWrite;
        this.maxBackground = maxBackground;
        this.pollNanos = pollMicros * 1000L;
        this.readOnly = readOnly;
    }

    /**
     * Opens /dev/fuse, mounts it on {@code mountpoint} (an existing empty regular file), starts
     * {@code threadCount} workers and waits for the kernel's INIT to be answered. On failure
     * everything done so far is undone and the exception is thrown.
     */
    synchronized void start(int threadCount) throws IOException {
        try {
            int fd = openDevice();
            fds.add(fd);
            String options = "fd=" + fd + ",rootmode=" + Integer.toOctalString(S_IFREG)
                    + ",user_id=0,group_id=0,allow_other,default_permissions,max_read=" + maxWrite;
            long flags = Native.MS_NOSUID | Native.MS_NODEV | (readOnly ? Native.MS_RDONLY : 0);
            if (LIBC.mount("stowage", mountpoint.toString(), "fuse.stowage", flags, options) != 0) {
                int errno = Native.errno();
                throw new IOException("mount of FUSE on " + mountpoint + " failed: " + Native.describe(errno));
            }
            mounted = true;
            connection = FuseMounts.deviceOf(mountpoint).orElse(null);
            for (int i = 1; i < threadCount; i++) {
                fds.add(cloneDevice(fd));
            }
            startWorkers();
            if (!initLatch.await(INIT_TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
                throw new IOException("kernel did not complete FUSE INIT on " + mountpoint
                        + " within " + INIT_TIMEOUT_SECONDS + " s");
            }
            if (!initOk) {
                throw new IOException("FUSE INIT on " + mountpoint + " failed: " + initSummary);
            }
            log.debug("volume {}: FUSE session up on {} with {} threads, {}", volumeId, mountpoint,
                    threads.size(), initSummary);
        } catch (IOException | RuntimeException e) {
            close();
            throw e;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            close();
            throw new IOException("interrupted while waiting for FUSE INIT", e);
        }
    }

    /**
     * Takes over the live connection of an earlier process whose /dev/fuse fds the fd keeper kept
     * ({@code taken}, the session fd first): starts a worker on each and has the kernel send again
     * every request the earlier process had read and not answered (FUSE_NOTIFY_RESEND, Linux 6.9+).
     * The connection's INIT was done by the earlier process; its results live in the kernel. On
     * failure the session is closed (the mount with it) and the exception thrown.
     */
    synchronized void resume(List<Integer> taken) throws IOException {
        fds.addAll(taken);
        mounted = true;
        initOk = true;
        connection = FuseMounts.deviceOf(mountpoint).orElse(null);
        try {
            startWorkers();
            notifyBuffer.putInt(0, OUT_HEADER);
            notifyBuffer.putInt(4, NOTIFY_RESEND);
            notifyBuffer.putLong(8, 0);
            if (LIBC.write(fds.get(0), Native.pointer(notifyBuffer), OUT_HEADER) < 0) {
                throw new IOException("FUSE resend notification for volume " + volumeId + " failed: "
                        + Native.describe(Native.errno()));
            }
        } catch (IOException | RuntimeException e) {
            close();
            throw e;
        }
    }

    /**
     * From now on requests are not answered unless already handled successfully: the process is
     * going away, and what it leaves unanswered the kernel sends again to the process that resumes
     * the connection (the fd keeper keeps it open). Nothing is unmounted or closed.
     */
    void leave() {
        leaving = true;
    }

    boolean leaving() {
        return leaving;
    }

    /** The /dev/fuse fds of this session, the session fd first: what the fd keeper copies. */
    synchronized List<Integer> fds() {
        return List.copyOf(fds);
    }

    private void startWorkers() {
        exited = new CountDownLatch(fds.size());
        for (int i = 0; i < fds.size(); i++) {
            Thread t = new Thread(new FuseWorker(this, fds.get(i)), "fuse-" + volumeId + "-" + i);
            t.setDaemon(true);
            threads.add(t);
        }
        threads.forEach(Thread::start);
    }

    private static int openDevice() throws IOException {
        int fd = LIBC.open("/dev/fuse", Native.O_RDWR | Native.O_CLOEXEC);
        if (fd < 0) {
            throw new IOException("open /dev/fuse failed: " + Native.describe(Native.errno()));
        }
        return fd;
    }

    private static int cloneDevice(int sessionFd) throws IOException {
        int fd = openDevice();
        ByteBuffer arg = ByteBuffer.allocateDirect(4).order(ByteOrder.nativeOrder()).putInt(0, sessionFd);
        if (LIBC.ioctl(fd, DEV_IOC_CLONE, Native.pointer(arg)) != 0) {
            int errno = Native.errno();
            LIBC.close(fd);
            throw new IOException("FUSE_DEV_IOC_CLONE failed: " + Native.describe(errno));
        }
        return fd;
    }

    /**
     * Drops the kernel's cached attributes of the volume file (FUSE_NOTIFY_INVAL_INODE, attributes
     * only), so that the next stat asks {@link BlockTarget#sizeBytes()} again.
     */
    synchronized void invalidateAttributes() throws IOException {
        if (closed || fds.isEmpty()) {
            throw new IOException("FUSE session of volume " + volumeId + " is closed");
        }
        notifyBuffer.putInt(0, OUT_HEADER + NOTIFY_INVAL_INODE_OUT);
        notifyBuffer.putInt(4, NOTIFY_INVAL_INODE);
        notifyBuffer.putLong(8, 0); // unique 0 marks a notification
        notifyBuffer.putLong(16, ROOT_ID);
        notifyBuffer.putLong(24, -1); // offset < 0: attributes only, no page cache range
        notifyBuffer.putLong(32, 0);
        Pointer p = Native.pointer(notifyBuffer);
        if (LIBC.write(fds.get(0), p, notifyBuffer.capacity()) < 0) {
            throw new IOException("FUSE inval-inode notification failed: " + Native.describe(Native.errno()));
        }
    }

    /**
     * Unmounts (lazily if busy), waits for the workers to see the connection end (aborting it
     * through /sys/fs/fuse/connections if they do not), then closes the fds. Idempotent.
     */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (mounted) {
            FuseMounts.unmount(mountpoint);
            mounted = false;
        }
        boolean allExited = awaitWorkers();
        if (!allExited && connection != null) {
            log.warn("volume {}: FUSE workers still running after unmount, aborting connection {}",
                    volumeId, connection);
            FuseMounts.abortConnection(connection);
            allExited = awaitWorkers();
        }
        if (!allExited && threads.isEmpty()) {
            allExited = true;
        }
        if (allExited && !awaitBackgroundWrites()) {
            log.error("volume {}: {} background writes still unanswered", volumeId, busy.get());
            allExited = false;
        }
        if (allExited) {
            for (int fd : fds) {
                LIBC.close(fd);
            }
        } else {
            log.error("volume {}: FUSE workers did not stop; leaving {} fds open", volumeId, fds.size());
        }
        fds.clear();
    }

    private boolean awaitWorkers() {
        if (threads.isEmpty()) {
            return true;
        }
        try {
            return exited.await(STOP_TIMEOUT_SECONDS, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    /**
     * Waits until no background write is in flight (the workers have exited, so nothing else is
     * busy): their replies go to this session's fds.
     */
    private boolean awaitBackgroundWrites() {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(STOP_TIMEOUT_SECONDS);
        while (busy.get() > 0) {
            if (System.nanoTime() - deadline > 0) {
                return false;
            }
            java.util.concurrent.locks.LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(1));
        }
        return true;
    }

    /** A background write to serve a WRITE with: a spare one, or a new one. */
    BackgroundWrite backgroundWrite() {
        BackgroundWrite w = spareWrites.poll();
        return w != null ? w : new BackgroundWrite(this);
    }

    /** Takes back a background write that answered its request. */
    void giveBack(BackgroundWrite w) {
        spareWrites.offer(w);
    }

    void initDone(boolean ok, int major, int minor, int flags) {
        initOk = ok;
        initSummary = "protocol " + major + "." + minor + ", flags 0x" + Integer.toHexString(flags)
                + ", max_write " + maxWrite;
        initLatch.countDown();
    }

    /** How long a worker polls for the next request before it sleeps; 0: never. */
    long pollNanos() {
        return pollNanos;
    }

    /** A worker starts handling a request. */
    void requestStarted() {
        busy.incrementAndGet();
    }

    /** A worker finished handling a request. */
    void requestDone() {
        busy.decrementAndGet();
    }

    /** Whether the calling worker's request is the only one being handled (background writes included). */
    boolean handlingAlone() {
        return busy.get() == 1;
    }

    /** Whether no worker is handling a request: the load is low enough for one to poll. */
    boolean idle() {
        return busy.get() == 0;
    }

    /** Takes the one polling role of the session; false if another worker holds it. */
    boolean takePollingRole() {
        return poller.compareAndSet(false, true);
    }

    void givePollingRoleBack() {
        poller.set(false);
    }

    void workerExited() {
        exited.countDown();
    }

    void countError() {
        errors.incrementAndGet();
    }

    /** Requests answered with EIO because the target or the handling failed. */
    long errorCount() {
        return errors.get();
    }

    String volumeId() {
        return volumeId;
    }

    BlockTarget target() {
        return target;
    }

    int maxWrite() {
        return maxWrite;
    }

    int maxBackground() {
        return maxBackground;
    }

    boolean readOnly() {
        return readOnly;
    }

    long startEpochSecond() {
        return startEpochSecond;
    }
}
