/**
 * The FUSE frontend: each exported volume is one regular file served over the raw FUSE kernel
 * protocol (no libfuse; /dev/fuse read and written directly through jnr-ffi, several server
 * threads per volume on cloned fds), with a loop device on top as the volume's block device.
 */
package dev.stowage.engine.frontend.fuse;
