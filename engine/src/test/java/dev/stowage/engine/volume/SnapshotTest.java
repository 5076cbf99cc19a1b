package dev.stowage.engine.volume;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.Page;
import dev.stowage.engine.api.Snapshot;
import dev.stowage.engine.api.Volume;
import dev.stowage.engine.api.VolumeSpec;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** Snapshots: records, filters, idempotency, and that restores and clones read point-in-time data. */
class SnapshotTest extends VolumeServiceHarness {
    private static final int LEN = 64 * 1024;

    private Volume fromSource(String name, long size, VolumeSpec.ContentSource source) {
        return service.createVolume(new VolumeSpec(name, size, 0, Map.of(), source));
    }

    @Test
    void createGetAndListSnapshots() {
        Volume a = create("a", 4 * MIB);
        Volume b = create("b", 2 * MIB);
        Snapshot sa = service.createSnapshot("sa", a.id());
        Snapshot sb = service.createSnapshot("sb", b.id());
        assertTrue(sa.id().matches("snap-[0-9a-f-]{36}"), sa.id());
        assertEquals("sa", sa.name());
        assertEquals(a.id(), sa.sourceVolumeId());
        assertEquals(4 * MIB, sa.sizeBytes());
        assertTrue(sa.readyToUse());
        assertTrue(sa.createdAtMillis() > 0);
        assertEquals(sa, service.getSnapshot(sa.id()).orElseThrow());
        assertEquals(Set.of(sa, sb), Set.copyOf(service.listSnapshots(null, null, 0, "").items()));
        assertEquals(List.of(sb), service.listSnapshots(b.id(), "", 0, "").items());
        assertEquals(List.of(sa), service.listSnapshots("", sa.id(), 0, "").items());
        assertEquals(List.of(), service.listSnapshots(b.id(), sa.id(), 0, "").items());
        assertTrue(service.getSnapshot("snap-00000000-0000-0000-0000-000000000000").isEmpty());
    }

    @Test
    void sameNameSameSourceIsIdempotentAndAnotherSourceIsAlreadyExists() {
        Volume a = create("a", MIB);
        Volume b = create("b", MIB);
        Snapshot s = service.createSnapshot("s", a.id());
        assertEquals(s, service.createSnapshot("s", a.id()));
        fails(ErrorCode.ALREADY_EXISTS, "name", () -> service.createSnapshot("s", b.id()));
        assertEquals(1, service.listSnapshots(null, null, 0, "").items().size());
    }

    @Test
    void snapshotOfMissingVolumeIsNotFoundAndLeavesNoClaim() {
        fails(ErrorCode.NOT_FOUND, () -> service.createSnapshot("s", "vol-00000000-0000-0000-0000-000000000000"));
        assertTrue(metadataKeys().isEmpty(), metadataKeys()::toString);
    }

    @Test
    void deleteSnapshotIsIdempotentAndFreesTheName() {
        Volume a = create("a", MIB);
        Snapshot s = service.createSnapshot("s", a.id());
        service.deleteSnapshot(s.id());
        service.deleteSnapshot(s.id());
        assertTrue(service.getSnapshot(s.id()).isEmpty());
        assertTrue(!pool.snapshotExists(s.id()));
        assertEquals(List.of(MetadataKeys.volumeName("a"), MetadataKeys.volume(a.id())), metadataKeys());
        assertTrue(!service.createSnapshot("s", a.id()).id().equals(s.id()));
    }

    @Test
    void restoreReadsTheDataOfSnapshotTime() throws Exception {
        Volume src = create("src", 4 * MIB);
        byte[] before = pattern(1, LEN);
        byte[] after = pattern(2, LEN);
        write(src.id(), MIB, before);
        Snapshot s = service.createSnapshot("s", src.id());
        write(src.id(), MIB, after);

        Volume restored = fromSource("restored", 8 * MIB, new VolumeSpec.ContentSource.FromSnapshot(s.id()));
        assertEquals(8 * MIB, restored.sizeBytes());
        assertEquals(new VolumeSpec.ContentSource.FromSnapshot(s.id()), restored.contentSource());
        assertArrayEquals(before, read(restored.id(), MIB, LEN));
        assertArrayEquals(after, read(src.id(), MIB, LEN));
        assertArrayEquals(new byte[LEN], read(restored.id(), 6 * MIB, LEN));
    }

    @Test
    void restoreStillWorksAfterTheSourceVolumeIsDeleted() throws Exception {
        Volume src = create("src", 2 * MIB);
        byte[] data = pattern(3, LEN);
        write(src.id(), 0, data);
        Snapshot s = service.createSnapshot("s", src.id());
        service.deleteVolume(src.id());
        Volume restored = fromSource("restored", 2 * MIB, new VolumeSpec.ContentSource.FromSnapshot(s.id()));
        assertArrayEquals(data, read(restored.id(), 0, LEN));
    }

    @Test
    void cloneReadsTheSourceDataAtCloneTime() throws Exception {
        Volume src = create("src", 4 * MIB);
        byte[] before = pattern(4, LEN);
        write(src.id(), 0, before);
        Volume clone = fromSource("clone", 4 * MIB, new VolumeSpec.ContentSource.FromVolume(src.id()));
        write(src.id(), 0, pattern(5, LEN));
        assertArrayEquals(before, read(clone.id(), 0, LEN));
        // Writes to the clone stay in the clone.
        byte[] mine = pattern(6, LEN);
        write(clone.id(), 0, mine);
        assertArrayEquals(pattern(5, LEN), read(src.id(), 0, LEN));
        assertArrayEquals(mine, read(clone.id(), 0, LEN));
    }

    @Test
    void cloneOfAnAttachedVolumeSeesItsWrites() throws Exception {
        Volume src = create("src", 2 * MIB);
        service.publish(src.id(), NODE, false);
        service.attachDevice(src.id());
        byte[] data = pattern(7, LEN);
        service.coordinator(src.id()).orElseThrow().write(0, java.nio.ByteBuffer.wrap(data));
        Volume clone = fromSource("clone", 2 * MIB, new VolumeSpec.ContentSource.FromVolume(src.id()));
        assertArrayEquals(data, read(clone.id(), 0, LEN));
    }

    @Test
    void restoreOrCloneSmallerThanTheSourceIsOutOfRangeAndLeavesNothing() throws Exception {
        Volume src = create("src", 4 * MIB);
        Snapshot s = service.createSnapshot("s", src.id());
        List<String> keysBefore = metadataKeys();
        fails(ErrorCode.OUT_OF_RANGE, () -> service.createVolume(new VolumeSpec("small", MIB, 2 * MIB, Map.of(),
                new VolumeSpec.ContentSource.FromSnapshot(s.id()))));
        fails(ErrorCode.OUT_OF_RANGE, () -> service.createVolume(new VolumeSpec("small", MIB, 2 * MIB, Map.of(),
                new VolumeSpec.ContentSource.FromVolume(src.id()))));
        assertEquals(keysBefore, metadataKeys());
        assertEquals(Set.of(src.id()), pool.volumeIds());
    }

    @Test
    void snapshotPagination() {
        Volume a = create("a", MIB);
        for (int i = 0; i < 3; i++) {
            service.createSnapshot("s" + i, a.id());
        }
        Page<Snapshot> p1 = service.listSnapshots(a.id(), null, 2, "");
        assertEquals(2, p1.items().size());
        Page<Snapshot> p2 = service.listSnapshots(a.id(), null, 2, p1.nextToken());
        assertEquals(1, p2.items().size());
        assertEquals("", p2.nextToken());
        fails(ErrorCode.ABORTED, "starting_token", () -> service.listSnapshots(null, null, 2, "bogus"));
    }

    @Test
    void restoreWithoutARequiredSizeTakesTheSnapshotsSize() {
        // The default size is 1 GiB; a larger source must not make a size-less restore fail.
        Volume src = fromSource("big", 3L << 30, new VolumeSpec.ContentSource.Empty());
        Snapshot s = service.createSnapshot("s", src.id());
        Volume restored = fromSource("restored", 0, new VolumeSpec.ContentSource.FromSnapshot(s.id()));
        assertEquals(3L << 30, restored.sizeBytes());
        Volume clone = fromSource("clone", 0, new VolumeSpec.ContentSource.FromVolume(src.id()));
        assertEquals(3L << 30, clone.sizeBytes());
    }
}
