package dev.stowage.test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A cgroup (v2) of its own for one test node's process, so that {@link NetworkCut#isolating} can
 * cut everything that process sends: its replication traffic, its management API and its etcd
 * session alike (an iptables rule on the address the node advertises misses the etcd client, which
 * connects from 127.0.0.1). Sockets carry the cgroup of the process that created them, so the node
 * must start inside it: {@link #wrap} runs its command through a shell that first moves itself in.
 *
 * <p>{@link #close()} removes the group; it must be empty by then (the node stopped).
 */
final class NodeCgroup implements AutoCloseable {
    private static final Path MOUNTS = Path.of("/proc/self/mounts");
    private final Path root;
    private final Path dir;

    private NodeCgroup(Path root, Path dir) {
        this.root = root;
        this.dir = dir;
    }

    /** Creates the group {@code stowage-test/<name>} under the host's cgroup v2 mount. */
    static NodeCgroup create(String name) throws IOException {
        Path root = cgroup2Root();
        Path dir = root.resolve("stowage-test").resolve(name);
        Files.createDirectories(dir);
        return new NodeCgroup(root, dir);
    }

    /** The mount point of the cgroup v2 hierarchy (/sys/fs/cgroup, or /sys/fs/cgroup/unified beside v1). */
    static Path cgroup2Root() throws IOException {
        for (String line : Files.readAllLines(MOUNTS)) {
            String[] f = line.split(" ");
            if (f.length > 2 && f[2].equals("cgroup2")) {
                return Path.of(f[1]);
            }
        }
        throw new IOException("no cgroup2 file system in " + MOUNTS + ": a node cannot be partitioned off");
    }

    /** The group's path as iptables' cgroup match names it: relative to the v2 root. */
    String path() {
        return root.relativize(dir).toString();
    }

    /** {@code command}, started so that its process joins this group before it execs. */
    List<String> wrap(List<String> command) {
        List<String> out = new ArrayList<>(List.of("sh", "-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\"",
                dir.toString()));
        out.addAll(command);
        return out;
    }

    @Override
    public void close() throws IOException, InterruptedException {
        for (int attempt = 0; Files.exists(dir); attempt++) {
            try {
                Files.delete(dir); // rmdir: refused while a process is still in it
            } catch (IOException e) {
                if (attempt >= 50) {
                    throw new IOException("cgroup " + dir + " still busy: "
                            + Files.readString(dir.resolve("cgroup.procs")).strip(), e);
                }
                Thread.sleep(100);
            }
        }
        try {
            Files.deleteIfExists(dir.getParent()); // only once no other test's group is left in it
        } catch (IOException stillUsed) {
            // another cluster's node group is in it
        }
    }
}
