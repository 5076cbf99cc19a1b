package dev.stowage.engine.frontend.fuse;

import jnr.ffi.LastError;
import jnr.ffi.LibraryLoader;
import jnr.ffi.Pointer;
import jnr.ffi.Runtime;

/** The loaded {@link LibC} binding, errno access and the Linux constants its callers need (x86_64 / aarch64 values). */
final class Native {
    static final int O_RDWR = 2;
    static final int O_CLOEXEC = 0x80000;
    static final int O_NONBLOCK = 0x800;
    static final int F_GETFL = 3;
    static final int F_SETFL = 4;
    static final long MS_RDONLY = 1;
    static final long MS_NOSUID = 2;
    static final long MS_NODEV = 4;
    static final int MNT_DETACH = 2;
    static final int EINTR = 4;
    static final int ENOENT = 2;
    static final int EIO = 5;
    static final int EAGAIN = 11;
    static final int EBUSY = 16;
    static final int EINVAL = 22;
    static final int ENODEV = 19;
    static final int EFBIG = 27;
    static final int EROFS = 30;
    static final int ENOSYS = 38;
    static final int ENODATA = 61;
    static final int EPROTO = 71;
    static final int ENOTCONN = 107;

    static final LibC LIBC = LibraryLoader.create(LibC.class).load("c");
    static final Runtime RUNTIME = Runtime.getRuntime(LIBC);

    private Native() {
    }

    private static final long SYS_PIDFD_OPEN = 434;
    private static final long SYS_PIDFD_GETFD = 438;

    /**
     * Copies, in this process and in order, of file descriptors {@code fds} of process {@code pid}
     * (pidfd_getfd(2), Linux 5.6+; needs ptrace rights over {@code pid}, which root has). Each copy
     * refers to the same open file, close-on-exec. On a failure the copies made are closed.
     */
    static java.util.List<Integer> copyFds(int pid, java.util.List<Integer> fds) throws java.io.IOException {
        int pidfd = (int) LIBC.syscall(SYS_PIDFD_OPEN, pid, 0);
        if (pidfd < 0) {
            throw new java.io.IOException("pidfd_open(" + pid + ") failed: " + describe(errno()));
        }
        java.util.List<Integer> copies = new java.util.ArrayList<>();
        try {
            for (int fd : fds) {
                int copy = (int) LIBC.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0);
                if (copy < 0) {
                    throw new java.io.IOException("pidfd_getfd(" + pid + ", " + fd + ") failed: " + describe(errno()));
                }
                copies.add(copy);
            }
            return copies;
        } catch (java.io.IOException | RuntimeException e) {
            copies.forEach(LIBC::close);
            throw e;
        } finally {
            LIBC.close(pidfd);
        }
    }

    static int errno() {
        return LastError.getLastError(RUNTIME);
    }

    /** A pointer to the first byte of a direct buffer (its address, not its position). */
    static Pointer pointer(java.nio.ByteBuffer direct) {
        if (!direct.isDirect()) {
            throw new IllegalArgumentException("buffer must be direct");
        }
        return Pointer.wrap(RUNTIME, direct);
    }

    /** strerror-like text good enough for logs and exception messages. */
    static String describe(int errno) {
        return switch (errno) {
            case ENOENT -> "ENOENT";
            case EINTR -> "EINTR";
            case EIO -> "EIO";
            case EAGAIN -> "EAGAIN";
            case EBUSY -> "EBUSY";
            case ENODEV -> "ENODEV";
            case EINVAL -> "EINVAL";
            case ENOTCONN -> "ENOTCONN";
            case 1 -> "EPERM";
            case 13 -> "EACCES";
            default -> "errno " + errno;
        } + " (" + errno + ")";
    }
}

