package dev.stowage.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.LabelSelector;
import io.fabric8.kubernetes.api.model.PodSpec;
import io.fabric8.kubernetes.api.model.PodTemplateSpec;
import io.fabric8.kubernetes.api.model.Secret;
import io.fabric8.kubernetes.api.model.Volume;
import io.fabric8.kubernetes.api.model.VolumeMount;
import io.fabric8.kubernetes.api.model.apps.DaemonSet;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The Helm chart rendered by a real helm (bin/setup installs it) and read as the API server
 * would: it lints, every object is one the object model knows field by field, every workload is
 * one Kubernetes accepts (its selector picks its own pods, every mount names a volume of its pod),
 * every stowage command line parses, and with its default values it renders what the plain
 * manifests in deploy/kubernetes say, so that the two cannot drift apart.
 */
@Tag("helm")
class HelmChartTest {
    private static final Path KUBERNETES = Path.of("..", "deploy", "kubernetes").toAbsolutePath().normalize();
    private static final Path CHART = KUBERNETES.resolve("helm").resolve("stowage");
    /**
     * The cluster version helm renders for: a go-installed helm lacks the release build's default
     * (it assumes 1.20, below the chart's kubeVersion).
     */
    private static final String KUBE_VERSION = "1.31.0";

    @TempDir
    Path tmp;

    @Test
    void theDefaultsLintAndRenderWhatThePlainManifestsSay() throws IOException {
        helm("lint", "--strict", "--kube-version", KUBE_VERSION, CHART.toString());
        List<HasMetadata> rendered = render();
        checkAcceptable(rendered);

        List<HasMetadata> plain = new ArrayList<>();
        for (String file : List.of("csidriver.yaml", "rbac-controller.yaml", "rbac-node.yaml", "controller.yaml",
                "node.yaml", "fuse-keeper.yaml", "storageclasses.yaml", "volumesnapshotclass.yaml")) {
            plain.addAll(KubernetesManifests.load(KUBERNETES.resolve(file)));
        }
        checkAcceptable(plain);
        Map<String, HasMetadata> chartByKey = byKey(rendered);
        Map<String, HasMetadata> plainByKey = byKey(plain);
        // The chart adds the token Secret (the plain manifests leave it to kubectl create secret).
        Set<String> chartOnly = new HashSet<>(chartByKey.keySet());
        chartOnly.removeAll(plainByKey.keySet());
        assertEquals(Set.of("Secret/stowage-cluster-token"), chartOnly, "objects only the chart makes");
        Set<String> plainOnly = new HashSet<>(plainByKey.keySet());
        plainOnly.removeAll(chartByKey.keySet());
        assertEquals(Set.of(), plainOnly, "objects only the plain manifests make");

        for (Map.Entry<String, HasMetadata> e : plainByKey.entrySet()) {
            HasMetadata mine = chartByKey.get(e.getKey());
            HasMetadata theirs = e.getValue();
            if (KubernetesManifests.podSpec(theirs).isPresent()) {
                assertEquals(comparablePod(theirs), comparablePod(mine), e.getKey() + ": pod template");
            } else {
                assertEquals(withoutMetadata(theirs), withoutMetadata(mine), e.getKey());
            }
        }
        Secret token = (Secret) chartByKey.get("Secret/stowage-cluster-token");
        assertEquals(48, new String(java.util.Base64.getDecoder().decode(token.getData().get("token")),
                StandardCharsets.US_ASCII).length(), "a generated 48-character token");
    }

    @Test
    void withoutTheKeeperNoNodeWaitsForOne() throws IOException {
        List<HasMetadata> rendered = render("--set", "fuseKeeper.enabled=false", "--set",
                "sidecars.snapshotter.enabled=false", "--set", "volumeSnapshotClass.create=false",
                "--set", "clusterToken.existingSecret=site-token");
        checkAcceptable(rendered);
        Map<String, HasMetadata> byKey = byKey(rendered);
        assertFalse(byKey.containsKey("DaemonSet/stowage-fuse-keeper"), byKey.keySet().toString());
        assertFalse(byKey.containsKey("Secret/stowage-cluster-token"), "an existing secret is not created");
        assertFalse(byKey.keySet().stream().anyMatch(k -> k.startsWith("VolumeSnapshotClass/")), byKey.keySet().toString());
        DaemonSet node = (DaemonSet) byKey.get("DaemonSet/stowage-node");
        PodSpec pod = node.getSpec().getTemplate().getSpec();
        assertTrue(pod.getHostPID() == null || !pod.getHostPID(), "no host pid namespace without the keeper");
        List<String> args = stowage(pod).getArgs();
        assertFalse(args.stream().anyMatch(a -> a.startsWith("--fuse-keeper")), args.toString());
        assertTrue(pod.getVolumes().stream().anyMatch(v -> v.getSecret() != null
                && "site-token".equals(v.getSecret().getSecretName())), "the node reads the existing secret");
        Deployment controller = (Deployment) byKey.get("Deployment/stowage-controller");
        assertFalse(controller.getSpec().getTemplate().getSpec().getContainers().stream()
                .anyMatch(c -> c.getName().contains("snapshotter")), "no snapshotter sidecar");
    }

    @Test
    void topologyGroupsGiveOneNodeDaemonSetEachWithItsZoneRackAndNodes() throws IOException {
        Path values = tmp.resolve("groups.yaml");
        Files.writeString(values, """
                node:
                  nodeSelector:
                    kubernetes.io/os: linux
                  topologyGroups:
                    - name: a1
                      zone: zone-a
                      rack: rack-1
                      nodeSelector:
                        example.com/rack: rack-1
                    - name: b1
                      zone: zone-b
                      nodeSelector:
                        example.com/rack: rack-9
                """);
        List<HasMetadata> rendered = render("-f", values.toString());
        checkAcceptable(rendered);
        Map<String, HasMetadata> byKey = byKey(rendered);
        assertFalse(byKey.containsKey("DaemonSet/stowage-node"), "no DaemonSet for all nodes besides the groups");
        DaemonSet a = (DaemonSet) byKey.get("DaemonSet/stowage-node-a1");
        DaemonSet b = (DaemonSet) byKey.get("DaemonSet/stowage-node-b1");
        List<String> aArgs = stowage(a.getSpec().getTemplate().getSpec()).getArgs();
        List<String> bArgs = stowage(b.getSpec().getTemplate().getSpec()).getArgs();
        assertTrue(aArgs.containsAll(List.of("--zone=zone-a", "--rack=rack-1")), aArgs.toString());
        assertTrue(bArgs.contains("--zone=zone-b") && bArgs.stream().noneMatch(x -> x.startsWith("--rack")), bArgs.toString());
        assertEquals(Map.of("kubernetes.io/os", "linux", "example.com/rack", "rack-1"),
                a.getSpec().getTemplate().getSpec().getNodeSelector());
        assertEquals(Map.of("kubernetes.io/os", "linux", "example.com/rack", "rack-9"),
                b.getSpec().getTemplate().getSpec().getNodeSelector());
        // Two DaemonSets whose selectors both matched a pod would fight over it.
        assertFalse(selects(a.getSpec().getSelector(), b.getSpec().getTemplate())
                || selects(b.getSpec().getSelector(), a.getSpec().getTemplate()), "the groups' selectors overlap");
    }

    /** What the API server would refuse, and what would start a pod that cannot work. */
    private static void checkAcceptable(List<HasMetadata> objects) {
        for (HasMetadata o : objects) {
            String key = key(o);
            assertEquals(List.of(), KubernetesManifests.unknownFields(o), key + ": fields the object model does not know");
            PodTemplateSpec template = KubernetesManifests.template(o).orElse(null);
            if (template == null) {
                continue;
            }
            assertTrue(selects(KubernetesManifests.selector(o).orElseThrow(), template),
                    key + ": its selector does not pick its own pods");
            PodSpec pod = template.getSpec();
            Set<String> volumes = pod.getVolumes().stream().map(Volume::getName).collect(Collectors.toSet());
            assertEquals(pod.getVolumes().size(), volumes.size(), key + ": volume names repeat");
            for (Container c : pod.getContainers()) {
                for (VolumeMount m : c.getVolumeMounts()) {
                    assertTrue(volumes.contains(m.getName()), key + ": " + c.getName() + " mounts unknown volume " + m.getName());
                }
                Set<String> ports = c.getPorts().stream().map(p -> p.getName()).filter(Objects::nonNull)
                        .collect(Collectors.toSet());
                if (c.getLivenessProbe() != null && c.getLivenessProbe().getHttpGet() != null) {
                    var port = c.getLivenessProbe().getHttpGet().getPort();
                    assertTrue(port.getStrVal() == null || ports.contains(port.getStrVal()),
                            key + ": " + c.getName() + "'s probe names port " + port.getStrVal() + " it does not declare");
                }
            }
        }
        List<List<String>> commands = KubernetesManifests.stowageCommands(objects);
        assertFalse(commands.isEmpty(), "no stowage container");
        commands.forEach(DeploySpecsTest::parses);
        // Where both run, the node finds the keeper where the keeper listens.
        commands.stream().filter(c -> c.get(0).equals("fuse-keeper")).findFirst().ifPresent(keeper -> {
            String socket = keeper.stream().filter(a -> a.startsWith("--socket=")).findFirst().orElseThrow()
                    .substring("--socket=".length());
            commands.stream().filter(c -> c.get(0).equals("node")).forEach(node ->
                    assertTrue(node.contains("--fuse-keeper=" + socket), node.toString()));
        });
    }

    private static boolean selects(LabelSelector selector, PodTemplateSpec template) {
        Map<String, String> labels = template.getMetadata().getLabels();
        return selector != null && selector.getMatchLabels() != null && !selector.getMatchLabels().isEmpty()
                && selector.getMatchLabels().entrySet().stream()
                .allMatch(e -> e.getValue().equals(labels == null ? null : labels.get(e.getKey())));
    }

    private static Container stowage(PodSpec pod) {
        return pod.getContainers().stream().filter(c -> List.of("stowage").equals(c.getCommand())).findFirst()
                .orElseThrow(() -> new AssertionError("no stowage container in " + pod.getContainers()));
    }

    /** A workload's pod spec, its volumes and each container's mounts in name order (their order means nothing). */
    private static String comparablePod(HasMetadata o) {
        PodSpec pod = KubernetesManifests.clone(KubernetesManifests.podSpec(o).orElseThrow());
        pod.getVolumes().sort(java.util.Comparator.comparing(Volume::getName));
        pod.getContainers().forEach(c -> c.getVolumeMounts().sort(java.util.Comparator.comparing(VolumeMount::getName)));
        return KubernetesManifests.yaml(pod);
    }

    private static String withoutMetadata(HasMetadata o) {
        Map<String, Object> tree = new TreeMap<>(KubernetesManifests.tree(o));
        tree.remove("metadata");
        return tree.toString();
    }

    private static Map<String, HasMetadata> byKey(List<HasMetadata> objects) {
        Map<String, HasMetadata> out = new TreeMap<>();
        for (HasMetadata o : objects) {
            HasMetadata before = out.put(key(o), o);
            assertEquals(null, before, "two objects named " + key(o));
        }
        return out;
    }

    private static String key(HasMetadata o) {
        return o.getKind() + "/" + o.getMetadata().getName();
    }

    /** helm template with the release name and namespace the plain manifests use. */
    private List<HasMetadata> render(String... values) throws IOException {
        List<String> args = new ArrayList<>(List.of("template", "stowage", CHART.toString(), "--namespace", "stowage-system",
                "--kube-version", KUBE_VERSION));
        args.addAll(List.of(values));
        return KubernetesManifests.parse(helm(args.toArray(String[]::new)));
    }

    private String helm(String... args) throws IOException {
        List<String> command = new ArrayList<>();
        command.add("helm");
        command.addAll(List.of(args));
        Path out = tmp.resolve("helm.out");
        Process p;
        try {
            p = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(out.toFile()).start();
        } catch (IOException e) {
            throw new IOException("helm is not installed: bin/setup installs it (" + e.getMessage() + ")", e);
        }
        try {
            if (!p.waitFor(120, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new AssertionError(command + " did not finish in 120 s");
            }
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new IOException("interrupted", e);
        }
        String text = Files.readString(out);
        assertEquals(0, p.exitValue(), command + " failed:\n" + text);
        return text;
    }
}
