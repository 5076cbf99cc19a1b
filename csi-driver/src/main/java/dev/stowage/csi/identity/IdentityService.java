package dev.stowage.csi.identity;

import csi.v1.Csi;
import csi.v1.Csi.PluginCapability;
import csi.v1.IdentityGrpc;
import dev.stowage.csi.server.Calls;
import dev.stowage.engine.api.VolumeService;
import io.grpc.stub.StreamObserver;

import com.google.protobuf.BoolValue;

/**
 * CSI Identity: reports the driver name and version, the plugin capabilities (controller service,
 * topology constraints, online expansion) and readiness, which is the engine's
 * {@link VolumeService#ready()}.
 *
 * <p>Threading: stateless apart from the engine reference; thread-safe.
 */
public final class IdentityService extends IdentityGrpc.IdentityImplBase {
    private final String driverName;
    private final String version;
    private final VolumeService volumes;

    public IdentityService(String driverName, String version, VolumeService volumes) {
        this.driverName = driverName;
        this.version = version;
        this.volumes = volumes;
    }

    @Override
    public void getPluginInfo(Csi.GetPluginInfoRequest request,
                              StreamObserver<Csi.GetPluginInfoResponse> observer) {
        Calls.unary("GetPluginInfo", observer, () -> Csi.GetPluginInfoResponse.newBuilder()
                .setName(driverName)
                .setVendorVersion(version)
                .build());
    }

    @Override
    public void getPluginCapabilities(Csi.GetPluginCapabilitiesRequest request,
                                      StreamObserver<Csi.GetPluginCapabilitiesResponse> observer) {
        Calls.unary("GetPluginCapabilities", observer, () -> Csi.GetPluginCapabilitiesResponse.newBuilder()
                .addCapabilities(service(PluginCapability.Service.Type.CONTROLLER_SERVICE))
                .addCapabilities(service(PluginCapability.Service.Type.VOLUME_ACCESSIBILITY_CONSTRAINTS))
                .addCapabilities(PluginCapability.newBuilder().setVolumeExpansion(
                        PluginCapability.VolumeExpansion.newBuilder()
                                .setType(PluginCapability.VolumeExpansion.Type.ONLINE)))
                .build());
    }

    private static PluginCapability service(PluginCapability.Service.Type type) {
        return PluginCapability.newBuilder()
                .setService(PluginCapability.Service.newBuilder().setType(type))
                .build();
    }

    @Override
    public void probe(Csi.ProbeRequest request, StreamObserver<Csi.ProbeResponse> observer) {
        Calls.unary("Probe", observer, () -> Csi.ProbeResponse.newBuilder()
                .setReady(BoolValue.of(volumes.ready()))
                .build());
    }
}
