package dev.stowage.launcher;

import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.GenericKubernetesResource;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.LabelSelector;
import io.fabric8.kubernetes.api.model.PodSpec;
import io.fabric8.kubernetes.api.model.PodTemplateSpec;
import io.fabric8.kubernetes.api.model.apps.DaemonSet;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.kubernetes.api.model.apps.StatefulSet;
import io.fabric8.kubernetes.client.utils.KubernetesSerialization;
import java.io.IOException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Kubernetes manifests read into the Fabric8 object model, as the API server would read them: what
 * deploy/ ships, and what its Helm chart renders. Used by the tests that hold those specs to the
 * commands they start and to each other.
 */
final class KubernetesManifests {
    private static final KubernetesSerialization SERIALIZATION = new KubernetesSerialization();

    private KubernetesManifests() {
    }

    /** Every object of a multi-document YAML text, in order; empty documents are skipped. */
    static List<HasMetadata> parse(String yaml) {
        List<HasMetadata> out = new ArrayList<>();
        for (String doc : yaml.split("(?m)^---\\s*$")) {
            if (doc.lines().allMatch(l -> l.isBlank() || l.trim().startsWith("#"))) {
                continue;
            }
            Object o = SERIALIZATION.unmarshal(doc);
            if (!(o instanceof HasMetadata h)) {
                throw new AssertionError("not a Kubernetes object: " + doc);
            }
            out.add(h);
        }
        return out;
    }

    static List<HasMetadata> load(Path file) throws IOException {
        return parse(Files.readString(file));
    }

    /** A deep copy of {@code o}. */
    static <T> T clone(T o) {
        return SERIALIZATION.clone(o);
    }

    /** {@code o} as YAML, its fields in the model's order. */
    static String yaml(Object o) {
        return SERIALIZATION.asYaml(o);
    }

    /** {@code o} as nested maps and lists, as its JSON form reads. */
    @SuppressWarnings("unchecked")
    static Map<String, Object> tree(Object o) {
        return SERIALIZATION.convertValue(o, Map.class);
    }

    /** What the tests read of a workload (DaemonSet, Deployment, StatefulSet): its pod template and selector. */
    private record Workload(PodTemplateSpec template, LabelSelector selector) {
    }

    private static Optional<Workload> workload(HasMetadata o) {
        if (o instanceof DaemonSet d) {
            return Optional.of(new Workload(d.getSpec().getTemplate(), d.getSpec().getSelector()));
        }
        if (o instanceof Deployment d) {
            return Optional.of(new Workload(d.getSpec().getTemplate(), d.getSpec().getSelector()));
        }
        if (o instanceof StatefulSet s) {
            return Optional.of(new Workload(s.getSpec().getTemplate(), s.getSpec().getSelector()));
        }
        return Optional.empty();
    }

    /** The pod template of a workload, or empty for other kinds. */
    static Optional<PodTemplateSpec> template(HasMetadata o) {
        return workload(o).map(Workload::template);
    }

    /** The pod selector of a workload, or empty for other kinds. */
    static Optional<LabelSelector> selector(HasMetadata o) {
        return workload(o).map(Workload::selector);
    }

    /** The pod spec of a workload, or empty for other kinds. */
    static Optional<PodSpec> podSpec(HasMetadata o) {
        return template(o).map(PodTemplateSpec::getSpec);
    }

    /**
     * The command line of each container that runs {@code stowage} in these objects: its args, with
     * $(NODE_IP), $(NODE_NAME) and $(POD_NAME) filled in as Kubernetes would.
     */
    static List<List<String>> stowageCommands(Collection<HasMetadata> objects) {
        List<List<String>> out = new ArrayList<>();
        for (HasMetadata o : objects) {
            for (Container c : podSpec(o).map(PodSpec::getContainers).orElse(List.of())) {
                if (List.of("stowage").equals(c.getCommand())) {
                    out.add(c.getArgs().stream().map(a -> a.replace("$(NODE_IP)", "10.0.0.7")
                            .replace("$(NODE_NAME)", "node-a").replace("$(POD_NAME)", "controller-0")).toList());
                }
            }
        }
        return out;
    }

    /**
     * The fields of {@code o} that the object model does not know, by path (for instance
     * {@code spec.template.spec.containers[0].volumeMounts[1].mountPropogation}): a misspelt field
     * that the API server would drop or refuse. Custom resources (no model) are not looked into.
     */
    static List<String> unknownFields(HasMetadata o) {
        List<String> out = new ArrayList<>();
        if (!(o instanceof GenericKubernetesResource)) {
            walk(o, o.getKind() + "/" + o.getMetadata().getName(), out);
        }
        return out;
    }

    private static void walk(Object node, String path, List<String> out) {
        if (node == null) {
            return;
        }
        if (node instanceof Collection<?> list) {
            int i = 0;
            for (Object item : list) {
                walk(item, path + "[" + i++ + "]", out);
            }
            return;
        }
        if (node instanceof Map<?, ?> map) {
            for (Map.Entry<?, ?> e : map.entrySet()) {
                walk(e.getValue(), path + "[" + e.getKey() + "]", out);
            }
            return;
        }
        if (!node.getClass().getName().startsWith("io.fabric8.kubernetes.api.model")) {
            return; // strings, numbers, quantities' values
        }
        for (Method m : node.getClass().getMethods()) {
            if (m.getParameterCount() != 0 || Modifier.isStatic(m.getModifiers()) || !m.getName().startsWith("get")
                    || m.getDeclaringClass() == Object.class) {
                continue;
            }
            String field = Character.toLowerCase(m.getName().charAt(3)) + m.getName().substring(4);
            if (!m.getName().equals("getAdditionalProperties") && !hasField(node.getClass(), field)) {
                continue; // a computed getter, not a field of the object
            }
            Object value;
            try {
                value = m.invoke(node);
            } catch (ReflectiveOperationException e) {
                throw new AssertionError(path + "." + m.getName(), e);
            }
            if (m.getName().equals("getAdditionalProperties")) {
                if (value instanceof Map<?, ?> extra) {
                    extra.keySet().forEach(k -> out.add(path + "." + k));
                }
                continue;
            }
            walk(value, path + "." + field, out);
        }
    }

    private static boolean hasField(Class<?> c, String name) {
        for (; c != null && c != Object.class; c = c.getSuperclass()) {
            for (java.lang.reflect.Field f : c.getDeclaredFields()) {
                if (f.getName().equals(name) && !Modifier.isStatic(f.getModifiers())) {
                    return true;
                }
            }
        }
        return false;
    }
}
