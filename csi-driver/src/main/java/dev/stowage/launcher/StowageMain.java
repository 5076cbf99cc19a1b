package dev.stowage.launcher;

import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;

/**
 * Entry point of {@code bin/stowage}: {@code node} runs a node (storage, metadata, frontend, CSI),
 * {@code csi-controller} serves CSI's controller side over any node's management API,
 * {@code fuse-keeper} keeps a node's FUSE connections open across its restarts,
 * {@code demo} shows a volume's life end to end on this host, {@code csi} makes single CSI calls,
 * {@code version} prints the version.
 * Errors in the command line end the process with exit code 2 and one line naming the option.
 */
public final class StowageMain {
    private StowageMain() {}

    public static void main(String[] args) throws Exception {
        if (args.length == 0) {
            System.err.println("usage: stowage node|csi-controller|fuse-keeper|demo|csi|version [options]\n" + NodeOptions.USAGE);
            System.exit(2);
        }
        List<String> rest = Arrays.asList(args).subList(1, args.length);
        switch (args[0]) {
            case "node" -> runNode(rest);
            case "demo" -> {
                // The demo prints its own steps; the node's operator log would drown them.
                System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
                System.exit(Demo.run(rest));
            }
            case "csi" -> System.exit(CsiCommand.run(rest));
            case "csi-controller" -> System.exit(ControllerCommand.run(rest));
            case "fuse-keeper" -> System.exit(runFuseKeeper(rest));
            case "version", "--version" -> System.out.println("stowage " + Version.get());
            default -> {
                System.err.println("stowage: unknown command '" + args[0] + "'; use node, csi-controller, fuse-keeper, demo, csi or version");
                System.exit(2);
            }
        }
    }

    private static final String KEEPER_USAGE =
            "usage: stowage fuse-keeper --socket PATH [--orphan-timeout SECONDS (default 600)]";

    /** {@code stowage fuse-keeper --socket PATH [--orphan-timeout SECONDS]}: serves until killed. */
    static int runFuseKeeper(List<String> args) {
        KeeperOptions options;
        try {
            options = KeeperOptions.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("stowage fuse-keeper: " + e.getMessage() + "\n" + KEEPER_USAGE);
            return 2;
        }
        try {
            dev.stowage.engine.frontend.fuse.FuseFdKeeper.bind(options.socket(), options.orphanTimeout()).serve();
            return 0;
        } catch (java.io.IOException e) {
            System.err.println("stowage fuse-keeper: " + e.getMessage());
            return 1;
        }
    }

    /** The options of {@code stowage fuse-keeper}; each takes {@code --name VALUE} or {@code --name=VALUE}. */
    record KeeperOptions(java.nio.file.Path socket, java.time.Duration orphanTimeout) {
        static KeeperOptions parse(List<String> args) {
            java.nio.file.Path socket = null;
            java.time.Duration orphans = dev.stowage.engine.frontend.fuse.FuseFdKeeper.DEFAULT_ORPHAN_TIMEOUT;
            for (int i = 0; i < args.size(); i++) {
                String a = args.get(i);
                String name = a.contains("=") ? a.substring(0, a.indexOf('=')) : a;
                String value = a.contains("=") ? a.substring(a.indexOf('=') + 1) : i + 1 < args.size() ? args.get(++i) : null;
                if (value == null) {
                    throw new IllegalArgumentException(name + " needs a value");
                }
                switch (name) {
                    case "--socket" -> socket = java.nio.file.Path.of(value).toAbsolutePath().normalize();
                    case "--orphan-timeout" -> {
                        long seconds;
                        try {
                            seconds = Long.parseLong(value);
                        } catch (NumberFormatException e) {
                            seconds = -1;
                        }
                        if (seconds < 1) {
                            throw new IllegalArgumentException("--orphan-timeout '" + value + "' must be a positive number of seconds");
                        }
                        orphans = java.time.Duration.ofSeconds(seconds);
                    }
                    default -> throw new IllegalArgumentException("unknown option '" + a + "'");
                }
            }
            if (socket == null) {
                throw new IllegalArgumentException("--socket PATH is required");
            }
            return new KeeperOptions(socket, orphans);
        }
    }

    private static void runNode(List<String> args) throws Exception {
        NodeOptions options;
        try {
            options = NodeOptions.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("stowage node: " + e.getMessage() + "\n" + NodeOptions.USAGE);
            System.exit(2);
            return;
        }
        NodeRuntime runtime;
        try {
            runtime = NodeRuntime.start(options);
        } catch (Exception e) {
            System.err.println("stowage node: cannot start: " + e.getMessage());
            e.printStackTrace();
            System.exit(1);
            return;
        }
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            runtime.close();
            stopped.countDown();
        }, "stowage-shutdown"));
        stopped.await();
    }
}
