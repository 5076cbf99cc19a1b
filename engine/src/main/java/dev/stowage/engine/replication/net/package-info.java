/**
 * The replication protocol (docs/replication.md): its binary frames and codec, the replica server
 * that serves a node's {@link dev.stowage.engine.storage.StoragePool} to coordinators on other
 * nodes (including the control requests with which the cluster's control plane creates, grows,
 * snapshots, lists and deletes the replicas a node holds), the pipelined replica client, and the
 * durable per-replica state the protocol relies on (the highest epoch seen, {@link dev.stowage.engine.replication.net.EpochFile}, and the highest
 * write generation per 1 MiB region, {@link dev.stowage.engine.replication.net.RegionGenerations}).
 *
 * <p>Netty is used directly here (epoll on Linux, NIO elsewhere); nothing outside this package
 * needs to see a {@code ByteBuf} except through {@link dev.stowage.engine.replication.net.Frame}.
 */
package dev.stowage.engine.replication.net;
