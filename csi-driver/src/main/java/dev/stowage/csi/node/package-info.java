/**
 * The CSI Node service: stages a volume on this host (attach its block device through the engine, create a
 * filesystem on a blank device, mount it), publishes it into pods (bind mounts), reports usage and grows
 * filesystems. All host work goes through {@link dev.stowage.csi.mount.Mounter}.
 */
package dev.stowage.csi.node;
