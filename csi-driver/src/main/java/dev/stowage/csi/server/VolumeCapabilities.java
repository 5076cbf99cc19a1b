package dev.stowage.csi.server;

import java.util.List;
import java.util.Optional;
import java.util.Set;

import csi.v1.Csi.VolumeCapability;
import csi.v1.Csi.VolumeCapability.AccessMode;

/**
 * What Stowage supports of CSI volume capabilities, checked in one place for the controller and node
 * services. A Stowage volume has one writer (invariant 2 of the design), so only single-node access modes
 * are supported; access types are block, or mount with ext4, xfs or the default (empty).
 *
 * <p>Two kinds of failure: {@link #validate} throws INVALID_ARGUMENT for a malformed capability (no access
 * type, no access mode); {@link #unsupported} names what Stowage cannot provide for a well-formed one, so
 * ValidateVolumeCapabilities can answer "not confirmed" instead of failing.
 */
public final class VolumeCapabilities {
    /** Filesystems NodeStage can create and mount. */
    public static final Set<String> FILESYSTEMS = Set.of("ext4", "xfs");
    public static final String DEFAULT_FILESYSTEM = "ext4";

    private static final Set<AccessMode.Mode> SUPPORTED_MODES = Set.of(
            AccessMode.Mode.SINGLE_NODE_WRITER,
            AccessMode.Mode.SINGLE_NODE_SINGLE_WRITER,
            AccessMode.Mode.SINGLE_NODE_READER_ONLY);

    private VolumeCapabilities() {}

    /** Throws INVALID_ARGUMENT naming {@code field}'s sub-field if {@code capability} is malformed. */
    public static void validate(String field, VolumeCapability capability) {
        if (capability.getAccessTypeCase() == VolumeCapability.AccessTypeCase.ACCESSTYPE_NOT_SET) {
            throw Requests.invalid(field, "must set an access type (block or mount)");
        }
        if (!capability.hasAccessMode()) {
            throw Requests.missing(field + ".access_mode");
        }
        AccessMode.Mode mode = capability.getAccessMode().getMode();
        if (mode == AccessMode.Mode.UNKNOWN || mode == AccessMode.Mode.UNRECOGNIZED) {
            throw Requests.invalid(field + ".access_mode.mode", "must be set to a known access mode");
        }
    }

    /** Validates and throws INVALID_ARGUMENT also when Stowage cannot provide the capability. */
    public static void requireSupported(String field, VolumeCapability capability) {
        validate(field, capability);
        unsupported(field, capability).ifPresent(reason -> {
            throw Requests.invalid(reason.field(), reason.problem());
        });
    }

    /** Validates each capability of a required, non-empty repeated field. */
    public static void requireSupported(String field, List<VolumeCapability> capabilities) {
        if (capabilities.isEmpty()) {
            throw Requests.missing(field);
        }
        for (int i = 0; i < capabilities.size(); i++) {
            requireSupported(field + "[" + i + "]", capabilities.get(i));
        }
    }

    /** Why a well-formed capability is not supported. */
    public record Unsupported(String field, String problem) {
        public String message() {
            return field + " " + problem;
        }
    }

    /** What Stowage cannot provide of a (validated) capability, or empty when it is supported. */
    public static Optional<Unsupported> unsupported(String field, VolumeCapability capability) {
        AccessMode.Mode mode = capability.getAccessMode().getMode();
        if (!SUPPORTED_MODES.contains(mode)) {
            return Optional.of(new Unsupported(field + ".access_mode.mode", "is " + mode
                    + ": a Stowage volume has a single writer node; use SINGLE_NODE_WRITER, "
                    + "SINGLE_NODE_SINGLE_WRITER or SINGLE_NODE_READER_ONLY"));
        }
        if (capability.hasMount()) {
            String fsType = capability.getMount().getFsType();
            if (!fsType.isEmpty() && !FILESYSTEMS.contains(fsType)) {
                return Optional.of(new Unsupported(field + ".mount.fs_type", "is '" + fsType
                        + "': supported are ext4 and xfs"));
            }
            if (!capability.getMount().getVolumeMountGroup().isEmpty()) {
                return Optional.of(new Unsupported(field + ".mount.volume_mount_group",
                        "is not supported (the VOLUME_MOUNT_GROUP node capability is not offered)"));
            }
        }
        return Optional.empty();
    }

    public static boolean isBlock(VolumeCapability capability) {
        return capability.hasBlock();
    }

    /** True for the read-only access modes: the volume must be mounted read-only. */
    public static boolean isReadOnly(VolumeCapability capability) {
        AccessMode.Mode mode = capability.getAccessMode().getMode();
        return mode == AccessMode.Mode.SINGLE_NODE_READER_ONLY || mode == AccessMode.Mode.MULTI_NODE_READER_ONLY;
    }
}
