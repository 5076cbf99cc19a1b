package dev.stowage.engine.frontend.fuse;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.stowage.engine.frontend.Frontend.Export;
import dev.stowage.engine.frontend.Frontend.ExportOptions;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Every FUSE frontend test again with requests served over io_uring, which this machine's kernel
 * (6.18, CONFIG_FUSE_IO_URING) offers once the fuse module's switch is on; and the fallback to
 * /dev/fuse where processes may not use io_uring. Needs root.
 */
@Tag("root")
class FuseFrontendOverIoUringTest extends FuseFrontendTest {
    private static final Path IO_URING_DISABLED = Path.of("/proc/sys/kernel/io_uring_disabled");

    @BeforeAll
    static void switchOn() {
        assertTrue(FuseRings.enable(), "the fuse module's enable_uring must be settable here");
    }

    @Override
    FuseFrontendConfig config(Path runDirectory) {
        return FuseFrontendConfig.defaults(runDirectory).withIoUring(true);
    }

    @Override
    void assertChannel(FuseExport export) {
        assertEquals("io_uring", export.channel());
        int queues = FuseRings.queueCount();
        int expected = (FuseFrontendConfig.DEFAULT_THREADS + queues - 1) / queues * queues;
        assertEquals(expected, serverThreads(export.volumeId()).stream().filter(n -> n.contains("-q")).count(),
                "the configured threads, spread evenly over the queues: " + serverThreads(export.volumeId()));
    }

    /**
     * The kernel agrees to io_uring in INIT, but this process may not create a ring (as under a
     * container runtime's seccomp profile; here the kernel's own switch): the connection, which
     * would hold every request until its queues have entries, is dropped and the volume is served
     * over /dev/fuse, with nothing of the first attempt left.
     */
    @Test
    void aProcessThatMayNotUseIoUringIsServedOverDevFuse() throws Exception {
        String before = Files.readString(IO_URING_DISABLED).strip();
        MemoryBlockTarget target = new MemoryBlockTarget(16 << 20);
        Files.writeString(IO_URING_DISABLED, "2");
        Export export;
        try {
            volumes.add("vol-norings");
            export = frontend.export("vol-norings", target, ExportOptions.defaults());
        } finally {
            Files.writeString(IO_URING_DISABLED, before);
        }
        assertEquals("/dev/fuse", ((FuseExport) export).channel());
        assertEquals(List.of(), serverThreads("vol-norings").stream().filter(n -> n.contains("-q")).toList(),
                "ring workers of the refused session are left");
        byte[] data = new byte[1 << 20];
        new Random(7).nextBytes(data);
        Path in = Files.write(tmp.resolve("data"), data);
        Sh.run("dd", "if=" + in, "of=" + export.devicePath(), "bs=1M", "oflag=direct", "conv=fsync").ok();
        assertArrayEquals(data, target.snapshot(0, data.length));
        export.close();
    }
}
