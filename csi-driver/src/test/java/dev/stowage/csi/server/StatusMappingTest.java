package dev.stowage.csi.server;

import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.StowageException;
import io.grpc.Status;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

class StatusMappingTest {
    @Test
    void everyErrorCodeMapsToTheStatusOfTheSameName() {
        for (ErrorCode code : ErrorCode.values()) {
            Status status = StatusMapping.toStatus("Test", new StowageException(code, "volume vol-1: " + code));
            assertEquals(code.name(), status.getCode().name());
            assertEquals("volume vol-1: " + code, status.getDescription());
        }
    }

    @Test
    void unexpectedExceptionsBecomeInternalWithoutJavaDetails() {
        Status status = StatusMapping.toStatus("CreateVolume", new NullPointerException("secret internals"));
        assertEquals(Status.Code.INTERNAL, status.getCode());
        assertFalse(status.getDescription().contains("NullPointerException"));
        assertFalse(status.getDescription().contains("secret internals"));
        assertEquals("internal error in CreateVolume; see the driver log", status.getDescription());
    }

    @Test
    void grpcStatusesPassThrough() {
        Status status = StatusMapping.toStatus("X", Status.UNIMPLEMENTED.withDescription("no").asRuntimeException());
        assertEquals(Status.Code.UNIMPLEMENTED, status.getCode());
    }
}
