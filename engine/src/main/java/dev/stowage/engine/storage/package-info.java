/**
 * Replica data on a node's disks: thin, checksummed, copy-on-write layered replica stores and the
 * pool that keeps them in a data directory.
 *
 * <p>{@link dev.stowage.engine.storage.FileStoragePool} keeps a manifest and one pair of sparse
 * files per layer (data, crc32c table); {@link dev.stowage.engine.storage.LayeredReplicaStore}
 * reads through a volume's chain of layers and writes its head layer.
 */
package dev.stowage.engine.storage;
