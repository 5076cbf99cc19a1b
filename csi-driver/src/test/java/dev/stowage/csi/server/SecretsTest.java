package dev.stowage.csi.server;

import csi.v1.Csi;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SecretsTest {
    @Test
    void stripsSecretsFromEveryRequestThatCarriesThem() {
        Csi.CreateVolumeRequest create = Csi.CreateVolumeRequest.newBuilder().setName("pvc-1")
                .putParameters("repl", "3").putSecrets("encryptionKey", "hunter2").build();
        String logged = Secrets.toLogString(create);
        assertFalse(logged.contains("hunter2"), logged);
        assertFalse(logged.contains("encryptionKey"), logged);
        assertTrue(logged.contains("pvc-1") && logged.contains("repl"), logged);
        assertEquals("hunter2", create.getSecretsOrThrow("encryptionKey"), "the request itself is untouched");

        for (com.google.protobuf.Message m : new com.google.protobuf.Message[] {
                Csi.NodeStageVolumeRequest.newBuilder().setVolumeId("v").putSecrets("k", "hunter2").build(),
                Csi.NodePublishVolumeRequest.newBuilder().setVolumeId("v").putSecrets("k", "hunter2").build(),
                Csi.ControllerPublishVolumeRequest.newBuilder().setVolumeId("v").putSecrets("k", "hunter2").build(),
                Csi.DeleteVolumeRequest.newBuilder().setVolumeId("v").putSecrets("k", "hunter2").build(),
                Csi.CreateSnapshotRequest.newBuilder().setName("s").putSecrets("k", "hunter2").build(),
                Csi.ControllerExpandVolumeRequest.newBuilder().setVolumeId("v").putSecrets("k", "hunter2").build(),
                Csi.NodeExpandVolumeRequest.newBuilder().setVolumeId("v").putSecrets("k", "hunter2").build(),
                Csi.ControllerModifyVolumeRequest.newBuilder().setVolumeId("v").putSecrets("k", "hunter2").build()}) {
            String text = Secrets.toLogString(m);
            assertFalse(text.contains("hunter2"), text);
        }
    }

    @Test
    void theSpecMarksSecretFields() {
        assertTrue(Secrets.isSecret(Csi.CreateVolumeRequest.getDescriptor().findFieldByName("secrets")));
        assertTrue(Csi.CreateVolumeRequest.getDescriptor().findFieldByName("secrets").getOptions()
                .getExtension(Csi.csiSecret), "the csi_secret option is readable");
        assertFalse(Secrets.isSecret(Csi.CreateVolumeRequest.getDescriptor().findFieldByName("parameters")));
    }

    @Test
    void messagesWithoutSecretsAreReturnedAsTheyAre() {
        Csi.ProbeRequest probe = Csi.ProbeRequest.getDefaultInstance();
        assertSame(probe, Secrets.strip(probe));
    }
}
