/**
 * Mounting, formatting and inspecting filesystems on a node: the {@link dev.stowage.csi.mount.Mounter}
 * interface the CSI node service calls, and {@link dev.stowage.csi.mount.LinuxMounter}, which runs the
 * real tools (mount, umount, blkid, mkfs.*, resize2fs, xfs_growfs, findmnt). Unit tests use a fake.
 */
package dev.stowage.csi.mount;
