package dev.stowage.engine.frontend.fuse;

import dev.stowage.engine.frontend.Frontend.Export;
import dev.stowage.engine.frontend.Frontend.ExportOptions;
import java.nio.file.Path;

/**
 * Child process of the crash test: exports a 16 MiB in-memory volume, prints "READY <device>"
 * and waits on stdin until it is killed, leaving its mount and loop device behind.
 */
public final class StaleExportMain {
    private StaleExportMain() {
    }

    public static void main(String[] args) throws Exception {
        FuseFrontend frontend = new FuseFrontend(FuseFrontendConfig.defaults(Path.of(args[0])));
        Export export = frontend.export(args[1], new MemoryBlockTarget(16L << 20), ExportOptions.defaults());
        System.out.println("READY " + export.devicePath());
        System.out.flush();
        while (System.in.read() >= 0) {
            // wait for SIGKILL
        }
    }
}
