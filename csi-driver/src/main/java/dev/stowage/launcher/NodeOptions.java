package dev.stowage.launcher;

import dev.stowage.engine.frontend.fuse.FuseFrontendConfig;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.UnknownHostException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The options of {@code stowage node}, parsed and validated before anything starts: a bad value
 * stops the node with one line naming the option. {@link #describe()} is logged at start-up so the
 * effective configuration is on record.
 */
public record NodeOptions(Path dataDir, Path csiSocket, String nodeId, Map<String, String> labels,
                          List<URI> etcdEndpoints, int maxVolumes, int fuseThreads, boolean csiController,
                          boolean csiNode, boolean loopDirectIo, Optional<InetSocketAddress> apiListen,
                          Optional<InetSocketAddress> listen, boolean storageless,
                          java.time.Duration replicaReplaceTimeout, long rebuildBytesPerSecond,
                          Optional<Path> clusterTokenFile, Optional<Path> fuseKeeper, int fusePollMicros) {
    /**
     * FUSE server threads per attached volume. Each blocks on one request, so they bound the requests in
     * flight: measured on 2 cores (docs/benchmarks.md), 16 beat 4 by a third on 4 KiB random writes and
     * 32 fell back again.
     */
    static final int DEFAULT_FUSE_THREADS = 16;

    /** Where the management API listens unless --api-listen says otherwise. */
    public static final String DEFAULT_API_LISTEN = "127.0.0.1:7420";

    static final String USAGE = """
            usage: stowage node --data-dir DIR [options]
              --data-dir DIR            where the storage pool and (without etcd) the metadata live (required)
              --csi-endpoint URI        CSI socket, unix:///ABS/PATH (default unix://DIR/csi.sock)
              --node-id ID              this node's id (default: the host name)
              --zone Z, --rack R        topology labels of this node
              --etcd URL[,URL...]       join the cluster whose metadata is in etcd (else: one host, embedded store)
              --listen HOST:PORT        replication address other nodes reach this one on (required with --etcd)
              --storageless             hold no replicas; attach volumes whose replicas live elsewhere
              --replica-replace-timeout SECONDS
                                        replace a replica whose node stays away this long (default 600)
              --rebuild-bandwidth BYTES_PER_SECOND
                                        cap on resync and rebuild copying, 0 for none (default 0)
              --max-volumes N           volumes this node attaches at most (default 64)
              --fuse-threads N          FUSE server threads per attached volume (default 16)
              --fuse-poll-us N          a volume's FUSE thread polls this long for the next request after
                                        answering one at low load, 0 never (default 50; costs CPU, saves a wake-up)
              --csi-services LIST       controller,node (default both)
              --loop-direct-io on|off   loop devices use direct I/O on the FUSE file (default on)
              --fuse-keeper PATH        socket of a `stowage fuse-keeper`, which keeps attached volumes'
                                        FUSE connections open while this node restarts (default none)
              --api-listen HOST:PORT    management API (stowctl) address, or "off" (default 127.0.0.1:7420); plaintext
              --cluster-token-file PATH a file holding the cluster's shared token (at least 32 characters): every
                                        management API call and every replication connection must carry it;
                                        give all nodes, the controller and stowctl the same. Without it both
                                        serve anyone who reaches them: keep them on trusted addresses then
            """;

    /** Parses {@code args} (after the word "node"). */
    public static NodeOptions parse(List<String> args) {
        Map<String, String> values = new LinkedHashMap<>();
        for (int i = 0; i < args.size(); i++) {
            String arg = args.get(i);
            if (!arg.startsWith("--")) {
                throw new IllegalArgumentException("unexpected argument '" + arg + "'");
            }
            String key;
            String value;
            if (arg.equals("--storageless")) {
                values.put("storageless", "true");
                continue;
            }
            int eq = arg.indexOf('=');
            if (eq > 0) {
                key = arg.substring(2, eq);
                value = arg.substring(eq + 1);
            } else {
                key = arg.substring(2);
                if (i + 1 >= args.size()) {
                    throw new IllegalArgumentException("--" + key + " needs a value");
                }
                value = args.get(++i);
            }
            if (!List.of("data-dir", "csi-endpoint", "node-id", "zone", "rack", "etcd", "max-volumes",
                    "fuse-threads", "fuse-poll-us", "csi-services", "loop-direct-io", "fuse-keeper", "api-listen", "listen", "storageless", "replica-replace-timeout",
                    "rebuild-bandwidth", "cluster-token-file").contains(key)) {
                throw new IllegalArgumentException("unknown option --" + key);
            }
            if (values.put(key, value) != null) {
                throw new IllegalArgumentException("--" + key + " given twice");
            }
        }
        String dataDirText = values.get("data-dir");
        if (dataDirText == null || dataDirText.isBlank()) {
            throw new IllegalArgumentException("--data-dir is required");
        }
        Path dataDir = Path.of(dataDirText).toAbsolutePath().normalize();
        Path socket = values.containsKey("csi-endpoint") ? parseEndpoint(values.get("csi-endpoint"))
                : dataDir.resolve("csi.sock");
        String nodeId = values.getOrDefault("node-id", hostName());
        if (!nodeId.matches("[A-Za-z0-9][A-Za-z0-9._-]{0,252}")) {
            throw new IllegalArgumentException("--node-id '" + nodeId + "' must be 1-253 letters, digits, '.', '_' or '-'");
        }
        Map<String, String> labels = new LinkedHashMap<>();
        for (String label : List.of("zone", "rack")) {
            String v = values.get(label);
            if (v != null) {
                if (!v.matches("[A-Za-z0-9][A-Za-z0-9._-]{0,62}")) {
                    throw new IllegalArgumentException("--" + label + " '" + v + "' must be 1-63 letters, digits, '.', '_' or '-'");
                }
                labels.put(label, v);
            }
        }
        List<URI> etcd = new ArrayList<>();
        if (values.containsKey("etcd")) {
            for (String u : values.get("etcd").split(",")) {
                URI uri = URI.create(u.trim());
                if (!"http".equals(uri.getScheme()) && !"https".equals(uri.getScheme()) || uri.getHost() == null) {
                    throw new IllegalArgumentException("--etcd '" + u + "' is not an http(s)://HOST:PORT URL");
                }
                etcd.add(uri);
            }
        }
        int maxVolumes = parseInt(values, "max-volumes", 64, 1, 4096);
        int fuseThreads = parseInt(values, "fuse-threads", DEFAULT_FUSE_THREADS, 1, 64);
        String services = values.getOrDefault("csi-services", "controller,node");
        boolean controller = false;
        boolean node = false;
        for (String s : services.split(",")) {
            switch (s.trim()) {
                case "controller" -> controller = true;
                case "node" -> node = true;
                default -> throw new IllegalArgumentException("--csi-services: unknown service '" + s + "'");
            }
        }
        String dio = values.getOrDefault("loop-direct-io", "on");
        if (!dio.equals("on") && !dio.equals("off")) {
            throw new IllegalArgumentException("--loop-direct-io '" + dio + "' must be on or off");
        }
        Optional<InetSocketAddress> api = parseApiListen(values.getOrDefault("api-listen", DEFAULT_API_LISTEN));
        Optional<InetSocketAddress> listen = values.containsKey("listen")
                ? parseAddress("--listen", values.get("listen")) : Optional.empty();
        boolean storageless = values.containsKey("storageless");
        if (!etcd.isEmpty() && listen.isEmpty()) {
            throw new IllegalArgumentException("--listen HOST:PORT is required with --etcd: other nodes reach this one there");
        }
        if (storageless && listen.isPresent() && listen.get().getPort() == 0) {
            throw new IllegalArgumentException("--listen of a storage-less node needs a fixed port: it is the address"
                    + " the node is known by, and it serves no replicas to bind one for it");
        }
        if (etcd.isEmpty() && (listen.isPresent() || storageless)) {
            throw new IllegalArgumentException((storageless ? "--storageless" : "--listen") + " needs --etcd: without a"
                    + " cluster there is no other node to hold replicas or reach this one");
        }
        return new NodeOptions(dataDir, socket, nodeId, Map.copyOf(labels), List.copyOf(etcd), maxVolumes,
                fuseThreads, controller, node, dio.equals("on"), api, listen, storageless,
                java.time.Duration.ofSeconds(parseInt(values, "replica-replace-timeout", 600, 1, 7 * 24 * 3600)),
                parseLong(values, "rebuild-bandwidth", 0),
                Optional.ofNullable(values.get("cluster-token-file")).map(f -> Path.of(f).toAbsolutePath().normalize()),
                Optional.ofNullable(values.get("fuse-keeper")).map(f -> Path.of(f).toAbsolutePath().normalize()),
                parseInt(values, "fuse-poll-us", FuseFrontendConfig.DEFAULT_POLL_MICROS, 0, 10_000));
    }

    /** HOST:PORT or [IPv6]:PORT (port 0: any free port), or "off". */
    static Optional<InetSocketAddress> parseApiListen(String text) {
        return parseAddress("--api-listen", text);
    }

    /** HOST:PORT or [IPv6]:PORT for option {@code flag}, or "off". */
    static Optional<InetSocketAddress> parseAddress(String flag, String text) {
        String value = text.trim();
        if (value.equals("off")) {
            return Optional.empty();
        }
        int colon = value.lastIndexOf(':');
        String host = colon > 0 ? value.substring(0, colon) : "";
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        }
        int port = -1;
        if (colon > 0) {
            try {
                port = Integer.parseInt(value.substring(colon + 1));
            } catch (NumberFormatException e) {
                port = -1;
            }
        }
        if (host.isEmpty() || port < 0 || port > 65535) {
            throw new IllegalArgumentException(flag + " '" + text + "' must be HOST:PORT (port 0-65535) or off");
        }
        InetSocketAddress address = new InetSocketAddress(host, port);
        if (address.isUnresolved()) {
            throw new IllegalArgumentException(flag + " '" + text + "': cannot resolve host " + host);
        }
        return Optional.of(address);
    }

    /** Accepts unix:///abs/path, unix:/abs/path and /abs/path. */
    static Path parseEndpoint(String endpoint) {
        String path;
        if (endpoint.startsWith("unix://")) {
            path = endpoint.substring("unix://".length());
        } else if (endpoint.startsWith("unix:")) {
            path = endpoint.substring("unix:".length());
        } else {
            path = endpoint;
        }
        if (!path.startsWith("/")) {
            throw new IllegalArgumentException("--csi-endpoint '" + endpoint + "' must be unix:///ABSOLUTE/PATH");
        }
        return Path.of(path).normalize();
    }

    private static long parseLong(Map<String, String> values, String key, long dflt) {
        String v = values.get(key);
        if (v == null) {
            return dflt;
        }
        try {
            long n = Long.parseLong(v.trim());
            if (n < 0) {
                throw new IllegalArgumentException("--" + key + " " + n + " must not be negative");
            }
            return n;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--" + key + " '" + v + "' is not a whole number");
        }
    }

    private static int parseInt(Map<String, String> values, String key, int dflt, int min, int max) {
        String v = values.get(key);
        if (v == null) {
            return dflt;
        }
        try {
            int n = Integer.parseInt(v.trim());
            if (n < min || n > max) {
                throw new IllegalArgumentException("--" + key + " " + n + " is outside " + min + ".." + max);
            }
            return n;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--" + key + " '" + v + "' is not a whole number");
        }
    }

    private static String hostName() {
        try {
            return InetAddress.getLocalHost().getHostName().split("\\.")[0];
        } catch (UnknownHostException e) {
            return "localhost";
        }
    }

    /** One line with every effective value, for the start-up log. */
    public String describe() {
        return "data-dir=" + dataDir + " csi-endpoint=unix://" + csiSocket + " node-id=" + nodeId + " labels=" + labels
                + " metadata=" + (etcdEndpoints.isEmpty() ? "embedded" : "etcd " + etcdEndpoints)
                + " max-volumes=" + maxVolumes + " fuse-threads=" + fuseThreads + " fuse-poll-us=" + fusePollMicros + " loop-direct-io=" + (loopDirectIo ? "on" : "off")
                + " csi-services=" + (csiController ? "controller" : "") + (csiController && csiNode ? "," : "")
                + (csiNode ? "node" : "")
                + " api-listen=" + apiListen.map(a -> a.getAddress().getHostAddress() + ":" + a.getPort()).orElse("off")
                + clusterTokenFile.map(f -> " cluster-token-file=" + f).orElse("")
                + fuseKeeper.map(f -> " fuse-keeper=" + f).orElse("")
                + listen.map(a -> " listen=" + a.getAddress().getHostAddress() + ":" + a.getPort()).orElse("")
                + (storageless ? " storageless" : "")
                + (etcdEndpoints.isEmpty() ? "" : " replica-replace-timeout=" + replicaReplaceTimeout.toSeconds() + "s"
                        + " rebuild-bandwidth=" + (rebuildBytesPerSecond == 0 ? "unlimited" : rebuildBytesPerSecond + "B/s"));
    }
}
