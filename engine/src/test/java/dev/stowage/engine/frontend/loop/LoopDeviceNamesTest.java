package dev.stowage.engine.frontend.loop;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** Parsing of losetup's raw output; no root needed. */
class LoopDeviceNamesTest {

    @Test
    void rawOutputEscapesAreDecoded() {
        assertEquals("/tmp/a b", LoopDevice.unescape("/tmp/a\\x20b"));
        assertEquals("/tmp/é", LoopDevice.unescape("/tmp/\\xc3\\xa9"));
        assertEquals("/plain", LoopDevice.unescape("/plain"));
    }
}
