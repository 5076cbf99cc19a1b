package dev.stowage.csi.server;

import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.EnumSet;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import csi.v1.ControllerGrpc;
import csi.v1.Csi;
import csi.v1.IdentityGrpc;
import csi.v1.NodeGrpc;
import dev.stowage.csi.mount.FakeMounter;
import dev.stowage.csi.testing.InMemoryVolumeService;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.epoll.EpollDomainSocketChannel;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.unix.DomainSocketAddress;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Starts the real server on a Unix socket in a temp dir and calls it with a gRPC client over epoll. */
class CsiServerTest {
    @TempDir
    Path dir;
    private final InMemoryVolumeService engine = new InMemoryVolumeService();
    private CsiServer server;
    private EventLoopGroup clientGroup;
    private ManagedChannel channel;

    @AfterEach
    void stop() throws Exception {
        if (channel != null) {
            channel.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
        }
        if (clientGroup != null) {
            clientGroup.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        }
        if (server != null) {
            server.close();
        }
    }

    private CsiServer start(Set<CsiServerConfig.Service> services) {
        Path socket = dir.resolve("csi.sock");
        server = new CsiServer(new CsiServerConfig("unix://" + socket, null, "0.1.0-test", null, services),
                engine, new FakeMounter()).start();
        clientGroup = new MultiThreadIoEventLoopGroup(1, EpollIoHandler.newFactory());
        channel = NettyChannelBuilder.forAddress(new DomainSocketAddress(socket.toString()))
                .eventLoopGroup(clientGroup)
                .channelType(EpollDomainSocketChannel.class)
                .withOption(ChannelOption.SO_KEEPALIVE, null)
                .usePlaintext()
                .build();
        return server;
    }

    @Test
    void servesIdentityOverTheSocketWithMode0600() throws Exception {
        start(EnumSet.allOf(CsiServerConfig.Service.class));
        IdentityGrpc.IdentityBlockingStub identity = IdentityGrpc.newBlockingStub(channel)
                .withDeadlineAfter(30, TimeUnit.SECONDS);
        Csi.GetPluginInfoResponse info = identity.getPluginInfo(Csi.GetPluginInfoRequest.getDefaultInstance());
        assertEquals("csi.stowage.dev", info.getName());
        assertEquals("0.1.0-test", info.getVendorVersion());
        assertTrue(identity.probe(Csi.ProbeRequest.getDefaultInstance()).getReady().getValue());
        engine.ready = false;
        assertFalse(identity.probe(Csi.ProbeRequest.getDefaultInstance()).getReady().getValue());
        assertEquals(3, identity.getPluginCapabilities(Csi.GetPluginCapabilitiesRequest.getDefaultInstance())
                .getCapabilitiesCount());

        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(server.socketPath())));

        Csi.NodeGetInfoResponse node = NodeGrpc.newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS)
                .nodeGetInfo(Csi.NodeGetInfoRequest.getDefaultInstance());
        assertEquals(InMemoryVolumeService.LOCAL_NODE, node.getNodeId());
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> ControllerGrpc
                .newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS)
                .createVolume(Csi.CreateVolumeRequest.newBuilder().putSecrets("k", "v").build()));
        assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
        assertEquals("name is required", e.getStatus().getDescription());

        server.close();
        assertFalse(Files.exists(server.socketPath()), "the socket is removed on close");
    }

    @Test
    void logsEachCallWithoutItsSecrets() {
        start(EnumSet.allOf(CsiServerConfig.Service.class));
        java.io.ByteArrayOutputStream captured = new java.io.ByteArrayOutputStream();
        java.io.PrintStream original = System.err;
        System.setErr(new java.io.PrintStream(captured, true, java.nio.charset.StandardCharsets.UTF_8));
        try {
            // The interceptor logs before the response is sent, so the line is there when the call returns.
            ControllerGrpc.newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS).createVolume(
                    Csi.CreateVolumeRequest.newBuilder().setName("pvc-logged")
                            .addVolumeCapabilities(Csi.VolumeCapability.newBuilder()
                                    .setMount(Csi.VolumeCapability.MountVolume.getDefaultInstance())
                                    .setAccessMode(Csi.VolumeCapability.AccessMode.newBuilder()
                                            .setMode(Csi.VolumeCapability.AccessMode.Mode.SINGLE_NODE_WRITER)))
                            .putSecrets("encryptionKey", "hunter2-secret").build());
        } finally {
            System.setErr(original);
        }
        String log = captured.toString(java.nio.charset.StandardCharsets.UTF_8);
        assertTrue(log.contains("CSI CreateVolume OK") && log.contains("pvc-logged"), log);
        assertFalse(log.contains("hunter2-secret"), log);
        assertFalse(log.contains("encryptionKey"), log);
    }

    @Test
    void servesOnlyTheConfiguredServices() {
        start(EnumSet.of(CsiServerConfig.Service.NODE));
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> ControllerGrpc
                .newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS)
                .controllerGetCapabilities(Csi.ControllerGetCapabilitiesRequest.getDefaultInstance()));
        assertEquals(Status.Code.UNIMPLEMENTED, e.getStatus().getCode());
    }

    @Test
    void replacesAStaleSocketButNoOtherFile() throws Exception {
        Path socket = dir.resolve("csi.sock");
        // A socket file left behind by a process that is gone.
        try (ServerSocketChannel stale = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            stale.bind(UnixDomainSocketAddress.of(socket));
        }
        assertTrue(Files.exists(socket));
        start(EnumSet.allOf(CsiServerConfig.Service.class));
        assertEquals("csi.stowage.dev", IdentityGrpc.newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS)
                .getPluginInfo(Csi.GetPluginInfoRequest.getDefaultInstance()).getName());

        Path regular = dir.resolve("data");
        Files.writeString(regular, "not a socket");
        CsiServer refused = new CsiServer(CsiServerConfig.both(regular.toString(), "1"), engine, new FakeMounter());
        IllegalStateException error = assertThrows(IllegalStateException.class, refused::start);
        assertTrue(error.getMessage().contains("is not a socket"), error.getMessage());
        assertEquals("not a socket", Files.readString(regular));
    }

    @Test
    void refusesASocketInAMissingDirectory() {
        CsiServer missing = new CsiServer(CsiServerConfig.both("unix://" + dir.resolve("nope/csi.sock"), "1"),
                engine, new FakeMounter());
        IllegalStateException error = assertThrows(IllegalStateException.class, missing::start);
        assertTrue(error.getMessage().contains("does not exist"), error.getMessage());
    }
}
