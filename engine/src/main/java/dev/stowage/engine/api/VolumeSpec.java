package dev.stowage.engine.api;

import java.util.Map;

/**
 * What a caller asks for when creating a volume. Sizes follow CSI's capacity range: the volume is
 * at least {@code requiredBytes} (0: the engine's default) and at most {@code limitBytes} (0: no
 * limit). {@code parameters} are the StorageClass parameters and {@code mutableParameters} those a
 * VolumeAttributesClass may change later (I/O limits), both validated by the engine.
 */
public record VolumeSpec(String name, long requiredBytes, long limitBytes, Map<String, String> parameters,
                         Map<String, String> mutableParameters, ContentSource contentSource) {
    public VolumeSpec {
        parameters = Map.copyOf(parameters);
        mutableParameters = Map.copyOf(mutableParameters);
    }

    /** A spec without mutable parameters. */
    public VolumeSpec(String name, long requiredBytes, long limitBytes, Map<String, String> parameters,
                      ContentSource contentSource) {
        this(name, requiredBytes, limitBytes, parameters, Map.of(), contentSource);
    }

    /** Where a new volume's initial content comes from. */
    public sealed interface ContentSource {
        record Empty() implements ContentSource {}
        record FromSnapshot(String snapshotId) implements ContentSource {}
        record FromVolume(String volumeId) implements ContentSource {}
    }
}
