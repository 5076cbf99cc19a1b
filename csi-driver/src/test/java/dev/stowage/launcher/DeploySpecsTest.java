package dev.stowage.launcher;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The stowage command lines that deploy/ ships must start: each is parsed by the same code that
 * {@code stowage node} and {@code stowage csi-controller} run, with the variables Kubernetes and
 * Mesos fill in replaced by sample values. (The manifests once passed --etcd without the --listen it
 * requires, so every node pod would have exited at start.) {@link HelmChartTest} holds the Helm
 * chart to the same, and to these manifests.
 */
class DeploySpecsTest {
    private static final Path DEPLOY = Path.of("..", "deploy").toAbsolutePath().normalize();

    @Test
    void kubernetesManifestsStartTheirStowageContainers() throws IOException {
        List<List<String>> commands = new ArrayList<>();
        for (String file : List.of("node.yaml", "controller.yaml", "fuse-keeper.yaml")) {
            commands.addAll(KubernetesManifests.stowageCommands(KubernetesManifests.load(DEPLOY.resolve("kubernetes").resolve(file))));
        }
        assertEquals(3, commands.size(), "a stowage container in each of node.yaml, controller.yaml, fuse-keeper.yaml");
        commands.forEach(DeploySpecsTest::parses);
        assertTrue(commands.stream().anyMatch(c -> c.get(0).equals("node") && c.contains("--listen=10.0.0.7:7410")),
                commands.toString());
        // the node finds the keeper where the keeper listens
        String keeperSocket = commands.stream().filter(c -> c.get(0).equals("fuse-keeper")).findFirst().orElseThrow()
                .get(1).substring("--socket=".length());
        assertTrue(commands.stream().anyMatch(c -> c.get(0).equals("node") && c.contains("--fuse-keeper=" + keeperSocket)),
                commands.toString());
    }

    @Test
    void mesosPluginConfigsStartTheirStowageContainers() throws IOException {
        int seen = 0;
        for (String file : List.of("csi-stowage-node.json", "csi-stowage-node-and-controller.json")) {
            for (String line : Files.readAllLines(DEPLOY.resolve("mesos").resolve(file))) {
                int at = line.indexOf("exec stowage ");
                if (at < 0) {
                    continue;
                }
                String shell = line.substring(at + "exec stowage ".length(), line.lastIndexOf('"'))
                        .replace("\\\"", "\"")
                        .replace("$(hostname -I | cut -d' ' -f1)", "10.0.0.7")
                        .replace("$(hostname -s)", "agent-1")
                        .replace("$CSI_ENDPOINT", "unix:///run/mesos/csi.sock");
                parses(shellWords(shell));
                seen++;
            }
        }
        assertEquals(3, seen, "two node commands and one controller command");
    }

    @Test
    void theControllersOptionsTakeBothSpellingsAndNameWhatIsWrong() {
        ControllerCommand.Options o = ControllerCommand.Options.parse(
                List.of("--csi-endpoint=unix:///csi/csi.sock", "--api", "10.0.0.7:7420"));
        assertEquals("10.0.0.7:7420", o.api());
        assertEquals(null, o.tokenFile());
        assertTrue(assertThrows(IllegalArgumentException.class, () -> ControllerCommand.Options.parse(
                List.of("--csi-endpoint=unix:///x", "--api=h:1", "--etcd=http://e:2379"))).getMessage().contains("--etcd"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> ControllerCommand.Options.parse(
                List.of("--csi-endpoint=unix:///x"))).getMessage().contains("--api"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> ControllerCommand.Options.parse(
                List.of("--csi-endpoint=relative", "--api=h:1"))).getMessage().contains("--csi-endpoint"));
    }

    @Test
    void theKeepersOptionsTakeBothSpellingsAndNameWhatIsWrong() {
        FuseKeeperCommand.Options o = FuseKeeperCommand.Options.parse(List.of("--socket", "/run/k.sock", "--orphan-timeout=30"));
        assertEquals(java.nio.file.Path.of("/run/k.sock"), o.socket());
        assertEquals(java.time.Duration.ofSeconds(30), o.orphanTimeout());
        assertEquals(java.time.Duration.ofMinutes(10), FuseKeeperCommand.Options.parse(List.of("--socket=/k")).orphanTimeout());
        assertTrue(assertThrows(IllegalArgumentException.class, () -> FuseKeeperCommand.Options.parse(
                List.of("--socket=/k", "--orphan-timeout=0"))).getMessage().contains("--orphan-timeout '0'"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> FuseKeeperCommand.Options.parse(
                List.of("--orphan-timeout=5"))).getMessage().contains("--socket"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> FuseKeeperCommand.Options.parse(
                List.of("--socket=/k", "--keep=1"))).getMessage().contains("--keep=1"));
    }

    static void parses(List<String> command) {
        List<String> args = command.subList(1, command.size());
        switch (command.get(0)) {
            case "node" -> assertDoesNotThrow(() -> NodeOptions.parse(args), () -> "stowage " + command);
            case "csi-controller" -> assertDoesNotThrow(() -> ControllerCommand.Options.parse(args),
                    () -> "stowage " + command);
            case "fuse-keeper" -> assertDoesNotThrow(() -> FuseKeeperCommand.Options.parse(args), () -> "stowage " + command);
            default -> throw new AssertionError("unexpected stowage command " + command);
        }
    }

    /** Splits a shell command line on spaces outside double quotes, dropping the quotes. */
    private static List<String> shellWords(String line) {
        List<String> words = new ArrayList<>();
        StringBuilder w = new StringBuilder();
        boolean quoted = false;
        for (char c : line.toCharArray()) {
            if (c == '"') {
                quoted = !quoted;
            } else if (c == ' ' && !quoted) {
                if (w.length() > 0) {
                    words.add(w.toString());
                    w.setLength(0);
                }
            } else {
                w.append(c);
            }
        }
        if (w.length() > 0) {
            words.add(w.toString());
        }
        return words;
    }
}
