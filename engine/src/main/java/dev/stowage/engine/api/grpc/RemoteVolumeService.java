package dev.stowage.engine.api.grpc;

import dev.stowage.engine.api.Capacity;
import dev.stowage.engine.api.ClusterNode;
import dev.stowage.engine.api.NodeInfo;
import dev.stowage.engine.api.Page;
import dev.stowage.engine.api.ReplicaCopy;
import dev.stowage.engine.api.Snapshot;
import dev.stowage.engine.api.StowageException;
import dev.stowage.engine.api.Volume;
import dev.stowage.engine.api.VolumeService;
import dev.stowage.engine.api.VolumeSpec;
import dev.stowage.proto.management.AttachDeviceRequest;
import dev.stowage.proto.management.CapacityRequest;
import dev.stowage.proto.management.CapacityResponse;
import dev.stowage.proto.management.ClusterStatusRequest;
import dev.stowage.proto.management.ClusterStatusResponse;
import dev.stowage.proto.management.CreateSnapshotRequest;
import dev.stowage.proto.management.DeleteSnapshotRequest;
import dev.stowage.proto.management.DeleteVolumeRequest;
import dev.stowage.proto.management.DetachDeviceRequest;
import dev.stowage.proto.management.ExpandVolumeRequest;
import dev.stowage.proto.management.GetSnapshotRequest;
import dev.stowage.proto.management.GetSnapshotResponse;
import dev.stowage.proto.management.GetVolumeRequest;
import dev.stowage.proto.management.GetVolumeResponse;
import dev.stowage.proto.management.ListNodesRequest;
import dev.stowage.proto.management.ListSnapshotsRequest;
import dev.stowage.proto.management.ListSnapshotsResponse;
import dev.stowage.proto.management.ListVolumesRequest;
import dev.stowage.proto.management.ListVolumesResponse;
import dev.stowage.proto.management.ManagementGrpc;
import dev.stowage.proto.management.ModifyVolumeRequest;
import dev.stowage.proto.management.NodeExistsRequest;
import dev.stowage.proto.management.NodeInfoRequest;
import dev.stowage.proto.management.NodeInfoResponse;
import dev.stowage.proto.management.PublishRequest;
import dev.stowage.proto.management.UnpublishRequest;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * A {@link VolumeService} that is another node's management API: every call is one blocking gRPC call
 * with a deadline. Failures are the same {@link StowageException}s the remote service threw (code, field
 * and message, see {@link ManagementStatus}); a node that cannot be reached is UNAVAILABLE, with a
 * message naming the endpoint, and a call that ran out of time is UNAVAILABLE too.
 *
 * <p>Threading: thread-safe; calls may run concurrently. {@link #close()} shuts the channel down.
 */
public final class RemoteVolumeService implements VolumeService, AutoCloseable {
    /** Deadline of one call: generous, as attaching a volume starts a frontend. */
    public static final Duration DEFAULT_DEADLINE = Duration.ofMinutes(2);
    /** Deadline of {@link #ready()}, which is a probe. */
    private static final Duration PROBE_DEADLINE = Duration.ofSeconds(5);

    /**
     * What {@code ClusterStatus} reports: readiness, the node serving the API ({@code nodes}, one entry),
     * the cluster's members as that node sees them, and object counts.
     */
    public record ClusterStatus(boolean ready, List<NodeInfo> nodes, long volumeCount, long snapshotCount,
                                List<ClusterNode> members) {}

    private final ManagedChannel channel;
    private final ManagementGrpc.ManagementBlockingStub stub;
    private final String endpoint;
    private final Duration deadline;

    private RemoteVolumeService(ManagedChannel channel, String endpoint, Duration deadline) {
        this.channel = channel;
        this.stub = ManagementGrpc.newBlockingStub(channel);
        this.endpoint = endpoint;
        this.deadline = deadline;
    }

    /** Connects (lazily, on the first call) to {@code endpoint} "HOST:PORT" with {@link #DEFAULT_DEADLINE}. */
    public static RemoteVolumeService connect(String endpoint) {
        return connect(endpoint, DEFAULT_DEADLINE);
    }

    /**
     * Connects (lazily) to {@code endpoint}, "HOST:PORT" or "[IPv6]:PORT"; each call gets {@code deadline}.
     * A malformed endpoint is an INVALID_ARGUMENT {@link StowageException} naming field "endpoint".
     */
    public static RemoteVolumeService connect(String endpoint, Duration deadline) {
        return connect(endpoint, deadline, java.util.Optional.empty());
    }

    /** As {@link #connect(String, Duration)}, sending {@code token} with every call when present. */
    public static RemoteVolumeService connect(String endpoint, Duration deadline, java.util.Optional<ApiToken> token) {
        int colon = endpoint == null ? -1 : endpoint.lastIndexOf(':');
        if (colon <= 0 || colon == endpoint.length() - 1) {
            throw StowageException.invalid("endpoint", "'" + endpoint + "' is not HOST:PORT");
        }
        String host = endpoint.substring(0, colon);
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        }
        int port;
        try {
            port = Integer.parseInt(endpoint.substring(colon + 1));
        } catch (NumberFormatException e) {
            port = -1;
        }
        if (port < 1 || port > 65535 || host.isEmpty()) {
            throw StowageException.invalid("endpoint", "'" + endpoint + "' is not HOST:PORT with a port 1-65535");
        }
        NettyChannelBuilder builder = NettyChannelBuilder.forAddress(host, port).usePlaintext();
        token.ifPresent(t -> builder.intercept(t.clientInterceptor()));
        ManagedChannel channel = builder.build();
        return new RemoteVolumeService(channel, endpoint, deadline);
    }

    /** The endpoint this client calls. */
    public String endpoint() {
        return endpoint;
    }

    private <T> T call(Function<ManagementGrpc.ManagementBlockingStub, T> rpc) {
        return call(deadline, rpc);
    }

    private <T> T call(Duration timeout, Function<ManagementGrpc.ManagementBlockingStub, T> rpc) {
        try {
            return rpc.apply(stub.withDeadlineAfter(timeout.toMillis(), TimeUnit.MILLISECONDS));
        } catch (StatusRuntimeException e) {
            throw ManagementStatus.toStowage(e, endpoint);
        }
    }

    /** True when the remote node answers and reports itself ready; false when it cannot be reached. */
    @Override
    public boolean ready() {
        try {
            return call(PROBE_DEADLINE, s -> s.nodeInfo(NodeInfoRequest.getDefaultInstance())).getReady();
        } catch (StowageException e) {
            return false;
        }
    }

    @Override
    public NodeInfo localNode() {
        return ManagementProtos.toDomain(nodeInfo().getNode());
    }

    @Override
    public Map<String, String> supportedParameters() {
        return Map.copyOf(nodeInfo().getSupportedParametersMap());
    }

    private NodeInfoResponse nodeInfo() {
        return call(s -> s.nodeInfo(NodeInfoRequest.getDefaultInstance()));
    }

    /** The remote node's view of the cluster. */
    public ClusterStatus clusterStatus() {
        ClusterStatusResponse r = call(s -> s.clusterStatus(ClusterStatusRequest.getDefaultInstance()));
        return new ClusterStatus(r.getReady(), r.getNodesList().stream().map(ManagementProtos::toDomain).toList(),
                r.getVolumeCount(), r.getSnapshotCount(),
                r.getMembersList().stream().map(ManagementProtos::toDomain).toList());
    }

    @Override
    public List<ClusterNode> clusterNodes() {
        return call(s -> s.listNodes(ListNodesRequest.getDefaultInstance())).getNodesList().stream()
                .map(ManagementProtos::toDomain).toList();
    }

    @Override
    public Volume createVolume(VolumeSpec spec) {
        return ManagementProtos.toDomain(call(s -> s.createVolume(ManagementProtos.toRequest(spec))).getVolume());
    }

    @Override
    public void deleteVolume(String volumeId) {
        call(s -> s.deleteVolume(DeleteVolumeRequest.newBuilder().setVolumeId(str(volumeId)).build()));
    }

    @Override
    public Optional<Volume> getVolume(String volumeId) {
        GetVolumeResponse r = call(s -> s.getVolume(GetVolumeRequest.newBuilder().setVolumeId(str(volumeId)).build()));
        return r.hasVolume() ? Optional.of(ManagementProtos.toDomain(r.getVolume())) : Optional.empty();
    }

    @Override
    public Page<Volume> listVolumes(int maxEntries, String startingToken) {
        ListVolumesResponse r = call(s -> s.listVolumes(ListVolumesRequest.newBuilder()
                .setMaxEntries(maxEntries).setStartingToken(str(startingToken)).build()));
        return new Page<>(r.getVolumesList().stream().map(ManagementProtos::toDomain).toList(), r.getNextToken());
    }

    @Override
    public long expandVolume(String volumeId, long requiredBytes, long limitBytes) {
        return call(s -> s.expandVolume(ExpandVolumeRequest.newBuilder().setVolumeId(str(volumeId))
                .setRequiredBytes(requiredBytes).setLimitBytes(limitBytes).build())).getSizeBytes();
    }

    @Override
    public Volume modifyVolume(String volumeId, Map<String, String> mutableParameters) {
        return ManagementProtos.toDomain(call(s -> s.modifyVolume(ModifyVolumeRequest.newBuilder()
                .setVolumeId(str(volumeId)).putAllModifiableParameters(mutableParameters).build())).getVolume());
    }

    @Override
    public Snapshot createSnapshot(String name, String sourceVolumeId) {
        return ManagementProtos.toDomain(call(s -> s.createSnapshot(CreateSnapshotRequest.newBuilder()
                .setName(str(name)).setSourceVolumeId(str(sourceVolumeId)).build())).getSnapshot());
    }

    @Override
    public void copyReplicasHeld(String coordinatorNodeId, String sourceVolumeId, List<String> nodeIds,
                                 ReplicaCopy copy) {
        call(s -> s.copyReplicasHeld(ManagementProtos.toRequest(coordinatorNodeId, sourceVolumeId, nodeIds, copy)));
    }

    @Override
    public void deleteSnapshot(String snapshotId) {
        call(s -> s.deleteSnapshot(DeleteSnapshotRequest.newBuilder().setSnapshotId(str(snapshotId)).build()));
    }

    @Override
    public Optional<Snapshot> getSnapshot(String snapshotId) {
        GetSnapshotResponse r = call(s -> s.getSnapshot(
                GetSnapshotRequest.newBuilder().setSnapshotId(str(snapshotId)).build()));
        return r.hasSnapshot() ? Optional.of(ManagementProtos.toDomain(r.getSnapshot())) : Optional.empty();
    }

    @Override
    public Page<Snapshot> listSnapshots(String sourceVolumeId, String snapshotId, int maxEntries,
                                        String startingToken) {
        ListSnapshotsResponse r = call(s -> s.listSnapshots(ListSnapshotsRequest.newBuilder()
                .setSourceVolumeId(str(sourceVolumeId)).setSnapshotId(str(snapshotId))
                .setMaxEntries(maxEntries).setStartingToken(str(startingToken)).build()));
        return new Page<>(r.getSnapshotsList().stream().map(ManagementProtos::toDomain).toList(), r.getNextToken());
    }

    @Override
    public Volume publish(String volumeId, String nodeId, boolean readOnly, boolean force) {
        return ManagementProtos.toDomain(call(s -> s.publish(PublishRequest.newBuilder().setVolumeId(str(volumeId))
                .setNodeId(str(nodeId)).setReadOnly(readOnly).setForce(force).build())).getVolume());
    }

    @Override
    public void unpublish(String volumeId, String nodeId) {
        call(s -> s.unpublish(UnpublishRequest.newBuilder().setVolumeId(str(volumeId)).setNodeId(str(nodeId)).build()));
    }

    /** Attaches on the remote node; the path is a device there, not on the caller's host. */
    @Override
    public Path attachDevice(String volumeId) {
        return Path.of(call(s -> s.attachDevice(
                AttachDeviceRequest.newBuilder().setVolumeId(str(volumeId)).build())).getDevicePath());
    }

    @Override
    public void detachDevice(String volumeId) {
        call(s -> s.detachDevice(DetachDeviceRequest.newBuilder().setVolumeId(str(volumeId)).build()));
    }

    @Override
    public Capacity capacity(Map<String, String> topologySegments) {
        CapacityResponse r = call(s -> s.capacity(
                CapacityRequest.newBuilder().putAllTopologySegments(topologySegments).build()));
        return ManagementProtos.toDomain(r);
    }

    @Override
    public boolean nodeExists(String nodeId) {
        return call(s -> s.nodeExists(NodeExistsRequest.newBuilder().setNodeId(str(nodeId)).build())).getExists();
    }

    /** Shuts the channel down, waiting briefly for calls in flight. */
    @Override
    public void close() {
        channel.shutdown();
        try {
            if (!channel.awaitTermination(5, TimeUnit.SECONDS)) {
                channel.shutdownNow();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            channel.shutdownNow();
        }
    }

    private static String str(String s) {
        return ManagementProtos.nullToEmpty(s);
    }
}
