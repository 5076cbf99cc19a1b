/**
 * The management API at the edge: the gRPC service {@code stowage.management.v1.Management} over a
 * {@link dev.stowage.engine.api.VolumeService} ({@link dev.stowage.engine.api.grpc.ManagementService},
 * served by {@link dev.stowage.engine.api.grpc.ManagementServer}), and the client that makes a remote node's
 * API look like a local {@code VolumeService} ({@link dev.stowage.engine.api.grpc.RemoteVolumeService}).
 * This package is the only part of the engine besides {@code cluster.etcd} that imports gRPC and protobuf;
 * {@link dev.stowage.engine.api.grpc.ManagementProtos} converts messages and
 * {@link dev.stowage.engine.api.grpc.ManagementStatus} maps errors, each in one place.
 */
package dev.stowage.engine.api.grpc;
