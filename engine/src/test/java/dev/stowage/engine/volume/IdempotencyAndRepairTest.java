package dev.stowage.engine.volume;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.Snapshot;
import dev.stowage.engine.api.Volume;
import dev.stowage.engine.api.VolumeSpec;
import dev.stowage.engine.cluster.MetadataStore;
import dev.stowage.proto.metadata.SnapshotRecord;
import dev.stowage.proto.metadata.VolumeRecord;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** Idempotent creation, nothing half-made on failure, and repair of a crash between creation steps. */
class IdempotencyAndRepairTest extends VolumeServiceHarness {
    private static final String ORPHAN = "vol-00000000-0000-0000-0000-00000000000a";

    @Test
    void sameNameAndSpecReturnsTheSameVolume() throws Exception {
        Volume first = create("pvc-1", 10 * MIB);
        Volume again = create("pvc-1", 10 * MIB);
        assertEquals(first.id(), again.id());
        assertEquals(first, again);
        // A range the existing size satisfies is compatible too.
        assertEquals(first.id(), service.createVolume(spec("pvc-1", 5 * MIB, 20 * MIB)).id());
        assertEquals(Set.of(first.id()), pool.volumeIds());
        assertEquals(1, service.listVolumes(0, "").items().size());
    }

    @Test
    void sameNameWithAnotherSizeIsAlreadyExists() {
        Volume first = create("pvc-1", 10 * MIB);
        fails(ErrorCode.ALREADY_EXISTS, "name", () -> create("pvc-1", 20 * MIB));
        fails(ErrorCode.ALREADY_EXISTS, "name", () -> service.createVolume(spec("pvc-1", MIB, 5 * MIB)));
        assertEquals(first, service.getVolume(first.id()).orElseThrow());
    }

    @Test
    void sameNameWithAnotherFsTypeOrReplicaCountIsAlreadyExists() {
        create("pvc-1", 10 * MIB);
        fails(ErrorCode.ALREADY_EXISTS, "name", () -> service.createVolume(new VolumeSpec("pvc-1", 10 * MIB, 0,
                Map.of("fsType", "xfs"), new VolumeSpec.ContentSource.Empty())));
        // repl=1 spelled out equals the default: still the same volume.
        service.createVolume(new VolumeSpec("pvc-1", 10 * MIB, 0, Map.of("repl", "1", "fsType", "ext4"),
                new VolumeSpec.ContentSource.Empty()));
    }

    @Test
    void sameNameWithAnotherContentSourceIsAlreadyExists() {
        Volume src = create("src", 10 * MIB);
        Snapshot snap = service.createSnapshot("snap", src.id());
        create("pvc-1", 10 * MIB);
        fails(ErrorCode.ALREADY_EXISTS, "name", () -> service.createVolume(new VolumeSpec("pvc-1", 10 * MIB, 0,
                Map.of(), new VolumeSpec.ContentSource.FromSnapshot(snap.id()))));
        fails(ErrorCode.ALREADY_EXISTS, "name", () -> service.createVolume(new VolumeSpec("pvc-1", 10 * MIB, 0,
                Map.of(), new VolumeSpec.ContentSource.FromVolume(src.id()))));
        Volume restored = service.createVolume(new VolumeSpec("pvc-2", 10 * MIB, 0, Map.of(),
                new VolumeSpec.ContentSource.FromSnapshot(snap.id())));
        fails(ErrorCode.ALREADY_EXISTS, "name", () -> create("pvc-2", 10 * MIB));
        assertEquals(restored.id(), service.createVolume(new VolumeSpec("pvc-2", 10 * MIB, 0, Map.of(),
                new VolumeSpec.ContentSource.FromSnapshot(snap.id()))).id());
    }

    @Test
    void retryAfterModifyChangedTheLimitsIsStillCompatible() {
        VolumeSpec spec = new VolumeSpec("pvc-io", 10 * MIB, 0, Map.of(), Map.of("maxIops", "100"),
                new VolumeSpec.ContentSource.Empty());
        Volume first = service.createVolume(spec);
        service.modifyVolume(first.id(), Map.of("maxIops", "900", "maxBytesPerSecond", "4096"));
        Volume again = service.createVolume(spec);
        assertEquals(first.id(), again.id());
        // The retry reports the volume as it is, and does not undo the modification.
        assertEquals("900", again.parameters().get("maxIops"));
        assertEquals("900", service.getVolume(first.id()).orElseThrow().parameters().get("maxIops"));
    }

    @Test
    void createFromMissingSnapshotLeavesNoClaimAndNoData() throws Exception {
        fails(ErrorCode.NOT_FOUND, () -> service.createVolume(new VolumeSpec("pvc-x", MIB, 0, Map.of(),
                new VolumeSpec.ContentSource.FromSnapshot("snap-00000000-0000-0000-0000-000000000000"))));
        fails(ErrorCode.NOT_FOUND, () -> service.createVolume(new VolumeSpec("pvc-y", MIB, 0, Map.of(),
                new VolumeSpec.ContentSource.FromVolume(ORPHAN))));
        assertEquals(List.of(), metadataKeys());
        assertEquals(Set.of(), pool.volumeIds());
        // The names are free: creating them empty works.
        create("pvc-x", MIB);
    }

    @Test
    void restartDropsAClaimAndPoolDataThatHaveNoVolumeRecord() throws Exception {
        Volume kept = create("kept", MIB);
        // A crash after the claim and the data, before the record:
        metadata.put(MetadataKeys.volumeName("half-made"), ORPHAN.getBytes(StandardCharsets.UTF_8), MetadataStore.ABSENT);
        pool.create(ORPHAN, MIB);
        // ...and one that died right after the claim.
        String claimOnly = "vol-00000000-0000-0000-0000-00000000000b";
        metadata.put(MetadataKeys.volumeName("claim-only"), claimOnly.getBytes(StandardCharsets.UTF_8),
                MetadataStore.ABSENT);

        restart();

        assertEquals(Set.of(kept.id()), pool.volumeIds());
        assertEquals(List.of(MetadataKeys.volumeName("kept"), MetadataKeys.volume(kept.id())), metadataKeys());
        assertEquals(kept, service.getVolume(kept.id()).orElseThrow());
        Volume fresh = create("half-made", MIB);
        assertNotEquals(ORPHAN, fresh.id());
    }

    @Test
    void runningNodeDeletesReplicaDataNoRecordHasAssignedItForTheGrace() throws Exception {
        Volume kept = create("kept", MIB);
        // Replaced on node-b while this node was away; this node came back without a restart.
        String replaced = "vol-00000000-0000-0000-0000-00000000000c";
        pool.create(replaced, MIB);
        metadata.put(MetadataKeys.volume(replaced), VolumeRecord.newBuilder().setId(replaced).setName("moved")
                .setSizeBytes(MIB).setReplicaCount(1).addReplicas(MetadataProtos.healthyReplica("node-b")).build()
                .toByteArray(), MetadataStore.ABSENT);
        java.util.concurrent.atomic.AtomicReference<java.time.Instant> now = startOfTest();
        java.time.Duration grace = java.time.Duration.ofMinutes(10);
        StrayReplicaCollector strays = strayCollector(now, grace);

        assertEquals(Set.of(), strays.collect(), "first seen unassigned: kept for the grace");
        pool.create(ORPHAN, MIB); // a creation in progress: its data exists, its record not yet
        now.set(now.get().plus(grace).minusSeconds(60));
        assertEquals(Set.of(), strays.collect());
        now.set(now.get().plusSeconds(60));
        assertEquals(Set.of(replaced), strays.collect(), "unassigned for the whole grace: deleted");
        assertEquals(Set.of(kept.id(), ORPHAN), pool.volumeIds(), "the creation in progress is younger");

        metadata.put(MetadataKeys.volume(ORPHAN), VolumeRecord.newBuilder().setId(ORPHAN).setName("late")
                .setSizeBytes(MIB).setReplicaCount(1).addReplicas(MetadataProtos.healthyReplica(NODE)).build()
                .toByteArray(), MetadataStore.ABSENT); // the creation completes
        now.set(now.get().plus(grace.multipliedBy(3)));
        assertEquals(Set.of(), strays.collect(), "assigned now: never deleted");
        assertEquals(Set.of(kept.id(), ORPHAN), pool.volumeIds());
        assertEquals(kept, service.getVolume(kept.id()).orElseThrow());
    }

    private static java.util.concurrent.atomic.AtomicReference<java.time.Instant> startOfTest() {
        return new java.util.concurrent.atomic.AtomicReference<>(java.time.Instant.parse("2026-01-01T00:00:00Z"));
    }

    /** A collector of this node's strays whose clock reads {@code now}. */
    private StrayReplicaCollector strayCollector(java.util.concurrent.atomic.AtomicReference<java.time.Instant> now,
                                                 java.time.Duration grace) {
        java.time.Clock clock = new java.time.Clock() {
            @Override public java.time.ZoneId getZone() { return java.time.ZoneOffset.UTC; }
            @Override public java.time.Clock withZone(java.time.ZoneId zone) { return this; }
            @Override public java.time.Instant instant() { return now.get(); }
        };
        return new StrayReplicaCollector(metadata, new LocalFleet(NODE, Map.of(), pool, 4.0), NODE, grace, clock);
    }

    private void recordSnapshot(String snapId, String volumeId, String... holders) throws Exception {
        metadata.put(MetadataKeys.snapshot(snapId), SnapshotRecord.newBuilder().setId(snapId).setName(snapId)
                .setSourceVolumeId(volumeId).setSizeBytes(MIB).setReady(true).addAllNodeIds(List.of(holders))
                .build().toByteArray(), MetadataStore.ABSENT);
    }

    @Test
    void runningNodeDeletesSnapshotLayersNoRecordNamesItAHolderOfForTheGrace() throws Exception {
        Volume v = create("src", MIB);
        Snapshot kept = service.createSnapshot("kept", v.id());
        // Finished by a held copy after its caller had undone it: no record, no claim.
        String late = "snap-00000000-0000-0000-0000-00000000000d";
        pool.snapshot(v.id(), late);
        // Recorded as held by other nodes only (this node's replica was stale when it was taken).
        String elsewhere = "snap-00000000-0000-0000-0000-00000000000e";
        pool.snapshot(v.id(), elsewhere);
        recordSnapshot(elsewhere, v.id(), "node-b", "node-c");
        // Recorded before records named their holders: counts as held everywhere.
        String old = "snap-00000000-0000-0000-0000-00000000000f";
        pool.snapshot(v.id(), old);
        recordSnapshot(old, v.id());
        java.util.concurrent.atomic.AtomicReference<java.time.Instant> now = startOfTest();
        java.time.Duration grace = java.time.Duration.ofMinutes(10);
        StrayReplicaCollector strays = strayCollector(now, grace);

        assertEquals(Set.of(), strays.collect(), "first seen unheld: kept for the grace");
        String inProgress = "snap-00000000-0000-0000-0000-000000000010";
        pool.snapshot(v.id(), inProgress); // a creation in progress: its layers exist, its record not yet
        now.set(now.get().plus(grace));
        assertEquals(Set.of(late, elsewhere), strays.collect(), "unheld for the whole grace: deleted");
        assertEquals(Set.of(kept.id(), old, inProgress), pool.snapshotIds());

        recordSnapshot(inProgress, v.id(), NODE); // the creation completes
        now.set(now.get().plus(grace.multipliedBy(3)));
        assertEquals(Set.of(), strays.collect(), "held now: never deleted");
        assertEquals(Set.of(kept.id(), old, inProgress), pool.snapshotIds());
        assertEquals(Set.of(v.id()), pool.volumeIds(), "the volume is untouched");
        Volume restored = service.createVolume(new VolumeSpec("restored", MIB, 0, Map.of(),
                new VolumeSpec.ContentSource.FromSnapshot(kept.id())));
        assertTrue(pool.volumeIds().contains(restored.id()), "a kept snapshot still restores");
    }

    @Test
    void restartDropsSnapshotLayersWithNeitherRecordNorClaim() throws Exception {
        Volume v = create("src", MIB);
        Snapshot kept = service.createSnapshot("kept", v.id());
        String late = "snap-00000000-0000-0000-0000-00000000000d";
        pool.snapshot(v.id(), late);

        restart();

        assertEquals(Set.of(kept.id()), pool.snapshotIds());
        assertEquals(kept, service.getSnapshot(kept.id()).orElseThrow());
    }

    @Test
    void restartDropsAHalfMadeSnapshotClaimAndItsLayer() throws Exception {
        Volume v = create("src", MIB);
        String snapId = "snap-00000000-0000-0000-0000-00000000000c";
        metadata.put(MetadataKeys.snapshotName("half-snap"), snapId.getBytes(StandardCharsets.UTF_8), MetadataStore.ABSENT);
        pool.snapshot(v.id(), snapId);

        restart();

        assertFalse(pool.snapshotExists(snapId));
        assertTrue(metadata.get(MetadataKeys.snapshotName("half-snap")).isEmpty());
        assertNotEquals(snapId, service.createSnapshot("half-snap", v.id()).id());
    }

    @Test
    void retriedCreateCompletesAClaimWithoutRecordUnderTheSameId() throws Exception {
        metadata.put(MetadataKeys.volumeName("pvc-retry"), ORPHAN.getBytes(StandardCharsets.UTF_8), MetadataStore.ABSENT);
        Volume v = create("pvc-retry", MIB);
        assertEquals(ORPHAN, v.id());
        assertEquals(Set.of(ORPHAN), pool.volumeIds());
        assertEquals(v, service.getVolume(ORPHAN).orElseThrow());
    }

    @Test
    void retriedCreateCompletesAClaimWhoseDataWasAlreadyMade() throws Exception {
        // The claim and the replica data exist (the record write failed and so did the cleanup).
        metadata.put(MetadataKeys.volumeName("pvc-retry"), ORPHAN.getBytes(StandardCharsets.UTF_8), MetadataStore.ABSENT);
        pool.create(ORPHAN, MIB);
        Volume v = create("pvc-retry", 2 * MIB);
        assertEquals(ORPHAN, v.id());
        assertEquals(2 * MIB, store(ORPHAN).sizeBytes());
        assertEquals(v, service.getVolume(ORPHAN).orElseThrow());
    }
}
