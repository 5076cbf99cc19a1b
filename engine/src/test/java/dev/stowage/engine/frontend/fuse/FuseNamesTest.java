package dev.stowage.engine.frontend.fuse;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** Pure helpers of the FUSE frontend; no root needed. */
class FuseNamesTest {

    @Test
    void volumeIdsMapToDistinctSafeFileNames() {
        assertEquals("pvc-12_ab.C", FuseFrontend.fileName("pvc-12_ab.C"));
        assertEquals("a%2Fb", FuseFrontend.fileName("a/b"));
        assertEquals("a%20b%C3%A9", FuseFrontend.fileName("a bé"));
        assertNotEquals(FuseFrontend.fileName("a/b"), FuseFrontend.fileName("a%2Fb"));
        assertThrows(IllegalArgumentException.class, () -> FuseFrontend.fileName(""));
        assertThrows(IllegalArgumentException.class, () -> FuseFrontend.fileName(".."));
        assertThrows(IllegalArgumentException.class, () -> FuseFrontend.fileName("x".repeat(241)));
    }

    @Test
    void fileNamesMapBackToTheirVolumeIdsAndNothingElseDoes() {
        for (String id : new String[] {"pvc-12_ab.C", "a/b", "a bé", "vol-1%"}) {
            assertEquals(id, FuseFrontend.volumeIdOf(FuseFrontend.fileName(id)));
        }
        assertNull(FuseFrontend.volumeIdOf("a%2fb"), "lower-case escapes are never written");
        assertNull(FuseFrontend.volumeIdOf("a b"), "a space is always escaped");
        assertNull(FuseFrontend.volumeIdOf("a%zz"));
        assertNull(FuseFrontend.volumeIdOf(".."));
    }

    @Test
    void mountinfoEscapesAreDecoded() {
        assertEquals("/run/a b\\c", FuseMounts.unescape("/run/a\\040b\\134c"));
        assertEquals("/plain", FuseMounts.unescape("/plain"));
        assertEquals("/tail\\04", FuseMounts.unescape("/tail\\04"));
    }

    @Test
    void configRejectsBadValuesAndNormalisesTheDirectory() {
        FuseFrontendConfig c = FuseFrontendConfig.defaults(Path.of("/x/../run/fuse"));
        assertEquals(Path.of("/run/fuse"), c.runDirectory());
        assertEquals(4, c.threadsPerVolume());
        assertEquals(1 << 20, c.maxWriteBytes());
        assertThrows(IllegalArgumentException.class, () -> new FuseFrontendConfig(Path.of("/r"), 0, 1 << 20, 64));
        assertThrows(IllegalArgumentException.class, () -> new FuseFrontendConfig(Path.of("/r"), 4, 1000, 64));
        assertThrows(IllegalArgumentException.class, () -> new FuseFrontendConfig(Path.of("/r"), 4, 2 << 20, 64));
        assertThrows(IllegalArgumentException.class, () -> new FuseFrontendConfig(Path.of("/r"), 4, 1 << 20, 0));
        assertEquals(FuseFrontendConfig.DEFAULT_POLL_MICROS, c.pollMicros());
        assertEquals(0, c.withPollMicros(0).pollMicros());
        assertThrows(IllegalArgumentException.class, () -> c.withPollMicros(-1));
        assertThrows(IllegalArgumentException.class, () -> c.withPollMicros(10_001));
        assertThrows(NullPointerException.class, () -> FuseFrontendConfig.defaults(null));
    }
}
