package dev.stowage.engine.cluster.etcd;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.stream.Stream;

/**
 * A real single-member etcd server for tests: {@code /usr/bin/etcd} (override with the system
 * property {@code stowage.etcd.binary}) on 127.0.0.1 with free client and peer ports and a
 * temporary data directory. {@link #start()} returns once {@code /health} reports healthy;
 * {@link #close()} stops the process by its pid (destroy, then destroyForcibly) and deletes the
 * data directory. Use from {@code @BeforeAll}/{@code @AfterAll}; tests that need it are tagged
 * {@code etcd}.
 *
 * <p>Threading: not thread-safe; one owner starts and closes it.
 */
public final class EtcdProcess implements AutoCloseable {
    private static final Duration START_DEADLINE = Duration.ofSeconds(60);
    private static final Duration STOP_DEADLINE = Duration.ofSeconds(10);

    private final Path workDir;
    private final Path logFile;
    private final String peerUri;
    private Process process;
    private URI clientUri;

    private EtcdProcess(Path workDir, Path logFile, String peerUri) {
        this.workDir = workDir;
        this.logFile = logFile;
        this.peerUri = peerUri;
    }

    /** Starts etcd and waits until it is healthy; stops it again if it does not become healthy. */
    public static EtcdProcess start() throws IOException {
        Path work = Files.createTempDirectory("stowage-etcd-");
        EtcdProcess etcd = new EtcdProcess(work, work.resolve("etcd.log"), "http://127.0.0.1:" + freePort());
        try {
            etcd.launch(List.of(URI.create("http://127.0.0.1:" + freePort())));
            return etcd;
        } catch (IOException | RuntimeException e) {
            etcd.close();
            throw e;
        }
    }

    /**
     * Stops etcd and starts it again on the same data (and peer address) but serving clients on
     * {@code clientUris} only, so that clients of the old address lose it while others go on. The
     * first URI becomes {@link #endpoint()}.
     */
    public void restartOn(List<URI> clientUris) throws IOException {
        stopProcess();
        launch(clientUris);
    }

    private void launch(List<URI> clientUris) throws IOException {
        String binary = System.getProperty("stowage.etcd.binary", "/usr/bin/etcd");
        String listen = String.join(",", clientUris.stream().map(URI::toString).toList());
        List<String> command = new ArrayList<>(List.of(binary,
                "--name", "stowage-test",
                "--data-dir", workDir.resolve("data").toString(),
                "--listen-client-urls", listen,
                "--advertise-client-urls", listen,
                "--listen-peer-urls", peerUri,
                "--initial-advertise-peer-urls", peerUri,
                "--initial-cluster", "stowage-test=" + peerUri,
                "--initial-cluster-state", "new"));
        clientUri = clientUris.get(0);
        process = new ProcessBuilder(command)
                .redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(logFile.toFile()))
                .start();
        awaitHealthy();
    }

    /** A free port on the loopback address, for {@link #restartOn}. */
    public static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return socket.getLocalPort();
        }
    }

    /** The client URL, e.g. {@code http://127.0.0.1:41234}. */
    public URI endpoint() { return clientUri; }

    public long pid() { return process.pid(); }

    private void awaitHealthy() {
        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
        HttpRequest request = HttpRequest.newBuilder(clientUri.resolve("/health")).timeout(Duration.ofSeconds(2)).build();
        long deadline = System.nanoTime() + START_DEADLINE.toNanos();
        String last = "no answer";
        while (System.nanoTime() - deadline < 0) {
            if (!process.isAlive()) {
                throw new IllegalStateException("etcd exited with " + process.exitValue() + " before becoming healthy: "
                        + logTail());
            }
            try {
                HttpResponse<String> response = http.send(request, HttpResponse.BodyHandlers.ofString());
                last = response.statusCode() + " " + response.body();
                if (response.statusCode() == 200 && response.body().contains("\"health\":\"true\"")) {
                    return;
                }
            } catch (IOException e) {
                last = e.toString();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted waiting for etcd", e);
            }
            LockSupport.parkNanos(Duration.ofMillis(50).toNanos());
        }
        throw new IllegalStateException("etcd at " + clientUri + " not healthy within " + START_DEADLINE + " (" + last
                + "): " + logTail());
    }

    private String logTail() {
        try {
            List<String> lines = Files.readAllLines(logFile, StandardCharsets.UTF_8);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 20), lines.size()));
        } catch (IOException e) {
            return "(no log: " + e + ")";
        }
    }

    /** Stops etcd (SIGTERM, then SIGKILL after a deadline) and deletes its directory. */
    @Override
    public void close() {
        try {
            stopProcess();
        } finally {
            deleteRecursively(workDir);
        }
    }

    private void stopProcess() {
        if (process == null) {
            return;
        }
        try {
            process.destroy();
            if (!process.waitFor(STOP_DEADLINE.toSeconds(), TimeUnit.SECONDS)) {
                process.destroyForcibly();
                process.waitFor(STOP_DEADLINE.toSeconds(), TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }

    private static void deleteRecursively(Path root) {
        if (!Files.exists(root)) {
            return;
        }
        try (Stream<Path> paths = Files.walk(root)) {
            for (Path path : paths.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(path);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("could not delete " + root, e);
        }
    }
}
