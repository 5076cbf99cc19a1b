package dev.stowage.csi.node;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

import csi.v1.Csi;
import csi.v1.Csi.NodeServiceCapability.RPC.Type;
import csi.v1.Csi.VolumeCapability;
import csi.v1.NodeGrpc;
import dev.stowage.csi.mount.FilesystemStats;
import dev.stowage.csi.mount.MountException;
import dev.stowage.csi.mount.Mounter;
import dev.stowage.csi.server.Calls;
import dev.stowage.csi.server.CsiProtos;
import dev.stowage.csi.server.Requests;
import dev.stowage.csi.server.VolumeCapabilities;
import dev.stowage.csi.server.VolumeLocks;
import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.NodeInfo;
import dev.stowage.engine.api.StowageException;
import dev.stowage.engine.api.Volume;
import dev.stowage.engine.api.VolumeService;
import io.grpc.stub.StreamObserver;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * CSI Node on this host. Staging attaches the volume's block device through the engine
 * ({@link VolumeService#attachDevice}); for a mount volume it then creates a filesystem only if the device
 * holds none (it never reformats) and mounts it at the staging path; for a raw block volume it records the
 * device path in a small file in the staging directory. Publishing bind-mounts the staged filesystem (or
 * the device, onto a file) at the target path, read-only when asked.
 *
 * <p>Every handler is idempotent and, when it fails, undoes what it did itself (mounts, device attachment,
 * created paths) before answering. Handlers hold the per-volume try-lock: a concurrent call on the same
 * volume gets ABORTED.
 *
 * <p>Threading: thread-safe; handlers block on the engine and the mount tools on gRPC's executor threads.
 */
// Lock handles are try-with-resources variables held for the scope of the call, not read.
@SuppressWarnings("try")
public final class NodeService extends NodeGrpc.NodeImplBase {
    private static final Logger LOG = LoggerFactory.getLogger(NodeService.class);
    /** File in the staging directory of a raw block volume that holds the device path. */
    static final String BLOCK_DEVICE_FILE = "stowage-block-device";
    private static final List<Type> CAPABILITIES = List.of(
            Type.STAGE_UNSTAGE_VOLUME, Type.GET_VOLUME_STATS, Type.EXPAND_VOLUME, Type.VOLUME_CONDITION);

    private final VolumeService volumes;
    private final Mounter mounter;
    private final VolumeLocks locks;
    private final String nodeIdOverride;

    /**
     * @param nodeId the node id NodeGetInfo reports, or null to report the engine's local node id
     */
    public NodeService(VolumeService volumes, Mounter mounter, VolumeLocks locks, String nodeId) {
        this.volumes = volumes;
        this.mounter = mounter;
        this.locks = locks;
        this.nodeIdOverride = nodeId;
    }

    // ---- stage / unstage ----------------------------------------------------------------------------

    @Override
    public void nodeStageVolume(Csi.NodeStageVolumeRequest request, StreamObserver<Csi.NodeStageVolumeResponse> observer) {
        Calls.unary("NodeStageVolume", observer, () -> {
            String id = Requests.require("volume_id", request.getVolumeId());
            Path staging = absolute("staging_target_path", request.getStagingTargetPath());
            Requests.require("volume_capability", request.hasVolumeCapability());
            VolumeCapability capability = request.getVolumeCapability();
            VolumeCapabilities.requireSupported("volume_capability", capability);
            try (VolumeLocks.Held lock = locks.volume(id); VolumeLocks.Held path = locks.path(staging.toString())) {
                Volume volume = existing(id);
                if (VolumeCapabilities.isBlock(capability)) {
                    stageBlock(volume, staging);
                } else {
                    stageMount(volume, staging, capability.getMount());
                }
                return Csi.NodeStageVolumeResponse.getDefaultInstance();
            }
        });
    }

    private void stageMount(Volume volume, Path staging, VolumeCapability.MountVolume mount) {
        boolean attachedBefore = attachedHere(volume);
        if (mounter.isMountPoint(staging)) {
            Path device = volumes.attachDevice(volume.id());
            if (mounter.isMountOf(staging, device)) {
                LOG.debug("volume {} already staged at {}", volume.id(), staging);
                return;
            }
            // A node that died left this mount: its device's FUSE connection is gone and every I/O on it
            // fails. Answering "already staged" would hand that to the next pod; mount the live device.
            LOG.warn("volume {}: {} holds a mount of another device than the volume's {} (left by a node"
                    + " process that died); unmounting it to stage the volume again", volume.id(), staging, device);
            try {
                mounter.unmount(staging);
            } catch (RuntimeException e) {
                undoAttach(volume.id(), attachedBefore, e);
                throw asDomain(e);
            }
        }
        createDirectory("staging_target_path", staging);
        Path device = volumes.attachDevice(volume.id());
        try {
            String fsType = filesystemFor(volume, device, mount.getFsType());
            List<String> options = new ArrayList<>(mount.getMountFlagsList());
            if (fsType.equals("xfs") && !options.contains("nouuid")) {
                // Clones and restored snapshots carry their source's xfs UUID, and xfs refuses to mount
                // a second file system with a UUID already mounted on this host.
                options.add("nouuid");
            }
            mounter.mount(device, staging, fsType, List.copyOf(options));
            LOG.info("staged volume {} ({} on {}) at {}", volume.id(), fsType, device, staging);
        } catch (RuntimeException e) {
            undoAttach(volume.id(), attachedBefore, e);
            throw asDomain(e);
        }
    }

    /**
     * The filesystem to mount {@code device} with: the one it holds, or a new one of the requested type (else
     * the volume's, else ext4) when it holds none. A device that holds another filesystem than the one
     * requested is FAILED_PRECONDITION: it is never reformatted.
     */
    private String filesystemFor(Volume volume, Path device, String requested) {
        Optional<String> existing = mounter.probeFilesystem(device);
        if (existing.isPresent()) {
            if (!requested.isEmpty() && !requested.equals(existing.get())) {
                throw new StowageException(ErrorCode.FAILED_PRECONDITION, "volume_capability.mount.fs_type",
                        "volume " + volume.id() + " holds a " + existing.get() + " filesystem, not the requested "
                                + requested + "; it is never reformatted", null);
            }
            return existing.get();
        }
        String fsType = !requested.isEmpty() ? requested
                : volume.fsType() != null && VolumeCapabilities.FILESYSTEMS.contains(volume.fsType()) ? volume.fsType()
                : VolumeCapabilities.DEFAULT_FILESYSTEM;
        mounter.format(device, fsType);
        return fsType;
    }

    private void stageBlock(Volume volume, Path staging) {
        createDirectory("staging_target_path", staging);
        Path record = staging.resolve(BLOCK_DEVICE_FILE);
        boolean attachedBefore = attachedHere(volume);
        Path device = volumes.attachDevice(volume.id());
        try {
            if (!device.toString().equals(readDeviceRecord(staging).orElse(null))) {
                Path temp = staging.resolve(BLOCK_DEVICE_FILE + ".tmp");
                Files.writeString(temp, device.toString(), StandardCharsets.UTF_8);
                moveAtomically(temp, record);
            }
            LOG.info("staged block volume {} ({})", volume.id(), device);
        } catch (IOException | RuntimeException e) {
            undoAttach(volume.id(), attachedBefore, e);
            throw e instanceof IOException io
                    ? new StowageException(ErrorCode.INTERNAL, null, "cannot record the device of volume "
                    + volume.id() + " in " + staging + ": " + io.getMessage(), io)
                    : asDomain((RuntimeException) e);
        }
    }

    private static void moveAtomically(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(from, to, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    private static Optional<String> readDeviceRecord(Path staging) {
        Path record = staging.resolve(BLOCK_DEVICE_FILE);
        try {
            return Files.isRegularFile(record)
                    ? Optional.of(Files.readString(record, StandardCharsets.UTF_8).strip()) : Optional.empty();
        } catch (IOException e) {
            throw new StowageException(ErrorCode.INTERNAL, null, "cannot read " + record + ": " + e.getMessage(), e);
        }
    }

    private boolean attachedHere(Volume volume) {
        String here = volumes.localNode().nodeId();
        return volume.attachment().filter(a -> a.nodeId().equals(here) && a.devicePath().isPresent()).isPresent();
    }

    private void undoAttach(String id, boolean attachedBefore, Exception failure) {
        if (attachedBefore) {
            return;
        }
        try {
            volumes.detachDevice(id);
        } catch (RuntimeException undo) {
            failure.addSuppressed(undo);
            LOG.warn("could not detach volume {} after a failed stage: {}", id, undo.getMessage());
        }
    }

    @Override
    public void nodeUnstageVolume(Csi.NodeUnstageVolumeRequest request,
                                  StreamObserver<Csi.NodeUnstageVolumeResponse> observer) {
        Calls.unary("NodeUnstageVolume", observer, () -> {
            String id = Requests.require("volume_id", request.getVolumeId());
            Path staging = absolute("staging_target_path", request.getStagingTargetPath());
            try (VolumeLocks.Held lock = locks.volume(id); VolumeLocks.Held path = locks.path(staging.toString())) {
                existing(id);
                try {
                    if (mounter.isMountPoint(staging)) {
                        mounter.unmount(staging);
                    }
                    Files.deleteIfExists(staging.resolve(BLOCK_DEVICE_FILE));
                } catch (IOException e) {
                    throw new StowageException(ErrorCode.INTERNAL, null, "cannot clean up " + staging + ": "
                            + e.getMessage(), e);
                } catch (MountException e) {
                    throw asDomain(e);
                }
                volumes.detachDevice(id);
                LOG.info("unstaged volume {} from {}", id, staging);
                return Csi.NodeUnstageVolumeResponse.getDefaultInstance();
            }
        });
    }

    // ---- publish / unpublish ------------------------------------------------------------------------

    @Override
    public void nodePublishVolume(Csi.NodePublishVolumeRequest request,
                                  StreamObserver<Csi.NodePublishVolumeResponse> observer) {
        Calls.unary("NodePublishVolume", observer, () -> {
            String id = Requests.require("volume_id", request.getVolumeId());
            Path target = absolute("target_path", request.getTargetPath());
            Requests.require("volume_capability", request.hasVolumeCapability());
            VolumeCapability capability = request.getVolumeCapability();
            VolumeCapabilities.requireSupported("volume_capability", capability);
            Path staging = absolute("staging_target_path", request.getStagingTargetPath());
            boolean readOnly = request.getReadonly() || VolumeCapabilities.isReadOnly(capability);
            try (VolumeLocks.Held lock = locks.volume(id); VolumeLocks.Held path = locks.path(target.toString())) {
                existing(id);
                if (mounter.isMountPoint(target)) {
                    LOG.debug("volume {} already published at {}", id, target);
                    return Csi.NodePublishVolumeResponse.getDefaultInstance();
                }
                if (VolumeCapabilities.isBlock(capability)) {
                    publishBlock(id, staging, target, readOnly);
                } else {
                    publishMount(id, staging, target, readOnly);
                }
                return Csi.NodePublishVolumeResponse.getDefaultInstance();
            }
        });
    }

    private void publishMount(String id, Path staging, Path target, boolean readOnly) {
        if (!mounter.isMountPoint(staging)) {
            throw new StowageException(ErrorCode.FAILED_PRECONDITION, "volume " + id + " is not staged at " + staging);
        }
        boolean created = !Files.exists(target, LinkOption.NOFOLLOW_LINKS);
        createDirectory("target_path", target);
        try {
            mounter.bindMount(staging, target, readOnly);
        } catch (RuntimeException e) {
            if (created) {
                deleteQuietly(target, e);
            }
            throw asDomain(e);
        }
        LOG.info("published volume {} at {}{}", id, target, readOnly ? " read-only" : "");
    }

    private void publishBlock(String id, Path staging, Path target, boolean readOnly) {
        Path device = readDeviceRecord(staging).map(Path::of).orElseThrow(() -> new StowageException(
                ErrorCode.FAILED_PRECONDITION, "block volume " + id + " is not staged at " + staging));
        boolean created = false;
        try {
            if (target.getParent() != null) {
                Files.createDirectories(target.getParent());
            }
            if (!Files.exists(target, LinkOption.NOFOLLOW_LINKS)) {
                Files.createFile(target);
                created = true;
            } else if (Files.isDirectory(target, LinkOption.NOFOLLOW_LINKS)) {
                throw Requests.invalid("target_path", "is a directory; a raw block volume is published onto a file");
            }
        } catch (IOException e) {
            throw new StowageException(ErrorCode.INTERNAL, null, "cannot create " + target + ": " + e.getMessage(), e);
        }
        try {
            mounter.bindMount(device, target, readOnly);
        } catch (RuntimeException e) {
            if (created) {
                deleteQuietly(target, e);
            }
            throw asDomain(e);
        }
        LOG.info("published block volume {} ({}) at {}{}", id, device, target, readOnly ? " read-only" : "");
    }

    @Override
    public void nodeUnpublishVolume(Csi.NodeUnpublishVolumeRequest request,
                                    StreamObserver<Csi.NodeUnpublishVolumeResponse> observer) {
        Calls.unary("NodeUnpublishVolume", observer, () -> {
            String id = Requests.require("volume_id", request.getVolumeId());
            Path target = absolute("target_path", request.getTargetPath());
            try (VolumeLocks.Held lock = locks.volume(id); VolumeLocks.Held path = locks.path(target.toString())) {
                existing(id);
                try {
                    if (mounter.isMountPoint(target)) {
                        mounter.unmount(target);
                    }
                    Files.deleteIfExists(target);
                } catch (IOException e) {
                    throw new StowageException(ErrorCode.INTERNAL, null, "cannot remove " + target + ": "
                            + e.getMessage(), e);
                } catch (MountException e) {
                    throw asDomain(e);
                }
                LOG.info("unpublished volume {} from {}", id, target);
                return Csi.NodeUnpublishVolumeResponse.getDefaultInstance();
            }
        });
    }

    // ---- stats / expand -----------------------------------------------------------------------------

    @Override
    public void nodeGetVolumeStats(Csi.NodeGetVolumeStatsRequest request,
                                   StreamObserver<Csi.NodeGetVolumeStatsResponse> observer) {
        Calls.unary("NodeGetVolumeStats", observer, () -> {
            String id = Requests.require("volume_id", request.getVolumeId());
            String pathText = Requests.require("volume_path", request.getVolumePath());
            Volume volume = existing(id);
            Path path = Path.of(pathText);
            if (!path.isAbsolute() || !Files.exists(path) || !mounter.isMountPoint(path)) {
                throw new StowageException(ErrorCode.NOT_FOUND, "volume " + id + " is not mounted at " + pathText);
            }
            Csi.NodeGetVolumeStatsResponse.Builder response = Csi.NodeGetVolumeStatsResponse.newBuilder()
                    .setVolumeCondition(CsiProtos.condition(volume.condition()));
            try {
                if (Files.isDirectory(path)) {
                    FilesystemStats stats = mounter.stats(path);
                    response.addUsage(usage(Csi.VolumeUsage.Unit.BYTES, stats.totalBytes(), stats.availableBytes(),
                            stats.usedBytes()));
                    response.addUsage(usage(Csi.VolumeUsage.Unit.INODES, stats.totalInodes(), stats.freeInodes(),
                            stats.usedInodes()));
                } else {
                    response.addUsage(Csi.VolumeUsage.newBuilder().setUnit(Csi.VolumeUsage.Unit.BYTES)
                            .setTotal(mounter.blockDeviceSize(path)));
                }
            } catch (MountException e) {
                throw asDomain(e);
            }
            return response.build();
        });
    }

    private static Csi.VolumeUsage usage(Csi.VolumeUsage.Unit unit, long total, long available, long used) {
        return Csi.VolumeUsage.newBuilder().setUnit(unit).setTotal(total).setAvailable(available).setUsed(used).build();
    }

    @Override
    public void nodeExpandVolume(Csi.NodeExpandVolumeRequest request,
                                 StreamObserver<Csi.NodeExpandVolumeResponse> observer) {
        Calls.unary("NodeExpandVolume", observer, () -> {
            String id = Requests.require("volume_id", request.getVolumeId());
            String pathText = Requests.require("volume_path", request.getVolumePath());
            if (request.hasVolumeCapability()) {
                VolumeCapabilities.requireSupported("volume_capability", request.getVolumeCapability());
            }
            try (VolumeLocks.Held lock = locks.volume(id)) {
                Volume volume = existing(id);
                Path path = Path.of(pathText);
                if (!path.isAbsolute() || !Files.exists(path) || !mounter.isMountPoint(path)) {
                    throw new StowageException(ErrorCode.NOT_FOUND, "volume " + id + " is not mounted at " + pathText);
                }
                boolean block = request.hasVolumeCapability() ? request.getVolumeCapability().hasBlock()
                        : !Files.isDirectory(path);
                if (!block) {
                    // Asking the engine for the device again makes it refresh the device's size.
                    Path device = volumes.attachDevice(id);
                    try {
                        String fsType = mounter.probeFilesystem(device).orElseThrow(() -> new StowageException(
                                ErrorCode.FAILED_PRECONDITION, "volume " + id + " has no filesystem to grow"));
                        mounter.resizeFilesystem(device, path, fsType);
                    } catch (MountException e) {
                        throw asDomain(e);
                    }
                }
                long size = volumes.getVolume(id).map(Volume::sizeBytes).orElse(volume.sizeBytes());
                return Csi.NodeExpandVolumeResponse.newBuilder().setCapacityBytes(size).build();
            }
        });
    }

    // ---- info -----------------------------------------------------------------------------------------

    @Override
    public void nodeGetCapabilities(Csi.NodeGetCapabilitiesRequest request,
                                    StreamObserver<Csi.NodeGetCapabilitiesResponse> observer) {
        Calls.unary("NodeGetCapabilities", observer, () -> {
            Csi.NodeGetCapabilitiesResponse.Builder response = Csi.NodeGetCapabilitiesResponse.newBuilder();
            for (Type type : CAPABILITIES) {
                response.addCapabilities(Csi.NodeServiceCapability.newBuilder()
                        .setRpc(Csi.NodeServiceCapability.RPC.newBuilder().setType(type)));
            }
            return response.build();
        });
    }

    @Override
    public void nodeGetInfo(Csi.NodeGetInfoRequest request, StreamObserver<Csi.NodeGetInfoResponse> observer) {
        Calls.unary("NodeGetInfo", observer, () -> {
            NodeInfo node = volumes.localNode();
            String nodeId = nodeIdOverride != null ? nodeIdOverride : node.nodeId();
            return Csi.NodeGetInfoResponse.newBuilder()
                    .setNodeId(nodeId)
                    .setMaxVolumesPerNode(Math.max(0, node.maxVolumes()))
                    .setAccessibleTopology(CsiProtos.nodeTopology(nodeId, node))
                    .build();
        });
    }

    // ---- helpers ----------------------------------------------------------------------------------------

    private Volume existing(String id) {
        return volumes.getVolume(id).orElseThrow(() -> Requests.volumeNotFound(id));
    }

    private static Path absolute(String field, String value) {
        Requests.require(field, value);
        Path path = Path.of(value);
        if (!path.isAbsolute()) {
            throw Requests.invalid(field, "must be an absolute path, got '" + value + "'");
        }
        return path.normalize();
    }

    private static void createDirectory(String field, Path directory) {
        try {
            Files.createDirectories(directory);
        } catch (IOException e) {
            throw new StowageException(ErrorCode.INTERNAL, field, "cannot create " + directory + ": " + e.getMessage(), e);
        }
    }

    private static void deleteQuietly(Path path, Exception failure) {
        try {
            Files.deleteIfExists(path);
        } catch (IOException undo) {
            failure.addSuppressed(undo);
        }
    }

    /** Mount tool failures become INTERNAL errors carrying the tool's message; domain errors pass through. */
    private static RuntimeException asDomain(RuntimeException e) {
        if (e instanceof MountException) {
            return new StowageException(ErrorCode.INTERNAL, null, e.getMessage(), e);
        }
        return e;
    }
}
