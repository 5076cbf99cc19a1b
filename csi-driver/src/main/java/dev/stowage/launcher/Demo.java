package dev.stowage.launcher;

import csi.v1.ControllerGrpc;
import csi.v1.Csi;
import csi.v1.NodeGrpc;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import io.netty.channel.epoll.EpollDomainSocketChannel;
import io.netty.channel.epoll.EpollEventLoopGroup;
import io.netty.channel.unix.DomainSocketAddress;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.zip.CRC32C;

/**
 * {@code stowage demo}: one host, end to end, through the same CSI calls Kubernetes makes. Starts a
 * node with a fresh data directory, creates a volume, stages (formats, mounts) and publishes it,
 * writes and verifies data, snapshots it, clones the snapshot and reads the clone, grows the volume
 * online, then takes everything down again. Each step prints its duration. Exit code 0 only if every
 * step and check passed; everything is cleaned up either way.
 */
final class Demo {
    private static final long MIB = 1L << 20;
    /**
     * xfs, because growing a mounted ext4 needs CAP_SYS_RESOURCE (EXT4_IOC_RESIZE_FS), which
     * sandboxed hosts such as our CI machines withhold even from root; xfs_growfs does not need it.
     */
    private static final String FS_TYPE = "xfs";

    private Demo() {}

    static int run(List<String> args) throws Exception {
        Path dir = Files.createTempDirectory("stowage-demo-");
        NodeOptions options = NodeOptions.parse(List.of("--data-dir", dir.resolve("data").toString(),
                "--csi-endpoint", "unix://" + dir.resolve("csi.sock"), "--node-id", "demo-node",
                "--api-listen", "127.0.0.1:0"));
        System.out.println("Stowage demo in " + dir);
        NodeRuntime node = null;
        EpollEventLoopGroup group = new EpollEventLoopGroup(1);
        ManagedChannel channel = null;
        String volumeId = null;
        String cloneId = null;
        String snapshotId = null;
        Path staging = dir.resolve("staging");
        Path target = dir.resolve("pod/volume");
        Path cloneStaging = dir.resolve("clone-staging");
        try {
            NodeRuntime started = step("start stowage node (storage pool, metadata, FUSE frontend, CSI socket)",
                    () -> NodeRuntime.start(options));
            node = started;
            channel = NettyChannelBuilder.forAddress(new DomainSocketAddress(options.csiSocket().toString()))
                    .eventLoopGroup(group).channelType(EpollDomainSocketChannel.class).usePlaintext().build();
            ControllerGrpc.ControllerBlockingStub controller = ControllerGrpc.newBlockingStub(channel);
            NodeGrpc.NodeBlockingStub nodeApi = NodeGrpc.newBlockingStub(channel);
            Csi.VolumeCapability mount = Csi.VolumeCapability.newBuilder()
                    .setMount(Csi.VolumeCapability.MountVolume.newBuilder().setFsType(FS_TYPE))
                    .setAccessMode(Csi.VolumeCapability.AccessMode.newBuilder()
                            .setMode(Csi.VolumeCapability.AccessMode.Mode.SINGLE_NODE_WRITER))
                    .build();

            Csi.Volume volume = step("CreateVolume demo-volume (1 GiB, repl=1, " + FS_TYPE + ")", () -> controller.createVolume(
                    Csi.CreateVolumeRequest.newBuilder().setName("demo-volume").addVolumeCapabilities(mount)
                            .setCapacityRange(Csi.CapacityRange.newBuilder().setRequiredBytes(1024 * MIB))
                            .putParameters("repl", "1").putParameters("fsType", FS_TYPE).build()).getVolume());
            volumeId = volume.getVolumeId();
            String id = volumeId;
            System.out.println("    volume " + id + ", topology " + volume.getAccessibleTopologyList());
            step("ControllerPublishVolume to demo-node", () -> controller.controllerPublishVolume(
                    Csi.ControllerPublishVolumeRequest.newBuilder().setVolumeId(id).setNodeId("demo-node")
                            .setVolumeCapability(mount).build()));
            step("NodeStageVolume (FUSE export, loop device, mkfs." + FS_TYPE + ", mount)", () -> nodeApi.nodeStageVolume(
                    Csi.NodeStageVolumeRequest.newBuilder().setVolumeId(id)
                            .setStagingTargetPath(staging.toString()).setVolumeCapability(mount).build()));
            step("NodePublishVolume (bind mount into the pod's path)", () -> nodeApi.nodePublishVolume(
                    Csi.NodePublishVolumeRequest.newBuilder().setVolumeId(id).setStagingTargetPath(staging.toString())
                            .setTargetPath(target.toString()).setVolumeCapability(mount).build()));
            long crc = step("write 64 MiB to a file on the volume and fsync", () -> writeFile(target.resolve("data.bin"), 64));
            step("read it back and verify its crc32c", () -> verifyFile(target.resolve("data.bin"), crc));
            Csi.NodeGetVolumeStatsResponse stats = step("NodeGetVolumeStats", () -> nodeApi.nodeGetVolumeStats(
                    Csi.NodeGetVolumeStatsRequest.newBuilder().setVolumeId(id).setVolumePath(target.toString()).build()));
            for (Csi.VolumeUsage u : stats.getUsageList()) {
                System.out.printf("    %s: total %d, used %d, available %d%n", u.getUnit(), u.getTotal(), u.getUsed(),
                        u.getAvailable());
            }
            snapshotId = step("CreateSnapshot demo-snapshot (copy-on-write)", () -> controller.createSnapshot(
                    Csi.CreateSnapshotRequest.newBuilder().setName("demo-snapshot").setSourceVolumeId(id).build())
                    .getSnapshot().getSnapshotId());
            step("overwrite the file after the snapshot", () -> writeFile(target.resolve("data.bin"), 16));
            String snap = snapshotId;
            cloneId = step("CreateVolume demo-clone from the snapshot", () -> controller.createVolume(
                    Csi.CreateVolumeRequest.newBuilder().setName("demo-clone").addVolumeCapabilities(mount)
                            .setCapacityRange(Csi.CapacityRange.newBuilder().setRequiredBytes(1024 * MIB))
                            .setVolumeContentSource(Csi.VolumeContentSource.newBuilder().setSnapshot(
                                    Csi.VolumeContentSource.SnapshotSource.newBuilder().setSnapshotId(snap)))
                            .build()).getVolume().getVolumeId());
            String clone = cloneId;
            step("stage the clone and verify it holds the data at snapshot time", () -> {
                controller.controllerPublishVolume(Csi.ControllerPublishVolumeRequest.newBuilder().setVolumeId(clone)
                        .setNodeId("demo-node").setVolumeCapability(mount).build());
                nodeApi.nodeStageVolume(Csi.NodeStageVolumeRequest.newBuilder().setVolumeId(clone)
                        .setStagingTargetPath(cloneStaging.toString()).setVolumeCapability(mount).build());
                return verifyFile(cloneStaging.resolve("data.bin"), crc);
            });
            step("ControllerExpandVolume + NodeExpandVolume to 2 GiB, online", () -> {
                controller.controllerExpandVolume(Csi.ControllerExpandVolumeRequest.newBuilder().setVolumeId(id)
                        .setCapacityRange(Csi.CapacityRange.newBuilder().setRequiredBytes(2048 * MIB)).build());
                return nodeApi.nodeExpandVolume(Csi.NodeExpandVolumeRequest.newBuilder().setVolumeId(id)
                        .setVolumePath(target.toString()).setStagingTargetPath(staging.toString())
                        .setCapacityRange(Csi.CapacityRange.newBuilder().setRequiredBytes(2048 * MIB)).build());
            });
            long total = Files.getFileStore(target).getTotalSpace();
            System.out.printf("    file system size now %d MiB%n", total / MIB);
            if (total < 1900 * MIB) {
                throw new IllegalStateException("the file system did not grow: " + total + " bytes");
            }
            System.out.println("demo: all steps passed");
            return 0;
        } catch (Exception e) {
            System.out.println("demo: FAILED: " + e);
            return 1;
        } finally {
            if (channel != null) {
                ManagedChannel ch = channel;
                String vol = volumeId;
                String clone = cloneId;
                String snap = snapshotId;
                quietly("tear down (unpublish, unstage, delete clone, snapshot and volume)", () -> {
                    teardown(ch, vol, "demo-node", staging, target);
                    teardown(ch, clone, "demo-node", cloneStaging, null);
                    ControllerGrpc.ControllerBlockingStub c = ControllerGrpc.newBlockingStub(ch);
                    if (clone != null) {
                        c.deleteVolume(Csi.DeleteVolumeRequest.newBuilder().setVolumeId(clone).build());
                    }
                    if (snap != null) {
                        c.deleteSnapshot(Csi.DeleteSnapshotRequest.newBuilder().setSnapshotId(snap).build());
                    }
                    if (vol != null) {
                        c.deleteVolume(Csi.DeleteVolumeRequest.newBuilder().setVolumeId(vol).build());
                    }
                    return null;
                });
                channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            }
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS);
            if (node != null) {
                NodeRuntime n = node;
                quietly("stop stowage node", () -> {
                    n.close();
                    return null;
                });
            }
            deleteTree(dir);
        }
    }

    private static void teardown(ManagedChannel channel, String volumeId, String nodeId, Path staging, Path target) {
        if (volumeId == null) {
            return;
        }
        NodeGrpc.NodeBlockingStub node = NodeGrpc.newBlockingStub(channel);
        if (target != null) {
            node.nodeUnpublishVolume(Csi.NodeUnpublishVolumeRequest.newBuilder().setVolumeId(volumeId)
                    .setTargetPath(target.toString()).build());
        }
        node.nodeUnstageVolume(Csi.NodeUnstageVolumeRequest.newBuilder().setVolumeId(volumeId)
                .setStagingTargetPath(staging.toString()).build());
        ControllerGrpc.newBlockingStub(channel).controllerUnpublishVolume(Csi.ControllerUnpublishVolumeRequest
                .newBuilder().setVolumeId(volumeId).setNodeId(nodeId).build());
    }

    private static long writeFile(Path file, int mib) throws IOException {
        Random random = new Random(mib);
        ByteBuffer buf = ByteBuffer.allocateDirect((int) MIB);
        byte[] chunk = new byte[(int) MIB];
        CRC32C crc = new CRC32C();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            for (int i = 0; i < mib; i++) {
                random.nextBytes(chunk);
                crc.update(chunk);
                buf.clear();
                buf.put(chunk).flip();
                while (buf.hasRemaining()) {
                    ch.write(buf);
                }
            }
            ch.force(true);
        }
        return crc.getValue();
    }

    private static long verifyFile(Path file, long expected) throws IOException {
        CRC32C crc = new CRC32C();
        ByteBuffer buf = ByteBuffer.allocate((int) MIB);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            while (ch.read(buf.clear()) > 0) {
                crc.update(buf.flip());
            }
        }
        if (crc.getValue() != expected) {
            throw new IllegalStateException(file + ": crc32c " + Long.toHexString(crc.getValue()) + ", expected "
                    + Long.toHexString(expected));
        }
        System.out.printf("    crc32c %08x matches%n", expected);
        return expected;
    }

    private static <T> T step(String what, Callable<T> action) throws Exception {
        long start = System.nanoTime();
        System.out.printf("==> %s%n", what);
        T result = action.call();
        System.out.printf("    done in %.0f ms%n", (System.nanoTime() - start) / 1e6);
        return result;
    }

    private static void quietly(String what, Callable<?> action) {
        try {
            step(what, action);
        } catch (Exception e) {
            System.out.println("    " + what + " failed: " + e);
        }
    }

    /** Removes the demo's directory without crossing into anything still mounted below it. */
    private static void deleteTree(Path dir) {
        try {
            Process p = new ProcessBuilder("rm", "-rf", "--one-file-system", dir.toString()).inheritIO().start();
            if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
                System.out.println("    could not remove all of " + dir);
            }
        } catch (IOException e) {
            System.out.println("    could not remove " + dir + ": " + e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
