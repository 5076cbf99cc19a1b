/**
 * Replica data on a node's disks: thin, checksummed, copy-on-write layered replica stores and the
 * pool that keeps them in a data directory.
 */
package dev.stowage.engine.storage;
