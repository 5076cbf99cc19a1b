/**
 * The CSI Controller service: volume and snapshot lifecycle, publication to nodes, listing, capacity and
 * expansion, translated onto the engine's {@link dev.stowage.engine.api.VolumeService}.
 */
package dev.stowage.csi.controller;
