/**
 * The CSI gRPC server on a Unix domain socket ({@link dev.stowage.csi.server.CsiServer}) and what every
 * CSI service shares: endpoint parsing, the per-volume try-locks, the single table that maps domain
 * errors to gRPC status codes, request validation helpers and the logging interceptor that strips
 * secrets. Only this package and the service packages import io.grpc and protobuf; the engine does not.
 */
package dev.stowage.csi.server;
