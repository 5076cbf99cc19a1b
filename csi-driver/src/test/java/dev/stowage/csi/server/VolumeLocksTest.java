package dev.stowage.csi.server;

import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.StowageException;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

class VolumeLocksTest {
    @Test
    void secondHolderIsAbortedUntilTheFirstReleases() {
        VolumeLocks locks = new VolumeLocks();
        VolumeLocks.Held first = locks.volume("vol-1");
        StowageException e = assertThrows(StowageException.class, () -> locks.volume("vol-1"));
        assertEquals(ErrorCode.ABORTED, e.code());
        assertEquals("operation in progress for volume vol-1", e.getMessage());
        locks.volume("vol-2").close();
        locks.snapshot("vol-1").close();
        first.close();
        first.close();
        locks.volume("vol-1").close();
        assertFalse(locks.anyHeld());
    }
}
