/**
 * The seam between frontends and the volume's coordinator: {@link dev.stowage.engine.block.BlockTarget}.
 * A new frontend implements against this interface only.
 */
package dev.stowage.engine.block;
