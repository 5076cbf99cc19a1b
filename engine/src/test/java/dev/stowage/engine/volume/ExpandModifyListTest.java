package dev.stowage.engine.volume;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.Page;
import dev.stowage.engine.api.Volume;
import dev.stowage.engine.replication.IoLimits;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

/** Expansion (offline and online), modification of mutable parameters, and list pagination. */
class ExpandModifyListTest extends VolumeServiceHarness {

    @Test
    void expandGrowsThePoolVolumeAndTheRecord() throws Exception {
        Volume v = create("v", 4 * MIB);
        assertEquals(8 * MIB, service.expandVolume(v.id(), 8 * MIB - 100, 0));
        assertEquals(8 * MIB, store(v.id()).sizeBytes());
        assertEquals(8 * MIB, service.getVolume(v.id()).orElseThrow().sizeBytes());
    }

    @Test
    void expandToASmallerOrEqualSizeReturnsTheCurrentSize() throws Exception {
        Volume v = create("v", 4 * MIB);
        assertEquals(4 * MIB, service.expandVolume(v.id(), 2 * MIB, 0));
        assertEquals(4 * MIB, service.expandVolume(v.id(), 4 * MIB, 0));
        assertEquals(4 * MIB, store(v.id()).sizeBytes());
    }

    @Test
    void expandValidatesItsArguments() {
        Volume v = create("v", 4 * MIB);
        fails(ErrorCode.INVALID_ARGUMENT, "capacity_range.required_bytes", () -> service.expandVolume(v.id(), 0, 0));
        fails(ErrorCode.NOT_FOUND, () -> service.expandVolume("vol-00000000-0000-0000-0000-000000000000", MIB, 0));
        fails(ErrorCode.OUT_OF_RANGE, () -> service.expandVolume(v.id(), 17 * GIB, 0));
        assertEquals(4 * MIB, service.getVolume(v.id()).orElseThrow().sizeBytes());
    }

    @Test
    void expandOfAnAttachedVolumeResizesTheCoordinatorAndRefreshesTheExport() {
        Volume v = create("v", 4 * MIB);
        service.publish(v.id(), NODE, false);
        service.attachDevice(v.id());
        RecordingFrontend.RecordingExport export = frontend.live(v.id());
        assertEquals(12 * MIB, service.expandVolume(v.id(), 12 * MIB, 16 * MIB));
        assertEquals(1, export.refreshes.get());
        assertEquals(12 * MIB, export.sizeAtLastRefresh);
        assertEquals(12 * MIB, service.coordinator(v.id()).orElseThrow().sizeBytes());
        assertEquals(12 * MIB, service.getVolume(v.id()).orElseThrow().sizeBytes());
    }

    @Test
    void modifyChangesStoredLimitsAndTheAttachedCoordinatorsLimits() {
        Volume v = create("v", MIB);
        service.publish(v.id(), NODE, false);
        service.attachDevice(v.id());
        assertEquals(IoLimits.UNLIMITED, service.coordinator(v.id()).orElseThrow().limits());

        Volume m = service.modifyVolume(v.id(), Map.of("maxIops", "250"));
        assertEquals("250", m.parameters().get("maxIops"));
        assertEquals("250", service.getVolume(v.id()).orElseThrow().parameters().get("maxIops"));
        assertEquals(new IoLimits(250, 0), service.coordinator(v.id()).orElseThrow().limits());

        service.modifyVolume(v.id(), Map.of("maxBytesPerSecond", "1048576"));
        assertEquals(new IoLimits(250, 1048576), service.coordinator(v.id()).orElseThrow().limits());
        // 0 removes a limit.
        Volume cleared = service.modifyVolume(v.id(), Map.of("maxIops", "0"));
        assertFalse(cleared.parameters().containsKey("maxIops"));
        assertEquals(new IoLimits(0, 1048576), service.coordinator(v.id()).orElseThrow().limits());
    }

    @Test
    void modifiedLimitsApplyToTheNextAttach() {
        Volume v = create("v", MIB);
        service.modifyVolume(v.id(), Map.of("maxIops", "40"));
        service.publish(v.id(), NODE, false);
        service.attachDevice(v.id());
        assertEquals(new IoLimits(40, 0), service.coordinator(v.id()).orElseThrow().limits());
    }

    @Test
    void modifyOfImmutableOrUnknownKeyIsInvalidAndChangesNothing() {
        Volume v = service.createVolume(new dev.stowage.engine.api.VolumeSpec("v", MIB, 0, Map.of("maxIops", "5"),
                new dev.stowage.engine.api.VolumeSpec.ContentSource.Empty()));
        fails(ErrorCode.INVALID_ARGUMENT, "mutable_parameters.fsType",
                () -> service.modifyVolume(v.id(), Map.of("fsType", "xfs")));
        fails(ErrorCode.INVALID_ARGUMENT, "mutable_parameters.repl",
                () -> service.modifyVolume(v.id(), Map.of("repl", "1", "maxIops", "9")));
        fails(ErrorCode.INVALID_ARGUMENT, "mutable_parameters.maxIops",
                () -> service.modifyVolume(v.id(), Map.of("maxIops", "lots")));
        fails(ErrorCode.NOT_FOUND, () -> service.modifyVolume("vol-00000000-0000-0000-0000-000000000000",
                Map.of("maxIops", "1")));
        assertEquals(v, service.getVolume(v.id()).orElseThrow());
    }

    @Test
    void paginationWalksEveryVolumeExactlyOnce() {
        Set<String> ids = new TreeSet<>();
        for (int i = 0; i < 5; i++) {
            ids.add(create("v" + i, MIB).id());
        }
        List<String> seen = new ArrayList<>();
        String token = "";
        int pages = 0;
        do {
            Page<Volume> p = service.listVolumes(2, token);
            assertTrue(p.items().size() <= 2);
            p.items().forEach(v -> seen.add(v.id()));
            token = p.nextToken();
            pages++;
        } while (!token.isEmpty() && pages < 10);
        assertEquals(3, pages);
        assertEquals(List.copyOf(ids), seen);
        assertEquals(5, service.listVolumes(0, "").items().size());
    }

    @Test
    void badTokenIsAborted() {
        create("v", MIB);
        fails(ErrorCode.ABORTED, "starting_token", () -> service.listVolumes(2, "not-a-token"));
        fails(ErrorCode.ABORTED, "starting_token", () -> service.listVolumes(2, "snap-00000000-0000-0000-0000-000000000000"));
        fails(ErrorCode.INVALID_ARGUMENT, "max_entries", () -> service.listVolumes(-1, ""));
    }

    @Test
    void tokenOfADeletedVolumeStillContinuesAfterIt() {
        List<String> ids = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            ids.add(create("v" + i, MIB).id());
        }
        ids.sort(null);
        Page<Volume> first = service.listVolumes(2, "");
        assertEquals(ids.get(1), first.nextToken());
        service.deleteVolume(ids.get(1));
        Page<Volume> rest = service.listVolumes(0, first.nextToken());
        assertEquals(ids.subList(2, 5), rest.items().stream().map(Volume::id).toList());
        assertEquals("", rest.nextToken());
    }

    @Test
    void volumeWhoseDataIsGoneIsReportedAbnormal() throws Exception {
        Volume v = create("v", MIB);
        pool.delete(v.id());
        Volume.Condition c = service.getVolume(v.id()).orElseThrow().condition();
        assertTrue(c.abnormal());
        assertTrue(c.message().contains("missing"), c.message());
    }
}
