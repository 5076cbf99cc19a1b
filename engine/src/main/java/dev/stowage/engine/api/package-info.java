/**
 * The engine's management API in domain terms: {@link dev.stowage.engine.api.VolumeService} and its
 * records and errors. No gRPC or protobuf types appear here; adapters at the edge translate.
 */
package dev.stowage.engine.api;
