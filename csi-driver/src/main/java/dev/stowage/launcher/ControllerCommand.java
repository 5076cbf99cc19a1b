package dev.stowage.launcher;

import dev.stowage.csi.mount.LinuxMounter;
import dev.stowage.csi.server.CsiServer;
import dev.stowage.csi.server.CsiServerConfig;
import dev.stowage.engine.api.ErrorCode;
import dev.stowage.engine.api.StowageException;
import dev.stowage.engine.api.grpc.ApiToken;
import dev.stowage.engine.api.grpc.RemoteVolumeService;
import java.nio.file.Path;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code stowage csi-controller --csi-endpoint unix:///PATH --api HOST:PORT}: the CSI Identity and
 * Controller services on a Unix socket, as a thin adapter over any node's management API — what the
 * Kubernetes controller Deployment runs next to the provisioner, attacher, resizer and snapshotter
 * sidecars. It holds no storage and no metadata of its own.
 */
final class ControllerCommand {
    private static final Logger LOG = LoggerFactory.getLogger(ControllerCommand.class);
    static final String USAGE = """
            usage: stowage csi-controller --csi-endpoint unix:///PATH --api HOST:PORT [--cluster-token-file PATH]
              --csi-endpoint URI           CSI socket the sidecars connect to
              --api HOST:PORT              management API of any node of the cluster
              --cluster-token-file PATH    the token the nodes were started with (their --cluster-token-file)
            """;

    private ControllerCommand() {}

    /** The options of {@code stowage csi-controller}; {@code --key value} and {@code --key=value} alike. */
    record Options(String endpoint, String api, String tokenFile) {
        /** Parses {@code args} (after the word "csi-controller"); an IllegalArgumentException names what is wrong. */
        static Options parse(List<String> args) {
            Map<String, String> values = CommandLine.options(args, Set.of("--csi-endpoint", "--api", "--cluster-token-file"));
            if (!values.containsKey("--csi-endpoint") || !values.containsKey("--api")) {
                throw new IllegalArgumentException("--csi-endpoint and --api are required");
            }
            NodeOptions.parseEndpoint(values.get("--csi-endpoint"));
            return new Options(values.get("--csi-endpoint"), values.get("--api"), values.get("--cluster-token-file"));
        }
    }

    static int run(List<String> args) throws Exception {
        Options options;
        try {
            options = Options.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.print("stowage csi-controller: " + e.getMessage() + "\n" + USAGE);
            return 2;
        }
        String api = options.api();
        String socket = "unix://" + NodeOptions.parseEndpoint(options.endpoint());
        Optional<ApiToken> token;
        try {
            token = options.tokenFile() == null ? Optional.empty()
                    : Optional.of(ApiToken.read("--cluster-token-file", Path.of(options.tokenFile())));
        } catch (StowageException e) {
            System.err.print("stowage csi-controller: " + e.getMessage() + "\n" + USAGE);
            return 2;
        }
        RemoteVolumeService volumes = RemoteVolumeService.connect(api, RemoteVolumeService.DEFAULT_DEADLINE, token);
        try {
            volumes.clusterStatus();
        } catch (StowageException e) {
            if (e.code() == ErrorCode.UNAUTHENTICATED) {
                // A configuration error that waiting will not mend: say so and stop, rather than
                // serve a Probe that reports "not ready" without saying why.
                System.err.println("stowage csi-controller: " + e.getMessage());
                volumes.close();
                return 1;
            }
            LOG.warn("the management API at {} does not answer yet ({}); serving anyway, Probe says not ready until it"
                    + " does", api, e.getMessage());
        }
        CsiServer server = new CsiServer(new CsiServerConfig(socket, CsiServerConfig.DEFAULT_DRIVER_NAME,
                Version.get(), null, EnumSet.of(CsiServerConfig.Service.CONTROLLER)), volumes, new LinuxMounter());
        server.start();
        LOG.info("CSI controller on {} over the management API of {}", socket, api);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.close();
            volumes.close();
            stopped.countDown();
        }, "stowage-shutdown"));
        stopped.await();
        return 0;
    }
}
