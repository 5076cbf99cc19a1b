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
            case "fuse-keeper" -> System.exit(FuseKeeperCommand.run(rest));
            case "version", "--version" -> System.out.println("stowage " + Version.get());
            default -> {
                System.err.println("stowage: unknown command '" + args[0] + "'; use node, csi-controller, fuse-keeper, demo, csi or version");
                System.exit(2);
            }
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
