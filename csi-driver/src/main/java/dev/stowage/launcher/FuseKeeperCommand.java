package dev.stowage.launcher;

import dev.stowage.engine.frontend.fuse.FuseFdKeeper;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * {@code stowage fuse-keeper --socket PATH [--orphan-timeout SECONDS]}: the {@link FuseFdKeeper},
 * which holds the FUSE connections of the node pointed at it ({@code stowage node --fuse-keeper
 * PATH}) while that node restarts. Serves until killed.
 */
final class FuseKeeperCommand {
    static final String USAGE = "usage: stowage fuse-keeper --socket PATH [--orphan-timeout SECONDS (default 600)]";

    private FuseKeeperCommand() {}

    /** The options of {@code stowage fuse-keeper}; {@code --name value} and {@code --name=value} alike. */
    record Options(Path socket, Duration orphanTimeout) {
        /** Parses {@code args} (after the word "fuse-keeper"); an IllegalArgumentException names what is wrong. */
        static Options parse(List<String> args) {
            Map<String, String> values = CommandLine.options(args, Set.of("--socket", "--orphan-timeout"));
            if (!values.containsKey("--socket")) {
                throw new IllegalArgumentException("--socket PATH is required");
            }
            Duration orphans = FuseFdKeeper.DEFAULT_ORPHAN_TIMEOUT;
            String timeout = values.get("--orphan-timeout");
            if (timeout != null) {
                long seconds;
                try {
                    seconds = Long.parseLong(timeout);
                } catch (NumberFormatException e) {
                    seconds = -1;
                }
                if (seconds < 1) {
                    throw new IllegalArgumentException("--orphan-timeout '" + timeout + "' must be a positive number of seconds");
                }
                orphans = Duration.ofSeconds(seconds);
            }
            return new Options(Path.of(values.get("--socket")).toAbsolutePath().normalize(), orphans);
        }
    }

    static int run(List<String> args) {
        Options options;
        try {
            options = Options.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("stowage fuse-keeper: " + e.getMessage() + "\n" + USAGE);
            return 2;
        }
        try {
            FuseFdKeeper.bind(options.socket(), options.orphanTimeout()).serve();
            return 0;
        } catch (IOException e) {
            System.err.println("stowage fuse-keeper: " + e.getMessage());
            return 1;
        }
    }
}
