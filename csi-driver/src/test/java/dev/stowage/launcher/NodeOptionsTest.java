package dev.stowage.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.stowage.engine.frontend.fuse.FuseFrontendConfig;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The FUSE tuning options of {@code stowage node}: defaults, both spellings, and refusals that name the option. */
class NodeOptionsTest {
    private static final List<String> BASE = List.of("--data-dir", "/var/lib/stowage", "--csi-endpoint", "unix:///run/s.sock");

    private static NodeOptions parse(String... more) {
        List<String> args = new java.util.ArrayList<>(BASE);
        args.addAll(List.of(more));
        return NodeOptions.parse(args);
    }

    @Test
    void fusePollingDefaultsOnAndCanBeTurnedOff() {
        assertEquals(FuseFrontendConfig.DEFAULT_POLL_MICROS, parse().fusePollMicros());
        assertEquals(0, parse("--fuse-poll-us=0").fusePollMicros());
        assertEquals(200, parse("--fuse-poll-us", "200").fusePollMicros());
        assertTrue(parse("--fuse-poll-us=0").describe().contains("fuse-poll-us=0"), parse().describe());
    }

    @Test
    void aBadPollingWindowIsRefusedByName() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> parse("--fuse-poll-us=-1")).getMessage()
                .contains("--fuse-poll-us -1 is outside 0..10000"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> parse("--fuse-poll-us=soon")).getMessage()
                .contains("--fuse-poll-us 'soon'"));
    }
}
