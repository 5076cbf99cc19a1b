/**
 * {@code stowctl}, the operator's command line over a node's management API: {@link dev.stowage.cli.StowctlMain}
 * parses the command ({@link dev.stowage.cli.Args}), {@link dev.stowage.cli.Commands} calls the API through
 * {@link dev.stowage.engine.api.grpc.RemoteVolumeService}, and the answer is printed as an aligned
 * {@link dev.stowage.cli.Table} or as JSON written by {@link dev.stowage.cli.JsonWriter}. Sizes are parsed
 * and shown by {@link dev.stowage.cli.Sizes}.
 */
package dev.stowage.cli;
