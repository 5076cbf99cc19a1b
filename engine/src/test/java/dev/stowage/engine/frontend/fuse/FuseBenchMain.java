package dev.stowage.engine.frontend.fuse;

import dev.stowage.engine.frontend.Frontend.Export;
import dev.stowage.engine.frontend.Frontend.ExportOptions;
import java.nio.file.Path;

/**
 * Not a test: exports an in-memory volume for measuring with fio from outside. Arguments: run
 * directory, size in MiB, FUSE threads, direct I/O (true/false),
 * optionally max background requests. Prints "READY <device>", serves
 * until stdin reaches EOF, then unexports.
 */
public final class FuseBenchMain {
    private FuseBenchMain() {
    }

    public static void main(String[] args) throws Exception {
        long size = Long.parseLong(args[1]) << 20;
        int maxBackground = args.length > 4 ? Integer.parseInt(args[4]) : FuseFrontendConfig.DEFAULT_MAX_BACKGROUND;
        FuseFrontendConfig config = new FuseFrontendConfig(Path.of(args[0]), Integer.parseInt(args[2]),
                FuseFrontendConfig.DEFAULT_MAX_WRITE, maxBackground);
        try (FuseFrontend frontend = new FuseFrontend(config)) {
            Export export = frontend.export("bench", new MemoryBlockTarget(size),
                    new ExportOptions(false, Boolean.parseBoolean(args[3])));
            System.out.println("READY " + export.devicePath());
            System.out.flush();
            while (System.in.read() >= 0) {
                // serve until the driver closes stdin
            }
            export.close();
        }
    }
}
