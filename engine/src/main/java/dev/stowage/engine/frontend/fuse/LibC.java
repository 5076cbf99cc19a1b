package dev.stowage.engine.frontend.fuse;

import jnr.ffi.Pointer;
import jnr.ffi.annotations.SaveError;
import jnr.ffi.types.size_t;
import jnr.ffi.types.ssize_t;

/**
 * The few libc calls the FUSE frontend needs, bound through jnr-ffi. Buffers are passed as
 * {@link Pointer}s wrapping direct ByteBuffers (see {@link Native#pointer}); the calls neither keep
 * nor free them. Every call saves errno, read it with {@link Native#errno()} on the same thread.
 *
 * <p>Public only because jnr-ffi generates the implementation in another class loader; it is
 * not an API of the engine.
 */
public interface LibC {

    @SaveError
    int open(String path, int flags);

    @SaveError
    int close(int fd);

    @SaveError
    @ssize_t long read(int fd, Pointer buf, @size_t long count);

    @SaveError
    @ssize_t long write(int fd, Pointer buf, @size_t long count);

    /** fcntl(fd, cmd, arg) for the commands that take an int (F_GETFL, F_SETFL). */
    @SaveError
    int fcntl(int fd, int cmd, int arg);

    @SaveError
    int ioctl(int fd, long request, Pointer arg);

    @SaveError
    int mount(String source, String target, String fsType, long flags, String data);

    @SaveError
    int umount2(String target, int flags);

    /** pidfd_open(pid, flags) through syscall(2). */
    @SaveError
    long syscall(long number, int pid, int flags);

    /** pidfd_getfd(pidfd, targetfd, flags) through syscall(2). */
    @SaveError
    long syscall(long number, int pidfd, int targetFd, int flags);
}
