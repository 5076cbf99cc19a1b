package dev.stowage.launcher;

import csi.v1.ControllerGrpc;
import csi.v1.Csi;
import csi.v1.IdentityGrpc;
import csi.v1.NodeGrpc;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import io.netty.channel.epoll.EpollDomainSocketChannel;
import io.netty.channel.epoll.EpollEventLoopGroup;
import io.netty.channel.unix.DomainSocketAddress;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * {@code stowage csi --endpoint unix:///PATH VERB ARGS}: makes single CSI calls as an orchestrator
 * would, for scripts (the benchmark) and for operators debugging a node. Prints the result's key
 * value (a volume id, a node id) on stdout; errors are one line on stderr and exit code 1.
 */
final class CsiCommand {
    static final String USAGE = """
            usage: stowage csi --endpoint unix:///PATH VERB ARGS
              node-id
              create-volume NAME SIZE_BYTES [mount|block] [fsType]
              controller-publish VOLUME_ID NODE_ID
              stage VOLUME_ID STAGING_PATH [mount|block] [fsType]
              publish VOLUME_ID STAGING_PATH TARGET_PATH [mount|block]
              node-expand VOLUME_ID VOLUME_PATH      grow the filesystem mounted at VOLUME_PATH
                                                     (after the controller grew the volume); prints the size
              unpublish VOLUME_ID TARGET_PATH
              unstage VOLUME_ID STAGING_PATH
              controller-unpublish VOLUME_ID NODE_ID
              delete-volume VOLUME_ID
            """;

    private CsiCommand() {}

    static int run(List<String> args) throws InterruptedException {
        if (args.size() < 3 || !args.get(0).equals("--endpoint")) {
            System.err.print(USAGE);
            return 2;
        }
        String socket = NodeOptions.parseEndpoint(args.get(1)).toString();
        List<String> a = args.subList(2, args.size());
        EpollEventLoopGroup group = new EpollEventLoopGroup(1);
        ManagedChannel channel = NettyChannelBuilder.forAddress(new DomainSocketAddress(socket))
                .eventLoopGroup(group).channelType(EpollDomainSocketChannel.class).usePlaintext().build();
        try {
            String out = call(channel, a);
            if (out != null) {
                System.out.println(out);
            }
            return 0;
        } catch (StatusRuntimeException e) {
            System.err.println("stowage csi " + a.get(0) + ": " + e.getStatus().getCode() + ": "
                    + e.getStatus().getDescription());
            return 1;
        } catch (IllegalArgumentException | IndexOutOfBoundsException e) {
            System.err.println("stowage csi: bad arguments " + a + "\n" + USAGE);
            return 2;
        } finally {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS);
        }
    }

    private static String call(ManagedChannel channel, List<String> a) {
        ControllerGrpc.ControllerBlockingStub controller = ControllerGrpc.newBlockingStub(channel)
                .withDeadlineAfter(5, TimeUnit.MINUTES);
        NodeGrpc.NodeBlockingStub node = NodeGrpc.newBlockingStub(channel).withDeadlineAfter(5, TimeUnit.MINUTES);
        return switch (a.get(0)) {
            case "node-id" -> node.nodeGetInfo(Csi.NodeGetInfoRequest.getDefaultInstance()).getNodeId();
            case "probe" -> Boolean.toString(IdentityGrpc.newBlockingStub(channel)
                    .probe(Csi.ProbeRequest.getDefaultInstance()).getReady().getValue());
            case "create-volume" -> controller.createVolume(Csi.CreateVolumeRequest.newBuilder()
                    .setName(a.get(1))
                    .setCapacityRange(Csi.CapacityRange.newBuilder().setRequiredBytes(Long.parseLong(a.get(2))))
                    .addVolumeCapabilities(capability(a, 3)).build()).getVolume().getVolumeId();
            case "controller-publish" -> {
                controller.controllerPublishVolume(Csi.ControllerPublishVolumeRequest.newBuilder()
                        .setVolumeId(a.get(1)).setNodeId(a.get(2)).setVolumeCapability(capability(a, 3)).build());
                yield null;
            }
            case "stage" -> {
                node.nodeStageVolume(Csi.NodeStageVolumeRequest.newBuilder().setVolumeId(a.get(1))
                        .setStagingTargetPath(a.get(2)).setVolumeCapability(capability(a, 3)).build());
                yield null;
            }
            case "publish" -> {
                node.nodePublishVolume(Csi.NodePublishVolumeRequest.newBuilder().setVolumeId(a.get(1))
                        .setStagingTargetPath(a.get(2)).setTargetPath(a.get(3)).setVolumeCapability(capability(a, 4))
                        .build());
                yield null;
            }
            case "node-expand" -> Long.toString(node.nodeExpandVolume(Csi.NodeExpandVolumeRequest.newBuilder()
                    .setVolumeId(a.get(1)).setVolumePath(a.get(2)).build()).getCapacityBytes());
            case "unpublish" -> {
                node.nodeUnpublishVolume(Csi.NodeUnpublishVolumeRequest.newBuilder().setVolumeId(a.get(1))
                        .setTargetPath(a.get(2)).build());
                yield null;
            }
            case "unstage" -> {
                node.nodeUnstageVolume(Csi.NodeUnstageVolumeRequest.newBuilder().setVolumeId(a.get(1))
                        .setStagingTargetPath(a.get(2)).build());
                yield null;
            }
            case "controller-unpublish" -> {
                controller.controllerUnpublishVolume(Csi.ControllerUnpublishVolumeRequest.newBuilder()
                        .setVolumeId(a.get(1)).setNodeId(a.get(2)).build());
                yield null;
            }
            case "delete-volume" -> {
                controller.deleteVolume(Csi.DeleteVolumeRequest.newBuilder().setVolumeId(a.get(1)).build());
                yield null;
            }
            default -> throw new IllegalArgumentException("unknown verb " + a.get(0));
        };
    }

    /** A SINGLE_NODE_WRITER capability; args[i] picks mount (default) or block, args[i+1] the fs type. */
    private static Csi.VolumeCapability capability(List<String> a, int i) {
        String type = a.size() > i ? a.get(i) : "mount";
        Csi.VolumeCapability.Builder b = Csi.VolumeCapability.newBuilder().setAccessMode(
                Csi.VolumeCapability.AccessMode.newBuilder().setMode(Csi.VolumeCapability.AccessMode.Mode.SINGLE_NODE_WRITER));
        switch (type) {
            case "block" -> b.setBlock(Csi.VolumeCapability.BlockVolume.getDefaultInstance());
            case "mount" -> b.setMount(Csi.VolumeCapability.MountVolume.newBuilder()
                    .setFsType(a.size() > i + 1 ? a.get(i + 1) : "ext4"));
            default -> throw new IllegalArgumentException("access type " + type);
        }
        return b.build();
    }
}
