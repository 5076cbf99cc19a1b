package dev.stowage.engine.volume;

import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.StowageException;
import dev.stowage.engine.api.VolumeSpec;
import dev.stowage.engine.cluster.MetadataStore;
import dev.stowage.engine.cluster.MetadataStore.Versioned;
import dev.stowage.engine.storage.ReplicaStore;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Map;

/**
 * How big a volume is made, and whether the fleet can still provision it: CSI capacity ranges turned
 * into a size in whole blocks, content sources that set the size, the largest volume, and thin
 * provisioning against the fleet's capacity (all provisioned volume sizes, read from the records).
 * Errors name the capacity field they are about.
 */
final class VolumeSizing {
    /** Volumes are sized in whole checksummed blocks. */
    static final long ALIGNMENT = ReplicaStore.BLOCK_SIZE;

    private final VolumeServiceConfig config;
    private final MetadataStore metadata;
    private final ReplicaFleet fleet;

    VolumeSizing(VolumeServiceConfig config, MetadataStore metadata, ReplicaFleet fleet) {
        this.config = config;
        this.metadata = metadata;
        this.fleet = fleet;
    }

    /** The size for a capacity range (0: unset), rounded up to whole blocks. */
    long choose(long required, long limit) {
        if (required < 0) {
            throw StowageException.invalid("capacity_range.required_bytes", "must not be negative");
        }
        if (limit < 0) {
            throw StowageException.invalid("capacity_range.limit_bytes", "must not be negative");
        }
        if (limit > 0 && limit < required) {
            throw StowageException.invalid("capacity_range.limit_bytes",
                    limit + " is smaller than required_bytes " + required);
        }
        long size = required > 0 ? required : (limit > 0 ? Math.min(limit, config.defaultVolumeBytes())
                : config.defaultVolumeBytes());
        size = roundUp(size);
        if (limit > 0 && size > limit) {
            throw new StowageException(ErrorCode.OUT_OF_RANGE, "capacity_range", "capacity_range: volumes are"
                    + " sized in " + ALIGNMENT + "-byte blocks and none lies in [" + required + ", " + limit + "]", null);
        }
        if (size > config.maxVolumeBytes()) {
            throw new StowageException(ErrorCode.OUT_OF_RANGE, "capacity_range.required_bytes",
                    "capacity_range.required_bytes: " + size + " exceeds the largest volume, "
                            + config.maxVolumeBytes() + " bytes", null);
        }
        return size;
    }

    /**
     * Without a required size, a volume restored or cloned from a larger source takes the source's size
     * rather than failing for being too small.
     */
    long forSource(long size, VolumeSpec spec) {
        if (spec.requiredBytes() > 0) {
            return size;
        }
        long sourceSize = 0;
        if (spec.contentSource() instanceof VolumeSpec.ContentSource.FromSnapshot s) {
            sourceSize = metadata.get(MetadataKeys.snapshot(s.snapshotId()))
                    .map(x -> MetadataProtos.parseSnapshot(x.key(), x.value()).getSizeBytes()).orElse(0L);
        } else if (spec.contentSource() instanceof VolumeSpec.ContentSource.FromVolume v) {
            sourceSize = metadata.get(MetadataKeys.volume(v.volumeId()))
                    .map(x -> MetadataProtos.parseVolume(x.key(), x.value()).getSizeBytes()).orElse(0L);
        }
        if (sourceSize > size && (spec.limitBytes() == 0 || sourceSize <= spec.limitBytes())) {
            return roundUp(sourceSize);
        }
        return size;
    }

    /** RESOURCE_EXHAUSTED unless the pool can provision {@code size} more bytes beyond {@code alreadyCounted}. */
    void requireProvisionable(long size, long alreadyCounted) {
        long provisionable = provisionableBytes(Map.of());
        if (size - alreadyCounted > provisionable) {
            throw new StowageException(ErrorCode.RESOURCE_EXHAUSTED, "capacity_range.required_bytes",
                    "capacity_range.required_bytes: " + (size - alreadyCounted)
                            + " more bytes exceed what the pool can still provision (" + provisionable + " bytes)", null);
        }
    }

    static long roundUp(long size) {
        return (size + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
    }

    long provisionableBytes(Map<String, String> topology) {
        try {
            long provisioned = 0;
            for (Versioned v : metadata.list(MetadataKeys.VOLUMES)) {
                provisioned += MetadataProtos.parseVolume(v.key(), v.value()).getSizeBytes();
            }
            return fleet.provisionableBytes(topology, provisioned);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
