package dev.stowage.test;

import java.io.IOException;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A network cut of one node on loopback. {@link #from} and {@link #between} drop what the node sends
 * from its address (its replication traffic leaves from the address it advertises), so it reaches
 * no replica while the rest of the cluster talks on; its etcd session is not cut (that client does
 * not bind the node's address), which is the partition a forced take-over is for. {@link #isolating}
 * drops everything the node's process sends, etcd included: a node on the wrong side of a real
 * partition. Closing removes the rule; a test that opens a cut closes it in a finally block, also
 * when it fails.
 */
final class NetworkCut implements AutoCloseable {
    private final List<String> rule;
    private boolean healed;

    private NetworkCut(List<String> rule) {
        this.rule = rule;
    }

    /** Cuts everything sent from {@code sourceIp} (a 127.0.0.0/8 address of a test node). */
    static NetworkCut from(String sourceIp) throws IOException, InterruptedException {
        return open(List.of("INPUT", "-i", "lo", "-s", loopback("sourceIp", sourceIp) + "/32", "-j", "DROP"));
    }

    /** Cuts what {@code sourceIp} sends to {@code destinationIp} only; the other direction still flows. */
    static NetworkCut between(String sourceIp, String destinationIp) throws IOException, InterruptedException {
        return open(List.of("INPUT", "-i", "lo", "-s", loopback("sourceIp", sourceIp) + "/32",
                "-d", loopback("destinationIp", destinationIp) + "/32", "-j", "DROP"));
    }

    /**
     * Cuts every packet sent by a socket of a process in {@code group}: all of a node's traffic,
     * both ways in effect (what reaches it goes unanswered, TCP acknowledgements included).
     */
    static NetworkCut isolating(NodeCgroup group) throws IOException, InterruptedException {
        return open(List.of("OUTPUT", "-m", "cgroup", "--path", group.path(), "-j", "DROP"));
    }

    /**
     * Cuts what a process in {@code group} sends to TCP port {@code port} only (etcd's client port,
     * say): the node loses that service while the rest of its traffic flows.
     */
    static NetworkCut isolatingFrom(NodeCgroup group, int port) throws IOException, InterruptedException {
        return open(List.of("OUTPUT", "-m", "cgroup", "--path", group.path(), "-p", "tcp", "--dport",
                Integer.toString(port), "-j", "DROP"));
    }

    private static String loopback(String field, String ip) {
        if (!ip.startsWith("127.")) {
            throw new IllegalArgumentException(field + ": only loopback addresses are cut in tests: " + ip);
        }
        return ip;
    }

    private static NetworkCut open(List<String> rule) throws IOException, InterruptedException {
        NetworkCut cut = new NetworkCut(rule);
        cut.iptables("-I");
        return cut;
    }

    /** Removes the rule; idempotent. */
    @Override
    public void close() throws IOException, InterruptedException {
        if (!healed) {
            iptables("-D");
            healed = true;
        }
    }

    private void iptables(String action) throws IOException, InterruptedException {
        List<String> cmd = new java.util.ArrayList<>(List.of("iptables", "-w", "5", action));
        cmd.addAll(rule);
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        if (!p.waitFor(30, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IOException(String.join(" ", cmd) + " did not finish in 30 s");
        }
        if (p.exitValue() != 0) {
            throw new IOException(String.join(" ", cmd) + " failed (" + p.exitValue() + "): " + out.strip()
                    + " (bin/setup installs iptables)");
        }
    }
}
