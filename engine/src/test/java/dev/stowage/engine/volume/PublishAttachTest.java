package dev.stowage.engine.volume;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.Volume;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** Publication (controller side) and attachment (node side): preconditions, fencing epochs, restart. */
class PublishAttachTest extends VolumeServiceHarness {

    @Test
    void publishRecordsTheNodeAndIsIdempotent() {
        Volume v = create("v", MIB);
        Volume p = service.publish(v.id(), NODE, false);
        assertEquals(Optional.of(new Volume.Attachment(NODE, false, Optional.empty())), p.attachment());
        assertEquals(p, service.publish(v.id(), NODE, false));
        assertEquals(p.attachment(), service.getVolume(v.id()).orElseThrow().attachment());
    }

    @Test
    void publishToUnknownNodeOrMissingVolumeIsNotFound() {
        Volume v = create("v", MIB);
        fails(ErrorCode.NOT_FOUND, () -> service.publish(v.id(), "node-b", false));
        fails(ErrorCode.NOT_FOUND, () -> service.publish("vol-00000000-0000-0000-0000-000000000000", NODE, false));
        assertTrue(service.getVolume(v.id()).orElseThrow().attachment().isEmpty());
    }

    @Test
    void publishedOnALiveNodeIsFailedPrecondition() throws Exception {
        // A fleet in which node-b is a live member, as in a cluster.
        LocalFleet local = new LocalFleet(NODE, Map.of(), pool, 4.0);
        ReplicaFleet withLiveB = (ReplicaFleet) java.lang.reflect.Proxy.newProxyInstance(
                ReplicaFleet.class.getClassLoader(), new Class<?>[] {ReplicaFleet.class}, (proxy, method, args) ->
                        method.getName().equals("nodeAlive") && "node-b".equals(args[0]) ? Boolean.TRUE
                                : invoke(method, local, args));
        service.close();
        service = new LocalVolumeService(config(), metadata, withLiveB, frontend, java.time.Clock.systemUTC());
        service.start();
        Volume v = create("v", MIB);
        publishOn("node-b", v);
        fails(ErrorCode.FAILED_PRECONDITION, () -> service.publish(v.id(), NODE, false));
        fails(ErrorCode.FAILED_PRECONDITION, () -> service.attachDevice(v.id()));
        assertTrue(frontend.exported().isEmpty());
        // Unpublishing from a node it is not published on is a no-op.
        service.unpublish(v.id(), NODE);
        assertEquals("node-b", service.getVolume(v.id()).orElseThrow().attachment().orElseThrow().nodeId());

        // An operator who knows node-b is cut off forces the take-over; the attach fences node-b.
        long epochBefore = service.getVolume(v.id()).orElseThrow().epoch();
        Volume taken = service.publish(v.id(), NODE, false, true);
        assertEquals(NODE, taken.attachment().orElseThrow().nodeId());
        Path device = service.attachDevice(v.id());
        Volume after = service.getVolume(v.id()).orElseThrow();
        assertEquals(Optional.of(device.toString()), after.attachment().orElseThrow().devicePath());
        assertTrue(after.epoch() > epochBefore, "the forced take-over raises the epoch at attach");
        assertEquals(after.epoch(), service.coordinator(v.id()).orElseThrow().epoch());
        assertEquals(after.attachment(), service.publish(v.id(), NODE, false, true).attachment(),
                "forcing onto the node that holds it already changes nothing");
    }

    private static Object invoke(java.lang.reflect.Method method, Object target, Object[] args) throws Throwable {
        try {
            return method.invoke(target, args);
        } catch (java.lang.reflect.InvocationTargetException e) {
            throw e.getCause();
        }
    }

    @Test
    void publishedOnANodeThatIsNoLongerAliveIsTakenOverWithANewEpoch() {
        Volume v = create("v", MIB);
        publishOn("node-b", v);
        long epochBefore = service.getVolume(v.id()).orElseThrow().epoch();
        service.publish(v.id(), NODE, false);
        assertEquals(NODE, service.getVolume(v.id()).orElseThrow().attachment().orElseThrow().nodeId());
        service.attachDevice(v.id());
        assertTrue(service.getVolume(v.id()).orElseThrow().epoch() > epochBefore, "the take-over fences the old node");
    }

    /** Another node's publication, as a controller elsewhere would have written it. */
    private void publishOn(String node, Volume v) {
        metadata.put(MetadataKeys.volume(v.id()), dev.stowage.proto.metadata.VolumeRecord.newBuilder(
                        MetadataProtos.parseVolume("", metadata.get(MetadataKeys.volume(v.id())).orElseThrow().value()))
                .setAttachment(dev.stowage.proto.metadata.AttachmentRecord.newBuilder().setNodeId(node))
                .build().toByteArray(), metadata.get(MetadataKeys.volume(v.id())).orElseThrow().modRevision());
    }

    @Test
    void publishWithOtherReadonlyIsAlreadyExists() {
        Volume v = create("v", MIB);
        service.publish(v.id(), NODE, true);
        fails(ErrorCode.ALREADY_EXISTS, "readonly", () -> service.publish(v.id(), NODE, false));
        service.attachDevice(v.id());
        assertTrue(frontend.live(v.id()).options.readOnly());
    }

    @Test
    void publishBeyondTheNodesMaximumIsResourceExhausted() {
        for (int i = 0; i < 3; i++) {
            service.publish(create("v" + i, MIB).id(), NODE, false);
        }
        Volume extra = create("extra", MIB);
        fails(ErrorCode.RESOURCE_EXHAUSTED, "node_id", () -> service.publish(extra.id(), NODE, false));
        assertTrue(service.getVolume(extra.id()).orElseThrow().attachment().isEmpty());
    }

    @Test
    void deleteWhilePublishedIsFailedPrecondition() {
        Volume v = create("v", MIB);
        service.publish(v.id(), NODE, false);
        fails(ErrorCode.FAILED_PRECONDITION, () -> service.deleteVolume(v.id()));
        assertTrue(service.getVolume(v.id()).isPresent());
        service.unpublish(v.id(), NODE);
        service.deleteVolume(v.id());
        assertTrue(service.getVolume(v.id()).isEmpty());
    }

    @Test
    void unpublishWhileAttachedIsFailedPrecondition() {
        Volume v = create("v", MIB);
        service.publish(v.id(), NODE, false);
        service.attachDevice(v.id());
        fails(ErrorCode.FAILED_PRECONDITION, () -> service.unpublish(v.id(), NODE));
        service.detachDevice(v.id());
        service.unpublish(v.id(), NODE);
        service.unpublish(v.id(), NODE);
        assertTrue(service.getVolume(v.id()).orElseThrow().attachment().isEmpty());
    }

    @Test
    void attachRecordsTheDeviceAndRepeatsSafely() {
        Volume v = create("v", MIB);
        service.publish(v.id(), NODE, false);
        Path dev = service.attachDevice(v.id());
        assertEquals(Path.of("/dev/fake0"), dev);
        assertEquals(dev, service.attachDevice(v.id()));
        assertEquals(List.of(v.id()), frontend.exported());
        Volume now = service.getVolume(v.id()).orElseThrow();
        assertEquals(Optional.of("/dev/fake0"), now.attachment().orElseThrow().devicePath());
        assertEquals(1, now.epoch());
        assertEquals(1, service.coordinator(v.id()).orElseThrow().epoch());
    }

    @Test
    void eachAttachBumpsTheEpochFencingEarlierCoordinators() {
        Volume v = create("v", MIB);
        service.publish(v.id(), NODE, false);
        for (long expected = 1; expected <= 3; expected++) {
            service.attachDevice(v.id());
            assertEquals(expected, service.getVolume(v.id()).orElseThrow().epoch());
            assertEquals(expected, service.coordinator(v.id()).orElseThrow().epoch());
            service.detachDevice(v.id());
        }
    }

    @Test
    void detachClearsTheDeviceClosesTheExportAndKeepsThePublication() {
        Volume v = create("v", MIB);
        service.publish(v.id(), NODE, false);
        service.attachDevice(v.id());
        RecordingFrontend.RecordingExport export = frontend.live(v.id());
        service.detachDevice(v.id());
        assertTrue(export.closed);
        assertTrue(service.coordinator(v.id()).isEmpty());
        Volume.Attachment a = service.getVolume(v.id()).orElseThrow().attachment().orElseThrow();
        assertEquals(NODE, a.nodeId());
        assertEquals(Optional.empty(), a.devicePath());
        service.detachDevice(v.id());
    }

    @Test
    void failedExportLeavesTheVolumeDetachedAndAttachWorksOnceTheFrontendRecovers() {
        Volume v = create("v", MIB);
        service.publish(v.id(), NODE, false);
        frontend.failNextExport(new IOException("no loop device free"));
        fails(ErrorCode.INTERNAL, () -> service.attachDevice(v.id()));
        assertTrue(service.coordinator(v.id()).isEmpty());
        assertTrue(frontend.exported().isEmpty());
        Volume after = service.getVolume(v.id()).orElseThrow();
        assertEquals(Optional.empty(), after.attachment().orElseThrow().devicePath());
        // Unpublishing is allowed: nothing is attached.
        service.unpublish(v.id(), NODE);
        service.publish(v.id(), NODE, false);

        Path dev = service.attachDevice(v.id());
        assertEquals(Optional.of(dev.toString()),
                service.getVolume(v.id()).orElseThrow().attachment().orElseThrow().devicePath());
        assertEquals(after.epoch() + 1, service.getVolume(v.id()).orElseThrow().epoch());
    }

    @Test
    void anAttachWithoutAPublicationIsGivenUpAtDetachAndAPublicationAfterItIsKept() {
        // Mesos calls only the Node service: the stage's attach takes the volume, its detach gives it up.
        Volume v = create("v", MIB);
        service.attachDevice(v.id());
        assertEquals(NODE, service.getVolume(v.id()).orElseThrow().attachment().orElseThrow().nodeId());
        service.detachDevice(v.id());
        assertEquals(Optional.empty(), service.getVolume(v.id()).orElseThrow().attachment(),
                "taken by the attach alone, given up with it");

        // Attached first, then published (the publication arrives late): the detach keeps the publication.
        service.attachDevice(v.id());
        service.publish(v.id(), NODE, false);
        service.detachDevice(v.id());
        Volume.Attachment kept = service.getVolume(v.id()).orElseThrow().attachment().orElseThrow();
        assertEquals(NODE, kept.nodeId());
        assertEquals(Optional.empty(), kept.devicePath());
        service.unpublish(v.id(), NODE);
        assertEquals(Optional.empty(), service.getVolume(v.id()).orElseThrow().attachment());
    }

    @Test
    void failedExportOfAnUnpublishedVolumeLeavesNoPublication() {
        Volume v = create("v", MIB);
        frontend.failNextExport(new IOException("no loop device free"));
        fails(ErrorCode.INTERNAL, () -> service.attachDevice(v.id()));
        // Nothing half-made: the volume can still be deleted.
        service.deleteVolume(v.id());
        assertTrue(service.getVolume(v.id()).isEmpty());
    }

    @Test
    void attachBeyondTheNodesMaximumIsResourceExhausted() {
        for (int i = 0; i < 3; i++) {
            Volume v = create("v" + i, MIB);
            service.publish(v.id(), NODE, false);
            service.attachDevice(v.id());
        }
        Volume extra = create("extra", MIB);
        fails(ErrorCode.RESOURCE_EXHAUSTED, () -> service.attachDevice(extra.id()));
        assertEquals(0, service.getVolume(extra.id()).orElseThrow().epoch());
    }

    @Test
    void restartExportsAttachedVolumesAgainWithANewEpoch() throws Exception {
        Volume attached = create("attached", MIB);
        Volume publishedOnly = create("published", MIB);
        Volume idle = create("idle", MIB);
        service.publish(attached.id(), NODE, false);
        service.publish(publishedOnly.id(), NODE, false);
        service.attachDevice(attached.id());
        write(attached.id(), 0, pattern(9, 4096));

        restart();

        assertTrue(service.ready());
        assertTrue(service.coordinator(attached.id()).isPresent());
        assertFalse(service.coordinator(publishedOnly.id()).isPresent());
        assertFalse(service.coordinator(idle.id()).isPresent());
        assertTrue(frontend.cleaned().contains(attached.id()));
        assertTrue(frontend.live(attached.id()) != null);
        Volume now = service.getVolume(attached.id()).orElseThrow();
        assertEquals(2, now.epoch());
        assertEquals(Optional.of(frontend.live(attached.id()).devicePath().toString()),
                now.attachment().orElseThrow().devicePath());
        assertEquals(2, service.coordinator(attached.id()).orElseThrow().epoch());
        java.nio.ByteBuffer dst = java.nio.ByteBuffer.allocate(4096);
        service.coordinator(attached.id()).orElseThrow().read(0, dst);
        org.junit.jupiter.api.Assertions.assertArrayEquals(pattern(9, 4096), dst.array());
    }
}
