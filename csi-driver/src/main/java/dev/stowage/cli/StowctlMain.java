package dev.stowage.cli;

import dev.stowage.engine.api.StowageException;
import dev.stowage.engine.api.grpc.ApiToken;
import dev.stowage.engine.api.grpc.RemoteVolumeService;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * {@code stowctl}: the command line over a node's management API. {@link #run} does the work and returns
 * the exit code (0 success, 1 the API refused or failed, 2 the command line is wrong), so tests call it
 * with their own streams; {@link #main} exits with it. An error is one line on stderr:
 * {@code stowctl: <CODE>: <message>}, CODE being the API's error code or USAGE.
 */
public final class StowctlMain {
    public static final String DEFAULT_ENDPOINT = "127.0.0.1:7420";
    static final Set<String> GLOBAL_FLAGS = Set.of("endpoint", "output", "help", "token-file");
    /** Where the cluster token is read from when --token-file is not given. */
    static final String TOKEN_FILE_ENV = "STOWAGE_CLUSTER_TOKEN_FILE";

    static final String USAGE = """
            usage: stowctl [--endpoint HOST:PORT] [--token-file PATH] [-o table|json] COMMAND
              cluster status                                  readiness, members, volume count, capacity
              node list                                       members: address, role, alive/away, capacity,
                                                              labels
              volume create NAME --size SIZE --repl N [--fs ext4|xfs]
              volume list
              volume inspect NAME|ID
              volume attach NAME|ID --node ID [--read-only] [--force]
                                                              publish; on the endpoint's node also attach
                                                              and print the device path; --force takes the
                                                              volume over from a live node (fencing it)
              volume detach NAME|ID
              volume resize NAME|ID --size SIZE
              volume delete NAME|ID
              snapshot create NAME --volume NAME|ID
              snapshot list [--volume NAME|ID]
              snapshot delete NAME|ID
            --endpoint defaults to 127.0.0.1:7420. --token-file (default: $STOWAGE_CLUSTER_TOKEN_FILE) holds the
            token of nodes started with --cluster-token-file. SIZE: bytes or e.g. 512MiB, 10GiB, 1TiB, 1G (=10^9).
            """;

    private StowctlMain() {}

    public static void main(String[] args) {
        System.exit(run(Arrays.asList(args), System.out, System.err));
    }

    /** Runs one command; never calls {@code System.exit}. */
    public static int run(List<String> argv, PrintStream out, PrintStream err) {
        Args args;
        boolean json;
        try {
            args = Args.parse(argv);
            if (args.has("help") || args.words().isEmpty() || args.words().get(0).equals("help")) {
                (args.words().isEmpty() && !args.has("help") ? err : out).print(USAGE);
                return args.words().isEmpty() && !args.has("help") ? 2 : 0;
            }
            String output = args.flag("output", "table");
            if (!output.equals("table") && !output.equals("json")) {
                throw new UsageException("-o '" + output + "' must be table or json");
            }
            json = output.equals("json");
        } catch (UsageException e) {
            return usageError(err, e);
        }
        RemoteVolumeService api;
        try {
            String tokenFile = args.flag("token-file", System.getenv(TOKEN_FILE_ENV));
            Optional<ApiToken> token = tokenFile == null || tokenFile.isEmpty() ? Optional.empty()
                    : Optional.of(ApiToken.read("--token-file", Path.of(tokenFile)));
            api = RemoteVolumeService.connect(args.flag("endpoint", DEFAULT_ENDPOINT),
                    RemoteVolumeService.DEFAULT_DEADLINE, token);
        } catch (StowageException e) {
            if ("--token-file".equals(e.field())) {
                return usageError(err, new UsageException(e.getMessage()));
            }
            return usageError(err, new UsageException("--endpoint " + e.getMessage().replaceFirst("^endpoint: ", "")));
        }
        try (api) {
            new Commands(api, json, out).run(args);
            out.flush();
            return 0;
        } catch (UsageException e) {
            return usageError(err, e);
        } catch (StowageException e) {
            err.println("stowctl: " + e.code() + ": " + oneLine(e.getMessage()));
            return 1;
        }
    }

    private static int usageError(PrintStream err, UsageException e) {
        err.println("stowctl: USAGE: " + oneLine(e.getMessage()));
        return 2;
    }

    private static String oneLine(String s) {
        return s == null ? "" : s.replaceAll("\\s*[\\r\\n]+\\s*", " ").strip();
    }
}
