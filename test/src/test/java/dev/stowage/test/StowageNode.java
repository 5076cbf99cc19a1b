package dev.stowage.test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A real {@code bin/stowage node} process started by a test, with its CSI socket and log in the
 * test's directory. {@link #close()} stops it (SIGTERM, then SIGKILL) by pid; {@link #kill9()}
 * simulates a crash. The caller cleans up mounts with {@link HostCleanup}.
 */
public final class StowageNode implements AutoCloseable {
    private final Path dataDir;
    private final Path socket;
    private final Path log;
    private final List<String> extraArgs;
    /** The cgroup the process starts in (null: the test's own). */
    private final NodeCgroup cgroup;
    private Process process;

    public StowageNode(Path dataDir, Path socket, Path log, List<String> extraArgs) {
        this(dataDir, socket, log, extraArgs, null);
    }

    StowageNode(Path dataDir, Path socket, Path log, List<String> extraArgs, NodeCgroup cgroup) {
        this.dataDir = dataDir;
        this.socket = socket;
        this.log = log;
        this.extraArgs = List.copyOf(extraArgs);
        this.cgroup = cgroup;
    }

    /** The checkout's root, passed by the build as the system property stowage.home. */
    public static Path home() {
        return Path.of(System.getProperty("stowage.home", "..")).toAbsolutePath().normalize();
    }

    public Path socket() { return socket; }

    public String endpoint() { return "unix://" + socket; }

    public Path log() { return log; }

    /** Starts the node and waits until its CSI socket accepts connections and Probe says ready. */
    public StowageNode start(Duration timeout) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(home().resolve("bin/stowage").toString(), "node",
                "--data-dir", dataDir.toString(), "--csi-endpoint", endpoint(), "--api-listen", "127.0.0.1:0"));
        cmd.addAll(extraArgs);
        Files.createDirectories(log.getParent());
        process = new ProcessBuilder(cgroup == null ? cmd : cgroup.wrap(cmd))
                .redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()))
                .start();
        Instant deadline = Instant.now().plus(timeout);
        while (Instant.now().isBefore(deadline)) {
            if (!process.isAlive()) {
                throw new IOException("stowage node exited with " + process.exitValue() + "; log " + log + ":\n"
                        + tail());
            }
            if (Files.exists(socket)) {
                try (CsiClient client = new CsiClient(socket)) {
                    if (client.probeReady()) {
                        return this;
                    }
                } catch (RuntimeException notYet) {
                    // the server is still starting
                }
            }
            Thread.sleep(100);
        }
        close();
        throw new IOException("stowage node did not become ready within " + timeout + "; log:\n" + tail());
    }

    public long pid() { return process.pid(); }

    public boolean isAlive() { return process != null && process.isAlive(); }

    /** SIGKILL, as a crash: nothing is flushed or unmounted by the node. */
    public void kill9() throws InterruptedException {
        process.destroyForcibly();
        process.waitFor(30, TimeUnit.SECONDS);
    }

    /** The last lines of the node's log, for failure messages. */
    public String tail() {
        try {
            List<String> lines = Files.readAllLines(log);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 40), lines.size()));
        } catch (IOException e) {
            return "(no log: " + e.getMessage() + ")";
        }
    }

    @Override
    public void close() throws InterruptedException {
        if (process == null || !process.isAlive()) {
            return;
        }
        process.destroy();
        if (!process.waitFor(30, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            process.waitFor(30, TimeUnit.SECONDS);
        }
    }
}
