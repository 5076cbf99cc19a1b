package dev.stowage.engine.frontend.fuse;

/**
 * Constants and structure sizes of the FUSE kernel protocol (include/uapi/linux/fuse.h), only
 * what this single-file server speaks. All integers on the wire are in the host's byte order.
 */
final class FuseProtocol {
    private FuseProtocol() {
    }

    static final int KERNEL_VERSION = 7;
    /** Highest minor this server knows the structures of; the kernel and we agree on the lower. */
    static final int MAX_MINOR = 38;
    static final long ROOT_ID = 1;

    // opcodes
    static final int LOOKUP = 1;
    static final int FORGET = 2;
    static final int GETATTR = 3;
    static final int SETATTR = 4;
    static final int OPEN = 14;
    static final int READ = 15;
    static final int WRITE = 16;
    static final int STATFS = 17;
    static final int RELEASE = 18;
    static final int FSYNC = 20;
    static final int SETXATTR = 21;
    static final int GETXATTR = 22;
    static final int LISTXATTR = 23;
    static final int REMOVEXATTR = 24;
    static final int FLUSH = 25;
    static final int INIT = 26;
    static final int ACCESS = 34;
    static final int INTERRUPT = 36;
    static final int DESTROY = 38;
    static final int BATCH_FORGET = 42;

    // INIT flags
    static final int ASYNC_READ = 1;
    static final int BIG_WRITES = 1 << 5;
    static final int ASYNC_DIO = 1 << 15;
    static final int PARALLEL_DIROPS = 1 << 18;
    static final int MAX_PAGES = 1 << 22;

    // OPEN reply flags
    static final int FOPEN_DIRECT_IO = 1;
    static final int FOPEN_PARALLEL_DIRECT_WRITES = 1 << 6;

    // SETATTR valid bits
    static final int FATTR_SIZE = 1 << 3;

    static final int NOTIFY_INVAL_INODE = 2;
    /** Requests read by the server and not answered go back to the queue (Linux 6.9+, protocol 7.40). */
    static final int NOTIFY_RESEND = 7;

    /** _IOR(229, 0, uint32_t). */
    static final long DEV_IOC_CLONE = 0x8004E500L;

    static final int IN_HEADER = 40;
    static final int OUT_HEADER = 16;
    static final int INIT_OUT = 64;
    static final int INIT_OUT_COMPAT_22 = 24;
    static final int ATTR_OUT = 104;
    static final int OPEN_OUT = 16;
    static final int READ_IN = 40;
    static final int WRITE_IN = 40;
    static final int WRITE_OUT = 8;
    static final int STATFS_OUT = 80;
    static final int NOTIFY_INVAL_INODE_OUT = 24;

    static final int S_IFREG = 0100000;
    static final int PAGE_SIZE = 4096;
}
