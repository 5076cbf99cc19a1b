/**
 * Loop devices: turning a file (here, a volume served over FUSE) into a block device with the
 * real {@code losetup} tool, and finding the ones an earlier process left behind.
 */
package dev.stowage.engine.frontend.loop;
