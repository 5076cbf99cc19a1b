/** The CSI Identity service: plugin name and version, plugin capabilities, readiness probe. */
package dev.stowage.csi.identity;
