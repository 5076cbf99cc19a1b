/** Frontends: how the kernel sees a volume (FUSE file plus loop device here; NBD elsewhere). */
package dev.stowage.engine.frontend;
