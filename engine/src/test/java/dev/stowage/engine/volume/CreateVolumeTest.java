package dev.stowage.engine.volume;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.stowage.engine.api.Capacity;
import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.Volume;
import dev.stowage.engine.api.VolumeSpec;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** Creation: sizing, parameter validation, and that a refused request leaves nothing behind. */
class CreateVolumeTest extends VolumeServiceHarness {

    @Test
    void startedServiceIsReadyAndDescribesItsNode() {
        assertTrue(service.ready());
        assertEquals(NODE, service.localNode().nodeId());
        assertEquals("z1", service.localNode().labels().get("zone"));
        assertEquals(3, service.localNode().maxVolumes());
        assertEquals(VolumeParameters.SUPPORTED.keySet(), service.supportedParameters().keySet());
    }

    @Test
    void noSizeGivesTheDefaultOneGibVolumeWithDefaultParameters() throws Exception {
        Volume v = service.createVolume(spec("pvc-default", 0, 0));
        assertTrue(v.id().matches("vol-[0-9a-f-]{36}"), v.id());
        assertEquals(GIB, v.sizeBytes());
        assertEquals(1, v.replicaCount());
        assertEquals("ext4", v.fsType());
        assertEquals(Map.of("repl", "1", "fsType", "ext4"), v.parameters());
        assertEquals(0, v.epoch());
        assertTrue(v.attachment().isEmpty());
        assertFalse(v.condition().abnormal());
        assertEquals(List.of(new Volume.Replica(NODE, Volume.ReplicaState.HEALTHY)), v.replicas());
        assertEquals(GIB, store(v.id()).sizeBytes());
        assertEquals(v, service.getVolume(v.id()).orElseThrow());
    }

    @Test
    void requiredSizeRoundsUpToWholeBlocks() throws Exception {
        Volume v = create("pvc-odd", 10_000);
        assertEquals(12_288, v.sizeBytes());
        assertEquals(12_288, store(v.id()).sizeBytes());
        assertEquals(4096, create("pvc-one", 1).sizeBytes());
    }

    @Test
    void limitAloneCapsTheDefaultSize() {
        assertEquals(8 * MIB, service.createVolume(spec("pvc-limit", 0, 8 * MIB)).sizeBytes());
        assertEquals(GIB, service.createVolume(spec("pvc-biglimit", 0, 4 * GIB)).sizeBytes());
    }

    @Test
    void requiredAndLimitTogetherPickABlockMultipleInsideTheRange() {
        assertEquals(8192, service.createVolume(spec("pvc-range", 4097, 8192)).sizeBytes());
    }

    @Test
    void limitBelowRequiredIsInvalidAndNamesLimitBytes() {
        fails(ErrorCode.INVALID_ARGUMENT, "capacity_range.limit_bytes",
                () -> service.createVolume(spec("pvc-bad", 8 * MIB, 4 * MIB)));
        fails(ErrorCode.INVALID_ARGUMENT, "capacity_range.required_bytes",
                () -> service.createVolume(spec("pvc-neg", -1, 0)));
        assertEquals(List.of(), metadataKeys());
    }

    @Test
    void rangeWithoutABlockMultipleIsOutOfRange() throws Exception {
        fails(ErrorCode.OUT_OF_RANGE, () -> service.createVolume(spec("pvc-gap", 4097, 8191)));
        assertEquals(List.of(), metadataKeys());
        assertEquals(Set.of(), pool.volumeIds());
    }

    @Test
    void sizeOverTheConfiguredMaximumIsOutOfRange() throws Exception {
        fails(ErrorCode.OUT_OF_RANGE, "capacity_range.required_bytes", () -> create("pvc-huge", 16 * GIB + 1));
        assertEquals(16 * GIB, create("pvc-max", 16 * GIB).sizeBytes());
    }

    @Test
    void unknownParameterIsInvalidAndNamesTheKey() throws Exception {
        fails(ErrorCode.INVALID_ARGUMENT, "parameters.replicas", () -> service.createVolume(new VolumeSpec(
                "pvc-typo", MIB, 0, Map.of("replicas", "1"), new VolumeSpec.ContentSource.Empty())));
        fails(ErrorCode.INVALID_ARGUMENT, "parameters.fsType", () -> service.createVolume(new VolumeSpec(
                "pvc-fs", MIB, 0, Map.of("fsType", "btrfs"), new VolumeSpec.ContentSource.Empty())));
        fails(ErrorCode.INVALID_ARGUMENT, "parameters.repl", () -> service.createVolume(new VolumeSpec(
                "pvc-r9", MIB, 0, Map.of("repl", "9"), new VolumeSpec.ContentSource.Empty())));
        assertEquals(List.of(), metadataKeys());
        assertEquals(Set.of(), pool.volumeIds());
    }

    @Test
    void moreReplicasThanNodesIsResourceExhausted() throws Exception {
        fails(ErrorCode.RESOURCE_EXHAUSTED, "parameters.repl", () -> service.createVolume(new VolumeSpec(
                "pvc-r2", MIB, 0, Map.of("repl", "2"), new VolumeSpec.ContentSource.Empty())));
        assertEquals(List.of(), metadataKeys());
        assertEquals(Set.of(), pool.volumeIds());
    }

    @Test
    void fsTypeIsNormalisedAndStored() {
        Volume v = service.createVolume(new VolumeSpec("pvc-xfs", MIB, 0, Map.of("fsType", "XFS"),
                new VolumeSpec.ContentSource.Empty()));
        assertEquals("xfs", v.fsType());
        assertEquals("xfs", service.getVolume(v.id()).orElseThrow().parameters().get("fsType"));
    }

    @Test
    void ioLimitsAreAcceptedAtCreationAsParametersOrMutableParameters() {
        Volume a = service.createVolume(new VolumeSpec("pvc-io1", MIB, 0, Map.of("maxIops", "500"),
                Map.of("maxBytesPerSecond", "1048576"), new VolumeSpec.ContentSource.Empty()));
        assertEquals("500", a.parameters().get("maxIops"));
        assertEquals("1048576", a.parameters().get("maxBytesPerSecond"));
        // A mutable parameter overrides the same key among the StorageClass parameters.
        Volume b = service.createVolume(new VolumeSpec("pvc-io2", MIB, 0, Map.of("maxIops", "500"),
                Map.of("maxIops", "700"), new VolumeSpec.ContentSource.Empty()));
        assertEquals("700", b.parameters().get("maxIops"));
        assertEquals("700", service.getVolume(b.id()).orElseThrow().parameters().get("maxIops"));
    }

    @Test
    void unknownOrImmutableMutableParameterIsInvalidAndNamesTheKey() throws Exception {
        fails(ErrorCode.INVALID_ARGUMENT, "mutable_parameters.maxIOPS", () -> service.createVolume(new VolumeSpec(
                "pvc-m1", MIB, 0, Map.of(), Map.of("maxIOPS", "5"), new VolumeSpec.ContentSource.Empty())));
        fails(ErrorCode.INVALID_ARGUMENT, "mutable_parameters.repl", () -> service.createVolume(new VolumeSpec(
                "pvc-m2", MIB, 0, Map.of(), Map.of("repl", "1"), new VolumeSpec.ContentSource.Empty())));
        fails(ErrorCode.INVALID_ARGUMENT, "mutable_parameters.maxIops", () -> service.createVolume(new VolumeSpec(
                "pvc-m3", MIB, 0, Map.of(), Map.of("maxIops", "-1"), new VolumeSpec.ContentSource.Empty())));
        assertEquals(List.of(), metadataKeys());
        assertEquals(Set.of(), pool.volumeIds());
    }

    @Test
    void missingOrOverlongNameIsInvalid() {
        fails(ErrorCode.INVALID_ARGUMENT, "name", () -> create("", MIB));
        fails(ErrorCode.INVALID_ARGUMENT, "name", () -> create("x".repeat(257), MIB));
    }

    @Test
    void namesThatLookLikeKeyPathsStayInsideTheirOwnKey() {
        Volume a = create("a/b", MIB);
        Volume b = create("a", MIB);
        assertFalse(a.id().equals(b.id()));
        assertEquals(a.id(), create("a/b", MIB).id());
        assertTrue(metadataKeys().stream().filter(k -> k.startsWith(MetadataKeys.VOLUME_NAMES))
                .allMatch(k -> k.substring(MetadataKeys.VOLUME_NAMES.length()).indexOf('/') < 0), metadataKeys()::toString);
    }

    @Test
    void deleteRemovesRecordClaimAndDataAndIsIdempotent() throws Exception {
        Volume v = create("pvc-del", MIB);
        service.deleteVolume(v.id());
        assertEquals(List.of(), metadataKeys());
        assertEquals(Set.of(), pool.volumeIds());
        assertTrue(service.getVolume(v.id()).isEmpty());
        service.deleteVolume(v.id());
        // The name is free again: a new create gets a new id.
        assertFalse(create("pvc-del", MIB).id().equals(v.id()));
    }

    @Test
    void capacityIsZeroForAnotherNodeZoneOrRack() {
        Capacity here = service.capacity(Map.of("node", NODE, "zone", "z1"));
        assertTrue(here.availableBytes() > 0);
        assertEquals(16 * GIB, here.maximumVolumeBytes());
        assertEquals(4096, here.minimumVolumeBytes());
        assertEquals(0, service.capacity(Map.of("node", "node-b")).availableBytes());
        assertEquals(0, service.capacity(Map.of("node", "node-b")).maximumVolumeBytes());
        assertEquals(0, service.capacity(Map.of("zone", "z2")).availableBytes());
        assertEquals(0, service.capacity(Map.of("rack", "r9")).availableBytes());
        assertTrue(service.capacity(Map.of()).availableBytes() > 0);
    }
}
